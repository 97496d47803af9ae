"""Latency tables for the resnet family: shape-keyed entries, additive prediction, profiling, reports.

Real ONNX Runtime measurements on the tiny resnet space (2 stages, 32/40 px, widths <= 64), so the
profile runs in seconds.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from hwnas.cli import main as cli_main
from hwnas.families import gene_layout
from hwnas.latency.profiler import Profiler, ProfileOptions
from hwnas.latency.table import (OVERHEAD_KEY, LatencyCorrection, LatencyTable, ResNetLatencyTable, arch_keys,
                                 enumerate_entries)
from hwnas.resnet_arch import resnet_plan, sample_resnet_architecture
from hwnas.search.runner import load_latency_table

from latency_measurers import CountingMeasurer, cpu_test_profile  # noqa: E402
from tiny_spaces import tiny_resnet_space  # noqa: E402 (tests/ is on sys.path)

torch.set_num_threads(1)
SPACE = tiny_resnet_space()
LAYOUT = gene_layout(SPACE)


def synthetic_table(seed: int = 0, correction: LatencyCorrection | None = None) -> LatencyTable:
    rng = np.random.default_rng(seed)
    entries = {e.key: {"median_ms": float(rng.uniform(0.05, 1.0))} for e in enumerate_entries(SPACE)}
    entries[OVERHEAD_KEY]["median_ms"] = 0.01
    return LatencyTable(SPACE, entries, correction=correction)


def every_network() -> np.ndarray:
    """All canonical gene rows of the tiny space (distinct networks)."""
    rows = np.array(list(itertools.product(*(range(c) for c in LAYOUT.cardinalities))), dtype=np.int8)
    return np.unique(LAYOUT.canonicalize(rows), axis=0)


@pytest.mark.parametrize("space", [SPACE.name, "ofa-resnet50"])
def test_entries_are_distinct_and_cover_every_sampled_architecture(space):
    entries = enumerate_entries(space)
    keys = {e.key for e in entries}
    assert len(keys) == len(entries)
    for seed in range(30):
        assert set(arch_keys(space, sample_resnet_architecture(space, seed))) <= keys


def test_block_keys_follow_the_shapes_a_block_runs():
    arch = sample_resnet_architecture(SPACE, 3)
    plan = resnet_plan(SPACE, arch)
    keys = arch_keys(SPACE, arch)
    assert len(keys) == 2 + len(plan.blocks)
    for key, b in zip(keys[1:-1], plan.blocks):
        assert key == (f"bottleneck:in{b.in_channels}:mid{b.mid_channels}:out{b.out_channels}:s{b.stride}:"
                       f"{'ds' if b.downsample else 'id'}:res{b.input_size}")
    assert keys[0].startswith("resnet-stem:") and keys[-1].startswith(f"resnet-head:in{plan.features}:")


def test_table_of_a_resnet_space_is_its_family_class_and_sums_its_entries():
    table = synthetic_table()
    assert isinstance(table, ResNetLatencyTable)
    archs = [sample_resnet_architecture(SPACE, s) for s in range(40)]
    genes = LAYOUT.encode(archs)
    expected = [sum(table.entries[k]["median_ms"] for k in arch_keys(SPACE, a)) for a in archs]
    np.testing.assert_allclose(table.predict_genes(genes, calibrated=False), expected, rtol=1e-12)
    np.testing.assert_allclose([table.lut_sum(a) for a in archs], expected, rtol=1e-12)


def test_calibrated_prediction_applies_the_correction_to_the_features():
    correction = LatencyCorrection("stages", ("stage0", "stage1", "stem_head", "res40"), (1.3, 0.7, 0.9, 0.05), 0.02)
    table = synthetic_table(1, correction)
    genes = LAYOUT.canonicalize(LAYOUT.random(200, rng=0))
    batch = table.predict_genes(genes)
    np.testing.assert_allclose(batch, correction.apply(table.features(genes)), rtol=1e-10)
    assert table.predict(LAYOUT.decode(genes[:1])[0]) == pytest.approx(batch[0])


@pytest.mark.parametrize("calibrated", [True, False])
def test_min_latency_is_the_brute_force_minimum(calibrated):
    correction = LatencyCorrection("split", ("blocks", "stem_head"), (1.1, 0.8), -0.05)
    table = synthetic_table(2, correction)
    every = every_network()
    assert table.min_latency_ms(calibrated) == pytest.approx(table.predict_genes(every, calibrated).min(), rel=1e-12)


def test_profile_writes_a_validated_table_whose_prediction_is_the_sum_of_its_entries(tmp_path):
    measurer = CountingMeasurer()
    options = ProfileOptions(resolutions=(32,), calibrate=6, validate=3, seed=1, rounds=1)
    result = Profiler(SPACE, cpu_test_profile(), tmp_path, options, measurer=measurer, progress=False).run()
    entries = {e.key for e in enumerate_entries(SPACE, [32])}
    assert measurer.calls == len(entries) + 6 + 3 + 1
    table = load_latency_table(result.table_path, SPACE)
    assert isinstance(table, ResNetLatencyTable) and set(table.entries) == entries
    arch = sample_resnet_architecture(SPACE, 7, resolution=32)
    assert table.predict(arch, calibrated=False) == pytest.approx(
        sum(table.entries[k]["ms"] for k in arch_keys(SPACE, arch)), rel=1e-12)
    assert table.predict(arch) == pytest.approx(result.table.predict(arch))
    assert table.meta["reference"]["arch"]["resolution"] == min(SPACE.resolutions)
    report = json.loads(result.report_paths[0].read_text())
    assert report["space"]["fingerprint"] == SPACE.fingerprint() and report["entries"] == len(table.entries)
    for name in ("lut_sum", "calibrated"):
        assert report["validation"][name]["n"] == 3
    validated = {json.dumps(p["arch"]) for p in report["validation"]["points"]}
    assert not validated & {json.dumps(p["arch"]) for p in table.calibration["points"]}
    assert "plain LUT sum" in result.report_paths[1].read_text()
    assert 0 < report["min_latency_ms"] <= min(p["predicted_ms"] for p in table.calibration["points"])


def test_cli_predict_prints_a_resnet_architecture(tmp_path, capsys):
    arch = sample_resnet_architecture("ofa-resnet50", 4)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch.to_ofa_dict()))
    assert cli_main(["predict", "--space", "ofa-resnet50", "--arch", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    from hwnas.resnet_arch import resnet_macs_and_params

    assert (record["macs"], record["params"]) == resnet_macs_and_params("ofa-resnet50", arch)
    assert record["arch"] == arch.to_dict()
