"""Latency tables for the plain family: layer-shape keyed entries, additive prediction, profiling.

Synthetic entries on the ``fmnist-cnn`` preset and the tiny plain space; a real ONNX Runtime profile
on the tiny space (two stages, 12 px, widths <= 32), so it runs in seconds.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from hwnas.families import gene_layout
from hwnas.latency.block_models import entry_module, export_onnx
from hwnas.latency.profiler import Profiler, ProfileOptions
from hwnas.latency.table import (OVERHEAD_KEY, LatencyCorrection, LatencyTable, PlainLatencyTable, arch_keys,
                                 enumerate_entries, reference_architecture)
from hwnas.plain_arch import largest_plain_architecture, plain_plan, sample_plain_architecture
from hwnas.search.runner import load_latency_table
from hwnas.space import get_space
from hwnas.supernet.network import build_supernet

from latency_measurers import CountingMeasurer, cpu_test_profile  # noqa: E402
from tiny_spaces import tiny_plain_space  # noqa: E402 (tests/ is on sys.path)

torch.set_num_threads(1)
SPACE = tiny_plain_space()
FMNIST = get_space("fmnist-cnn")


def synthetic_table(space=SPACE, seed: int = 0, correction: LatencyCorrection | None = None) -> LatencyTable:
    rng = np.random.default_rng(seed)
    entries = {e.key: {"median_ms": float(rng.uniform(0.05, 1.0))} for e in enumerate_entries(space)}
    entries[OVERHEAD_KEY]["median_ms"] = 0.01
    return LatencyTable(space, entries, correction=correction)


def every_network(space=SPACE) -> np.ndarray:
    """All canonical gene rows of a small space (distinct networks)."""
    layout = gene_layout(space)
    rows = np.array(list(itertools.product(*(range(c) for c in layout.cardinalities))), dtype=np.int8)
    return np.unique(layout.canonicalize(rows), axis=0)


@pytest.mark.parametrize("space", [SPACE, FMNIST], ids=lambda s: s.name)
def test_entries_are_distinct_and_cover_every_sampled_architecture(space):
    entries = enumerate_entries(space)
    keys = {e.key for e in entries}
    assert len(keys) == len(entries)
    used = set()
    for seed in range(60):
        used |= set(arch_keys(space, sample_plain_architecture(space, seed)))
    assert used <= keys
    assert {e.kind for e in entries} == {"overhead", "block", "head"}


def test_keys_follow_the_shapes_a_layer_runs():
    arch = sample_plain_architecture(FMNIST, 3)
    plan = plain_plan(FMNIST, arch)
    keys = arch_keys(FMNIST, arch)
    assert len(keys) == len(plan.layers) + 1
    for key, layer in zip(keys, plan.layers):
        assert key == (f"plain-conv:in{layer.in_channels}:out{layer.out_channels}:k{layer.kernel}:"
                       f"{'pool' if layer.pool else 'nopool'}:res{layer.input_size}")
    assert keys[-1] == f"plain-head:in{plan.features}:res{plan.final_size}"


@pytest.mark.parametrize("space", [SPACE, FMNIST], ids=lambda s: s.name)
def test_uncalibrated_prediction_is_the_sum_of_the_architectures_entries(space):
    table = synthetic_table(space)
    assert isinstance(table, PlainLatencyTable)
    layout = gene_layout(space)
    archs = [sample_plain_architecture(space, s) for s in range(100)]
    expected = [sum(table.entries[k]["median_ms"] for k in arch_keys(space, a)) for a in archs]
    np.testing.assert_allclose(table.predict_genes(layout.encode(archs), calibrated=False), expected, rtol=1e-12)
    np.testing.assert_allclose([table.predict(a, calibrated=False) for a in archs[:20]], expected[:20], rtol=1e-12)
    np.testing.assert_allclose([table.lut_sum(a) for a in archs[:20]], expected[:20], rtol=1e-12)


@pytest.mark.parametrize("correction", [
    LatencyCorrection("stages", ("stage0", "stage1", "stage2", "stem_head", "res24", "res28"),
                      (1.3, 0.7, 1.1, 0.9, 0.05, -0.02), 0.02),
    LatencyCorrection("split", ("blocks", "stem_head"), (1.1, 0.8), -0.05),
    LatencyCorrection("linear", ("total",), (0.9,), 0.1)], ids=lambda c: c.model)
def test_calibrated_prediction_applies_the_correction_to_the_features(correction):
    table = synthetic_table(FMNIST, 1, correction)
    layout = gene_layout(FMNIST)
    archs = [sample_plain_architecture(FMNIST, 100 + s) for s in range(100)]
    genes = layout.encode(archs)
    batch = table.predict_genes(genes)
    features = table.features(genes)
    np.testing.assert_allclose(batch, correction.apply(features), rtol=1e-10)
    np.testing.assert_allclose([table.predict(a) for a in archs], batch, rtol=1e-10)
    # ``total`` counts one per-call overhead for the whole network, as a measured subnet pays it
    ov = table.overhead_ms
    expected_total = [sum(table.entries[k]["median_ms"] - ov for k in arch_keys(FMNIST, a)) + ov for a in archs]
    np.testing.assert_allclose(features["total"], expected_total, rtol=1e-10)
    np.testing.assert_allclose(features["plain"], table.predict_genes(genes, calibrated=False), rtol=1e-12)
    assert not np.allclose(batch, features["plain"])  # the correction is not the identity


@pytest.mark.parametrize("calibrated", [True, False])
def test_min_latency_is_the_brute_force_minimum(calibrated):
    correction = LatencyCorrection("stages", ("stage0", "stage1", "stem_head", "res16"), (1.2, 0.6, 0.9, -0.03), 0.02)
    table = synthetic_table(SPACE, 2, correction)
    every = every_network()
    fastest = table.fastest_genes(calibrated)
    assert table.min_latency_ms(calibrated) == pytest.approx(table.predict_genes(every, calibrated).min(), rel=1e-12)
    assert table.predict_genes(fastest, calibrated)[0] == pytest.approx(table.min_latency_ms(calibrated), rel=1e-12)


def test_unprofiled_resolutions_are_refused():
    entries = {e.key: {"median_ms": 0.1} for e in enumerate_entries(SPACE, [12])}
    table = LatencyTable(SPACE, entries, resolutions=[12])
    assert table.predict(sample_plain_architecture(SPACE, 0, resolution=12)) > 0
    with pytest.raises(Exception, match="profiled at resolutions"):
        table.predict(sample_plain_architecture(SPACE, 0, resolution=16))


def test_layers_with_identity_skips_get_their_own_keys():
    """A skip adds an Add to the timed graph: its layers are keyed apart (``:skip``), a stage's first
    layer (channels change) is not, and a space without skips keeps its keys."""
    resvgg, vgg = get_space("fmnist-resvgg"), get_space("fmnist-vgg")
    arch = largest_plain_architecture(resvgg)
    skips = [key.endswith(":skip") for key in arch_keys(resvgg, arch)[:-1]]
    assert skips == [i % 3 > 0 for i in range(9)]
    assert [k.removesuffix(":skip") for k in arch_keys(resvgg, arch)] == arch_keys(vgg, arch)
    assert not any(e.key.endswith(":skip") for e in enumerate_entries(vgg))
    assert any(e.key.endswith(":skip") for e in enumerate_entries(resvgg))


def test_reference_architecture_is_the_largest_at_the_smallest_resolution():
    assert reference_architecture(FMNIST, (24, 28)) == largest_plain_architecture(FMNIST, 24)


def test_entry_modules_run_the_static_subnets_pieces_and_export():
    """An entry's module is the piece of the extracted subnet it times: same output on the same input."""
    net = build_supernet(SPACE).eval()
    arch = sample_plain_architecture(SPACE, 5)
    sub = net.extract(arch).eval()
    entries = {e.key: e for e in enumerate_entries(SPACE)}
    keys = arch_keys(SPACE, arch)
    x = torch.randn(2, SPACE.in_channels, arch.resolution, arch.resolution)
    with torch.no_grad():
        for key, piece in zip(keys, [*sub.layers, sub.head]):
            entry = entries[key]
            module = entry_module(SPACE, entry, lambda: net)
            assert tuple(x.shape[1:]) == entry.input_shape
            assert type(module) is type(piece)
            export_onnx(module, (1, *entry.input_shape))
            x = piece(x)


def test_profile_writes_a_validated_table_whose_prediction_is_the_sum_of_its_entries(tmp_path):
    measurer = CountingMeasurer()
    options = ProfileOptions(resolutions=(12,), calibrate=6, validate=3, seed=1, rounds=1)
    result = Profiler(SPACE, cpu_test_profile(), tmp_path, options, measurer=measurer, progress=False).run()
    entries = {e.key for e in enumerate_entries(SPACE, [12])}
    assert measurer.calls == len(entries) + 6 + 3 + 1
    table = load_latency_table(result.table_path, SPACE)
    assert isinstance(table, PlainLatencyTable) and set(table.entries) == entries
    arch = sample_plain_architecture(SPACE, 7, resolution=12)
    assert table.predict(arch, calibrated=False) == pytest.approx(
        sum(table.entries[k]["ms"] for k in arch_keys(SPACE, arch)), rel=1e-12)
    assert table.predict(arch) == pytest.approx(result.table.predict(arch))
    assert table.meta["reference"]["arch"] == largest_plain_architecture(SPACE, 12).to_dict()
    report = json.loads(result.report_paths[0].read_text())
    assert report["space"]["fingerprint"] == SPACE.fingerprint() and report["entries"] == len(table.entries)
    for name in ("lut_sum", "calibrated"):
        assert report["validation"][name]["n"] == 3
    assert 0 < report["min_latency_ms"] <= min(p["predicted_ms"] for p in table.calibration["points"])
