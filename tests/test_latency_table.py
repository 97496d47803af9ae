"""Latency lookup tables: entry enumeration, prediction, calibration, resumable profiling, reports.

Real ONNX Runtime measurements on a tiny custom space (2 stages, depths 1-2, 16 px), so the whole
file runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.arch import sample_architecture
from hwnas.cli import main as cli_main
from hwnas.encoding import GeneLayout
from hwnas.errors import ConfigError, MeasurementError, SpaceError
from hwnas.latency.device import DeviceProfile
from hwnas.latency.measure import LatencyStats, OnnxRuntimeMeasurer
from hwnas.latency.profiler import Profiler, ProfileOptions, accuracy_metrics
from hwnas.latency.table import (OVERHEAD_KEY, LatencyCorrection, LatencyTable, arch_keys, block_key,
                                 enumerate_entries, fit_correction, head_key, nnls, stem_key)
from hwnas.plan import block_plan
from hwnas.space import SearchSpace, get_space

from latency_measurers import CountingMeasurer, InterleavingMeasurer, cpu_test_profile  # noqa: E402
from tiny_spaces import TINY_ENTRIES, tiny_space  # noqa: E402 (tests/ is on sys.path)

torch.set_num_threads(1)


SPACE = tiny_space()


OPTIONS = ProfileOptions(calibrate=6, validate=3, seed=3, rounds=1)
N_GRAPHS = TINY_ENTRIES + 6 + 3 + 1  # entries, calibration, validation, the speed reference


def synthetic_table(seed: int = 0, space: SearchSpace = SPACE) -> LatencyTable:
    rng = np.random.default_rng(seed)
    entries = {e.key: {"median_ms": float(rng.uniform(0.05, 1.0))} for e in enumerate_entries(space)}
    entries[OVERHEAD_KEY]["median_ms"] = 0.01
    return LatencyTable(space, entries)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    measurer = CountingMeasurer()
    options = ProfileOptions(calibrate=6, validate=3, seed=3, rounds=2)
    result = Profiler(SPACE, cpu_test_profile(), out, options, measurer=measurer, progress=False).run()
    return result, measurer, out


# ------------------------------------------------------------------------------------ enumeration

def test_entries_are_distinct_and_cover_every_sampled_architecture():
    entries = enumerate_entries(SPACE)
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys)) == TINY_ENTRIES
    for seed in range(100):
        arch = sample_architecture(SPACE, seed)
        assert set(arch_keys(SPACE, arch)) <= set(keys)
    # the real preset too (no measurement): every block of 300 random subnets has an entry
    fm = get_space("fmnist-mbv3")
    fm_keys = {e.key for e in enumerate_entries(fm)}
    assert 150 < len(fm_keys) < 400
    for seed in range(300):
        assert set(arch_keys(fm, sample_architecture(fm, seed))) <= fm_keys


def test_keys_encode_block_shape_and_resolution():
    arch = sample_architecture(SPACE, 1)
    keys = arch_keys(SPACE, arch)
    assert keys[0] == stem_key(16) and keys[-1] == head_key(16)
    plan = block_plan(SPACE, arch)
    assert keys[1:-1] == [block_key(b.spec, b.input_size) for b in plan]
    assert keys[1].endswith(":noexp")  # the fixed expand-1 first block is its own kind of entry
    spec = plan[1].spec
    assert block_key(spec, 8) == f"mbconv:in8:out8:mid{spec.mid_channels}:k{spec.kernel}:s2:relu:se0:res8"


# ------------------------------------------------------------------------------------ prediction

def test_uncalibrated_prediction_is_the_sum_of_entries():
    table = synthetic_table()
    for seed in range(30):
        arch = sample_architecture(SPACE, seed)
        expected = sum(table.entries[k]["median_ms"] for k in arch_keys(SPACE, arch))
        assert table.predict(arch, calibrated=False) == pytest.approx(expected, rel=1e-12)
        # the identity correction removes the per-call overhead counted once per graph beyond the first
        n_graphs = len(arch_keys(SPACE, arch))
        assert table.predict(arch) == pytest.approx(expected - (n_graphs - 1) * 0.01, rel=1e-9)


def test_predict_genes_equals_predict_with_a_nontrivial_correction():
    correction = LatencyCorrection("stages", ("first", "stage0", "stage1", "stem_head", "res16"),
                                   (1.1, 0.9, 1.3, 0.7, 0.02), 0.05)
    table = synthetic_table(1).with_correction(correction)
    layout = GeneLayout(SPACE)
    genes = layout.random(300, np.random.default_rng(0))
    archs = layout.decode(genes)
    batch = table.predict_genes(genes)
    assert batch.shape == (300,)
    np.testing.assert_allclose(batch, [table.predict(a) for a in archs], rtol=1e-10)
    np.testing.assert_allclose(table.predict_genes(genes, calibrated=False),
                               [table.predict(a, calibrated=False) for a in archs], rtol=1e-10)
    np.testing.assert_allclose(batch, correction.apply(table.features(genes)), rtol=1e-10)


def test_min_latency_is_the_brute_force_minimum():
    table = synthetic_table(2).with_correction(LatencyCorrection("linear", ("total",), (0.8,), 0.1))
    layout = GeneLayout(SPACE)
    grids = np.meshgrid(*[np.arange(c) for c in layout.cardinalities], indexing="ij")
    every = np.stack([g.ravel() for g in grids], axis=1).astype(np.int8)  # the whole space
    assert table.min_latency_ms() == pytest.approx(table.predict_genes(every).min(), rel=1e-12)
    assert table.min_latency_ms(calibrated=False) == pytest.approx(
        table.predict_genes(every, calibrated=False).min(), rel=1e-12)


def test_fit_correction_recovers_a_linear_relation_and_prefers_the_simplest():
    rng = np.random.default_rng(0)
    total = rng.uniform(0.5, 2.0, 40)
    feats = {"total": total, "blocks": total * 0.8, "stem_head": total * 0.2 + rng.uniform(0, 0.01, 40),
             "first": np.full(40, 0.1), "stage0": total * 0.5, "stage1": total * 0.3, "res16": np.ones(40)}
    exact, _ = fit_correction(feats, total)
    assert exact.model == "net"  # the unfitted sum is already perfect: no parameters needed
    corr, summary = fit_correction(feats, 0.8 * total + 0.05)
    assert corr.model == "linear" and corr.coef[0] == pytest.approx(0.8, abs=1e-6)
    assert corr.intercept == pytest.approx(0.05, abs=1e-6)
    assert summary["net"]["loo_rmse_ms"] > 0.05 > summary["linear"]["loo_rmse_ms"]


def test_nnls_matches_a_hand_solved_case():
    A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(nnls(A, np.array([1.0, -1.0, 0.0])), [0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(nnls(A, np.array([1.0, 2.0, 3.0])), [1.0, 2.0], atol=1e-12)


def test_accuracy_metrics():
    m = accuracy_metrics([1.0, 2.15, 2.9, 4.5], [1.0, 2.0, 3.0, 4.0])
    assert m["n"] == 4 and m["spearman"] == pytest.approx(1.0)
    assert m["within5_pct"] == 50 and m["within10_pct"] == 75
    assert m["rmse_ms"] == pytest.approx(np.sqrt((0 + 0.0225 + 0.01 + 0.25) / 4))


# ------------------------------------------------------------------------------------ files

def test_fingerprint_mismatch_is_refused(tmp_path):
    path = synthetic_table().save(tmp_path / "t.json")
    assert LatencyTable.load(path, SPACE).predict(sample_architecture(SPACE, 0)) > 0
    other = tiny_space("tiny-lut-test-k37", kernels=(3, 7))
    with pytest.raises(SpaceError, match="different search space"):
        LatencyTable.load(path, other)
    (tmp_path / "bad.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match="hwnas profile"):
        LatencyTable.load(tmp_path / "bad.json", SPACE)
    with pytest.raises(ConfigError, match="not found"):
        LatencyTable.load(tmp_path / "missing.json", SPACE)


def test_profile_writes_table_and_report(profiled):
    result, measurer, out = profiled
    assert measurer.calls == 2 * N_GRAPHS  # two rounds, each graph exported once
    folder = out / "test-cpu"
    assert result.table_path == folder / f"{SPACE.name}.json"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{SPACE.name}{suffix}" for suffix in (".json", ".report.json", ".report.md"))  # no partial/tmp left
    table = LatencyTable.load(result.table_path, SPACE)
    assert len(table.entries) == TINY_ENTRIES
    for e in table.entries.values():
        assert 0 < e["p10_ms"] <= e["median_ms"] <= e["p90_ms"]
        # the default statistic is the minimum; each entry keeps the round with the lowest one
        assert len(e["round_medians_ms"]) == 2 and e["median_ms"] in e["round_medians_ms"]
        assert e["ms"] == e["min_ms"] <= e["median_ms"]
    for key in ("device", "runtime", "created", "protocol", "hwnas_version", "seconds"):
        assert key in table.meta
    assert table.meta["protocol"]["repeats"] == 3 and table.meta["runtime"]["onnxruntime_version"]
    assert len(table.calibration["points"]) == 6
    reference = table.meta["reference"]  # the machine-speed canary: the largest subnet, smallest resolution
    assert reference["arch"]["resolution"] == min(SPACE.resolutions) and reference["ms"] > 0
    arch = sample_architecture(SPACE, 5)
    assert table.predict(arch) == pytest.approx(result.table.predict(arch))

    report = json.loads(result.report_paths[0].read_text())
    assert report["space"]["fingerprint"] == SPACE.fingerprint()
    for name in ("lut_sum", "calibrated"):
        metrics = report["validation"][name]
        assert metrics["n"] == 3
        for field in ("rmse_ms", "mape_pct", "spearman", "within5_pct", "within10_pct"):
            assert field in metrics
    validated = {json.dumps(p["arch"]) for p in report["validation"]["points"]}
    calibrated = {json.dumps(p["arch"]) for p in table.calibration["points"]}
    assert not validated & calibrated  # held-out subnets only
    md = result.report_paths[1].read_text()
    assert "plain LUT sum" in md and "calibrated" in md and SPACE.fingerprint() in md


def test_interrupted_profile_resumes_without_remeasuring(tmp_path):
    first = CountingMeasurer(fail_after=7)
    with pytest.raises(KeyboardInterrupt):
        Profiler(SPACE, cpu_test_profile(), tmp_path, OPTIONS, measurer=first, progress=False).run()
    folder = tmp_path / "test-cpu"
    assert [p.name for p in folder.iterdir()] == [f"{SPACE.name}.partial.jsonl"]  # no table, no temp file

    second = CountingMeasurer()
    result = Profiler(SPACE, cpu_test_profile(), tmp_path, OPTIONS, measurer=second, progress=False).run()
    assert second.calls == N_GRAPHS - 7
    assert not (folder / f"{SPACE.name}.partial.jsonl").exists()
    assert len(result.table.entries) == TINY_ENTRIES

    third = CountingMeasurer()  # same device and protocol: the finished table is kept
    again = Profiler(SPACE, cpu_test_profile(), tmp_path, OPTIONS, measurer=third, progress=False).run()
    assert third.calls == 0 and again.reused


def test_interrupted_forced_rerun_keeps_the_old_table_intact(profiled, tmp_path):
    result, _, out = profiled
    before = result.table_path.read_bytes()
    broken = CountingMeasurer(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        Profiler(SPACE, cpu_test_profile(), out, ProfileOptions(calibrate=6, validate=3, seed=3, rounds=2, force=True),
                 measurer=broken, progress=False).run()
    assert result.table_path.read_bytes() == before
    assert not list(result.table_path.parent.glob(".*.tmp"))
    (result.table_path.parent / f"{SPACE.name}.partial.jsonl").unlink()


def test_interleaved_profile_times_all_graphs_together_and_resumes(tmp_path):
    profile = cpu_test_profile()
    options = ProfileOptions(calibrate=6, validate=3, seed=3)
    first = InterleavingMeasurer(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        Profiler(SPACE, profile, tmp_path, options, measurer=first, progress=False).run()
    folder = tmp_path / "test-cpu"
    assert [p.name for p in folder.iterdir()] == [f"{SPACE.name}.partial.jsonl"]
    second = InterleavingMeasurer()
    result = Profiler(SPACE, profile, tmp_path, options, measurer=second, progress=False).run()
    assert first.calls == second.calls == 0  # never one graph at a time
    assert second.passes == profile.repeats - 2  # the two checkpointed passes were kept
    assert result.table.meta["protocol"]["interleaved"] is True
    for e in result.table.entries.values():
        assert e["repeats"] == profile.repeats and e["ms"] == e["min_ms"] <= e["median_ms"]
    assert len(result.report["validation"]["points"]) == 3
    assert "interleaved" in result.report_paths[1].read_text()
    # the resumed run's times cover only its own passes, and its report says so
    seconds = result.table.meta["seconds"]
    assert (seconds["passes_reused_from_checkpoint"], seconds["passes_timed_this_run"]) == (2, profile.repeats - 2)
    assert f"2 of {profile.repeats} interleaved passes came from its checkpoint" in result.report_paths[1].read_text()


def test_burst_is_validated_and_recorded_in_the_protocol(tmp_path):
    with pytest.raises(ConfigError, match="--burst"):
        Profiler(SPACE, cpu_test_profile(), tmp_path, ProfileOptions(burst=0), measurer=CountingMeasurer())
    profiler = Profiler(SPACE, cpu_test_profile(), tmp_path, ProfileOptions(burst=5), measurer=InterleavingMeasurer())
    assert "fastest of 5 back-to-back runs" in profiler.protocol()["statistic"]


def test_measure_interleaved_returns_one_row_per_pass(tmp_path):
    from hwnas.latency.block_models import export_onnx
    from hwnas.latency.measure import time_models

    measurer = OnnxRuntimeMeasurer(cpu_test_profile())
    small = export_onnx(torch.nn.Conv2d(4, 4, 3, padding=1).eval(), (1, 4, 8, 8))
    big = export_onnx(torch.nn.Conv2d(64, 64, 3, padding=1).eval(), (1, 64, 32, 32))
    rows = measurer.measure_interleaved([(small, (1, 4, 8, 8)), (big, (1, 64, 32, 32))], passes=5)
    assert rows.shape == (5, 2) and (rows > 0).all()
    assert np.median(rows[:, 1]) > np.median(rows[:, 0])  # ~600x the MACs is slower, whatever the noise
    pair = [(small, (1, 4, 8, 8)), (big, (1, 64, 32, 32))]
    stats = time_models(measurer, pair, min_seconds=0)
    assert [s.repeats for s in stats] == [cpu_test_profile().repeats] * 2 and stats[1].min_ms > stats[0].min_ms
    longer = time_models(measurer, pair, min_seconds=0.3)  # extra passes until 0.3 s went by
    assert longer[0].repeats == longer[1].repeats > cpu_test_profile().repeats
    with pytest.raises(MeasurementError, match="burst"):
        measurer.measure_interleaved([(small, (1, 4, 8, 8))], passes=2, burst=0)


class FakeModuleMeasurer:
    """Stands in for TorchCudaMeasurer (no GPU here): 'latency' = parameter count, records what it got."""

    def __init__(self) -> None:
        self.modules: list = []

    def measure_module(self, module, input_shape):
        self.modules.append(module)
        ms = 0.001 + sum(p.numel() for p in module.parameters()) * 1e-6
        return LatencyStats.from_samples([ms, ms, ms], input_shape[0])

    def measure_onnx(self, model, input_shape=None):
        raise AssertionError("a torch-cuda profile must time torch modules, not ONNX graphs")

    def describe(self):
        return {"backend": "torch-cuda", "gpu_name": "fake"}


def test_torch_cuda_profiles_time_torch_modules(tmp_path):
    profile = DeviceProfile.from_dict(dict(name="fake-gpu", backend="torch-cuda", warmup=1, repeats=3))
    measurer = FakeModuleMeasurer()
    options = ProfileOptions(calibrate=4, validate=2, rounds=1, statistic="min")
    result = Profiler(SPACE, profile, tmp_path, options, measurer=measurer, progress=False).run()
    assert len(measurer.modules) == TINY_ENTRIES + 6 + 1  # + the speed reference
    assert all(isinstance(m, torch.nn.Module) and not m.training for m in measurer.modules)
    batchnorms = [m for timed in measurer.modules for m in timed.modules()
                  if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert not batchnorms  # timed as exported: BN folded into the convs (the export times the same form)
    assert result.table.meta["runtime"]["gpu_name"] == "fake"
    assert all(e["ms"] == e["min_ms"] for e in result.table.entries.values())  # the chosen statistic


# ------------------------------------------------------------------------------------ CLI

def test_cli_reports_unknown_device_and_space(capsys):
    assert cli_main(["profile", "--device", "no-such-device", "--space", SPACE.name]) == 2
    assert "unknown device profile" in capsys.readouterr().err
    assert cli_main(["profile", "--device", "cpu-1thread", "--space", "no-such-space"]) == 2
    assert "unknown search space" in capsys.readouterr().err
    assert cli_main(["profile", "--device", "cpu-1thread", "--space", SPACE.name, "--resolutions", "99"]) == 2
    assert "not in space" in capsys.readouterr().err


class GroupRecordingMeasurer(InterleavingMeasurer):
    """Records what each interleaved group received, with a small memory limit so graphs split into groups."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.max_interleaved_bytes = limit
        self.groups: list[list] = []
        self.events: list[str] = []

    def measure_interleaved(self, models, passes, burst=2, start=(), on_pass=None, progress=None, min_seconds=0.0):
        self.groups.append([m for m, _ in models])
        self.events.append("time")
        return super().measure_interleaved(models, passes, burst, start, on_pass, progress, min_seconds)


def test_spilled_graphs_are_read_one_group_at_a_time_and_time_as_in_memory(tmp_path, monkeypatch):
    """Large graphs wait on disk (a 160-subnet ofa-resnet50 profile held 17 GB as bytes): time_models
    reads each group's files when that group is timed, and the profile is otherwise the same."""
    import hwnas.latency.profiler as profiler_module

    monkeypatch.setattr(profiler_module, "SPILL_BYTES", 1)  # every graph goes to disk
    written: list = []
    real_spilled = profiler_module._spilled
    monkeypatch.setattr(profiler_module, "_spilled",
                        lambda graph, spill, i: written.append(real_spilled(graph, spill, i)) or written[-1])
    import hwnas.latency.measure as measure_module

    options = ProfileOptions(calibrate=6, validate=3, seed=3)
    measurer = GroupRecordingMeasurer(limit=200_000)
    real_read = measure_module._model_bytes
    monkeypatch.setattr(measure_module, "_model_bytes",
                        lambda model: measurer.events.append("read") or real_read(model))
    result = Profiler(SPACE, cpu_test_profile(), tmp_path, options, measurer=measurer, progress=False).run()
    assert written and all(isinstance(model, Path) for model, _ in written)
    assert not any(model.exists() for model, _ in written)  # the spill folder is gone after the profile
    assert len(measurer.groups) > 1  # the limit split the graphs
    last_read = len(measurer.events) - 1 - measurer.events[::-1].index("read")
    assert "time" in measurer.events[:last_read]  # later groups were read after earlier ones were timed
    for group in measurer.groups:
        assert all(isinstance(m, bytes) for m in group)  # read from disk only for the group being timed
        assert sum(len(m) for m in group) <= 200_000 + max(len(m) for m in group)  # the reference rides along
    assert set(result.table.entries) == {e.key for e in enumerate_entries(SPACE)}
    assert len(result.report["validation"]["points"]) == 3
