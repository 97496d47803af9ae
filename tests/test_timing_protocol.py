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

from hwnas.latency.device import load_device_profile
from hwnas.latency.measure import INTERLEAVE_BURST, LATENCY_STATISTIC, TimingProtocol, time_models

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
