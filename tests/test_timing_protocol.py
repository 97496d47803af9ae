"""One timing path: models are timed with their table's protocol, and the speed reference in every group.

A fake interleaving measurer stands in for ONNX Runtime: a "model" is bytes whose first byte is its
latency, and each group it is given runs at its own machine speed (a shared machine drifts between
groups). Splitting models into groups (an agent's upload limit) must not leave groups without the
reference, and rescaling by the reference must remove the drift.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.latency.device import load_device_profile
from hwnas.latency.measure import INTERLEAVE_BURST, LATENCY_STATISTIC, OnnxRuntimeMeasurer, TimingProtocol, time_models

from latency_measurers import cpu_test_profile  # noqa: E402 (tests/ is on sys.path)
from tiny_spaces import tiny_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class DriftingMeasurer:
    """Groups of at most ``max_interleaved_bytes``; group ``g`` runs ``speeds[g]`` times slower."""

    max_interleaved_bytes = 300

    def __init__(self, speeds: list[float]) -> None:
        self.profile = load_device_profile("cpu-1thread").replace(repeats=4)
        self.speeds = speeds
        self.calls: list[list[bytes]] = []
        self.bursts: list[int] = []

    def measure_onnx(self, model, shape=None):  # pragma: no cover - only interleaved timing is used here
        raise AssertionError("time_models must interleave")

    def measure_interleaved(self, models, passes, burst, progress=None, min_seconds=0.0, **_):
        self.calls.append([m for m, _ in models])
        self.bursts.append(burst)
        speed = self.speeds[len(self.calls) - 1]
        return np.array([[m[0] * speed for m, _ in models]] * passes, dtype=float)


def _model(ms: int, size: int = 100) -> tuple[bytes, tuple[int, ...]]:
    return bytes([ms]) + bytes(size - 1), (1, 1, 28, 28)


def test_reference_is_timed_in_every_group_and_drift_is_divided_out():
    reference = (bytes([50]) + b"R" * 49, (1, 1, 28, 28))
    models = [_model(ms) for ms in (10, 20, 30, 40)]
    measurer = DriftingMeasurer(speeds=[1.0, 2.0, 1.5])
    stats = time_models(measurer, models, reference=reference, min_seconds=0)
    assert len(measurer.calls) >= 2, "the byte limit should split the models into groups"
    assert all(call[-1] == reference[0] for call in measurer.calls)  # the reference closes every group
    assert sorted(m for call in measurer.calls for m in call[:-1]) == sorted(m for m, _ in models)
    # each group rescaled to the fastest group's speed: the models' own latencies come back
    assert [s.min_ms for s in stats] == pytest.approx([10, 20, 30, 40, 50])


def test_time_models_uses_the_protocols_burst():
    measurer = DriftingMeasurer(speeds=[1.0] * 4)
    time_models(measurer, [_model(5), _model(6)], protocol=TimingProtocol("median", 2), min_seconds=0)
    assert measurer.bursts == [2]


def test_protocol_is_read_from_a_shipped_table():
    meta = json.loads((ROOT / "latency_tables" / "cpu-1thread" / "fmnist-mbv3.json").read_text())
    protocol = TimingProtocol.of_table(meta)
    assert protocol.statistic == meta["protocol"]["statistic"].split()[0]
    assert f"fastest of {protocol.burst} " in meta["protocol"]["statistic"]
    assert TimingProtocol.of_table({"protocol": {"statistic": "median over 9 repeats", "interleaved": False}}) \
        == TimingProtocol("median", 1)
    assert TimingProtocol.of_table(None) == TimingProtocol(LATENCY_STATISTIC, INTERLEAVE_BURST)


def test_export_times_the_reference_in_every_group(monkeypatch):
    """measure_together (hwnas export) with a byte limit: every group carries the reference."""
    from hwnas.arch import largest_architecture
    from hwnas.export import pipeline
    from hwnas.export.report import ModelFile, ModelResult
    from hwnas.space import get_space

    space = get_space("fmnist-mbv3")
    seen: list[list[bytes]] = []

    def fake_time_models(measurer, models, progress=None, protocol=TimingProtocol(), reference=None, **_):
        seen.append([m for m, _ in models] + [reference[0]])
        return [type("S", (), {"value": lambda self, s: 1.0, "to_dict": lambda self: {}})()] * (len(models) + 1)

    monkeypatch.setattr("hwnas.latency.measure.time_models", fake_time_models)
    results = []
    for i in range(2):
        path = Path(__file__)  # any readable file stands in for an ONNX model here
        results.append(ModelResult(name=f"m{i}", arch={"resolution": 28}, macs=1, params=1,
                                   fp32=ModelFile(path=str(path), size_bytes=1)))
    measurer = DriftingMeasurer([1.0])
    reference = {"arch": largest_architecture(space, min(space.resolutions)).to_dict(), "ms": 2.0, "table": "t"}
    tables = {"cpu-1thread": pipeline.DeviceTable(TimingProtocol("min", 3), reference)}
    pipeline.measure_together(results, {"cpu-1thread": measurer}, space, None, tables, progress=False)
    assert len(seen) == 1 and len(seen[0]) == 3  # both models and the reference handed to time_models
    stats = results[0].fp32.latency["cpu-1thread"]
    assert stats["statistic"] == "min" and stats["speed"]["slowdown"] == 0.5


def test_exports_default_to_the_table_graphs_opset():
    """Deployed exports and table graphs share an opset (the batch axis is the measured difference)."""
    from hwnas.export.settings import DEFAULT_OPSET, TABLE_OPSET, ExportSettings
    from hwnas.latency.block_models import ONNX_OPSET

    assert TABLE_OPSET == ONNX_OPSET == DEFAULT_OPSET == ExportSettings(out=Path("x")).resolved_opset
    assert ExportSettings(out=Path("x"), exporter="dynamo").resolved_opset == 18


class _FakeClock:
    """``perf_counter_ns`` for the measurer: each session run advances it by the model's latency
    times a seeded random factor, so two timing paths read the same samples iff they issue the
    same runs in the same order."""

    def __init__(self) -> None:
        self.now, self.rng = 0, np.random.default_rng(0)

    def perf_counter_ns(self) -> int:
        return self.now

    def __getattr__(self, name):  # perf_counter etc.: the real clock
        import time

        return getattr(time, name)


class _FakeSession:
    def __init__(self, model: bytes, runs: list[int], clock: _FakeClock) -> None:
        import zlib

        self.id, self.runs, self.clock = zlib.crc32(model), runs, clock

    def run(self, outputs, feeds):
        self.runs.append(self.id)
        self.clock.now += int((1000 + self.id % 5000) * (1 + self.clock.rng.random()))


class _RecordingMeasurer(OnnxRuntimeMeasurer):
    """The real ONNX Runtime measurer (interleaving, warm-up, bursts) with sessions replaced by
    recorders: what is timed is the sequence of runs, not ONNX Runtime."""

    def __init__(self, limit: int, clock: _FakeClock) -> None:
        super().__init__(cpu_test_profile())
        self.max_interleaved_bytes, self.clock = limit, clock
        self.runs: list[int] = []
        self.models: list[bytes] = []

    def _session(self, model):
        self.models.append(bytes(model))
        return _FakeSession(bytes(model), self.runs, self.clock)

    def _inputs(self, session, input_shape):
        return {}


@pytest.mark.parametrize("statistic,burst", [("min", 3), ("median", 2)])
def test_profiler_times_through_time_models_with_the_tables_protocol(tmp_path, monkeypatch, statistic, burst):
    """``hwnas profile`` and export / ``--validate-front`` share one timing path: the same runs in
    the same order (warm-up, ``repeats`` passes of ``burst`` runs per graph, groups each closed by the
    speed reference) and the same statistic, read from the protocol the table records."""
    from hwnas.latency import measure
    from hwnas.latency.profiler import Profiler, ProfileOptions

    clock = _FakeClock()
    monkeypatch.setattr(measure, "time", clock)
    options = ProfileOptions(calibrate=3, validate=2, seed=3, statistic=statistic, burst=burst)
    limit, graphs = 0, []
    for attempt in ("one group", "split into groups"):
        clock.rng = np.random.default_rng(1)
        profiling = _RecordingMeasurer(limit, clock)
        torch.manual_seed(0)  # the same weights, so both attempts export the same graphs
        result = Profiler(tiny_space(), profiling.profile, tmp_path / attempt, options, measurer=profiling,
                          progress=False).run()
        graphs = graphs or list(profiling.models)  # one group: every graph once, in the profiler's order
        if limit:
            assert result.table.meta["interleaved_group_slowdowns"], "the byte limit should split the graphs"
        clock.rng = np.random.default_rng(1)
        direct = _RecordingMeasurer(limit, clock)
        protocol = TimingProtocol.of_table(result.table.meta)
        assert protocol == TimingProtocol(statistic, burst)
        stats = time_models(direct, [(g, None) for g in graphs[:-1]], min_seconds=0, protocol=protocol,
                            reference=(graphs[-1], None))
        assert profiling.runs == direct.runs and profiling.models == direct.models
        per_graph = profiling.profile.warmup + profiling.profile.repeats * burst  # exactly `repeats` passes
        assert len(profiling.runs) == per_graph * len(profiling.models)
        timed = [*result.table.entries.values(), *result.table.calibration["points"],
                 *result.report["validation"]["points"]]
        table_ms = sorted(e.get("ms", e.get("measured_ms")) for e in timed)
        assert table_ms == sorted(s.value(statistic) for s in stats[:-1])
        assert result.table.meta["reference"]["ms"] == stats[-1].value(statistic)
        limit = 3 * max(len(g) for g in graphs)
