"""INT8 latency tables (issue 21): quantised profiling, side-by-side files, resume, loading, speed ratios.

Real ONNX Runtime quantisation and timing on the tiny test space, so the file runs in seconds.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hwnas.cli import main as cli_main
from hwnas.errors import ConfigError
from hwnas.export.quantize import quantize_graph
from hwnas.latency.block_models import block_module, export_onnx, quantize_for_latency
from hwnas.latency.device import DeviceProfile
from hwnas.latency.profiler import Profiler, ProfileOptions
from hwnas.latency.table import (OVERHEAD_KEY, LatencyTable, enumerate_entries, entry_type,
                                 precision_speed_ratios)
from hwnas.paths import table_path

from latency_measurers import InterleavingMeasurer, cpu_test_profile  # noqa: E402 (tests/ is on sys.path)
from tiny_spaces import TINY_ENTRIES, tiny_space  # noqa: E402

torch.set_num_threads(1)

SPACE = tiny_space()
INT8 = ProfileOptions(calibrate=6, validate=3, seed=3, precision="int8")
N_GRAPHS = TINY_ENTRIES + 6 + 3 + 1  # entries, calibration, validation, the speed reference


class RecordingMeasurer(InterleavingMeasurer):
    """The real interleaved measurer (counted, interruptible) that also keeps the graphs it timed."""

    def __init__(self, fail_after_passes: int | None = None) -> None:
        super().__init__(fail_after_passes)
        self.graphs: list[bytes] = []

    def measure_interleaved(self, models, *args, **kwargs):
        self.graphs = [graph for graph, _ in models]
        return super().measure_interleaved(models, *args, **kwargs)


def _ops(graph: bytes) -> set[str]:
    return {node.op_type for node in onnx.load_from_string(graph).graph.node}


@pytest.fixture(scope="module")
def both_tables(tmp_path_factory):
    """An FP32 table, then the INT8 table of the same device beside it."""
    out = tmp_path_factory.mktemp("tables")
    fp32 = Profiler(SPACE, cpu_test_profile(), out, ProfileOptions(calibrate=6, validate=3, seed=3),
                    measurer=RecordingMeasurer(), progress=False).run()
    measurer = RecordingMeasurer()
    int8 = Profiler(SPACE, cpu_test_profile(), out, INT8, measurer=measurer, progress=False).run()
    return fp32, int8, measurer, out


def test_int8_profile_times_quantised_graphs_and_writes_its_own_table(both_tables):
    fp32, int8, measurer, out = both_tables
    folder = out / "test-cpu"
    assert int8.table_path == folder / f"{SPACE.name}.int8.json" == table_path(out, "test-cpu", SPACE.name, "int8")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{SPACE.name}{p}{s}" for p in ("", ".int8") for s in (".json", ".report.json", ".report.md"))
    # every graph with a conv (all but the one-ReLU overhead graph) was timed in its QDQ form
    assert len(measurer.graphs) == N_GRAPHS
    quantised = [g for g in measurer.graphs if "Conv" in _ops(g) or "QLinearConv" in _ops(g)]
    assert len(quantised) == N_GRAPHS - 1
    assert all({"QuantizeLinear", "DequantizeLinear"} <= _ops(g) for g in quantised)

    table = LatencyTable.load(int8.table_path, SPACE)  # the same type loads both precisions
    assert table.precision == "int8" and LatencyTable.load(fp32.table_path, SPACE).precision == "fp32"
    assert "per-channel" in table.meta["protocol"]["quantization"]
    assert len(table.entries) == TINY_ENTRIES and len(table.calibration["points"]) == 6
    assert int8.report["precision"] == "int8" and int8.report["validation"]["calibrated"]["n"] == 3
    assert "(INT8)" in int8.report_paths[1].read_text()


def test_int8_report_gives_the_fp32_speed_ratio_per_entry_type(both_tables):
    fp32, int8, _, _ = both_tables
    speedup = int8.report["speedup_vs_fp32"]
    types = {entry_type(e) for e in enumerate_entries(SPACE)}
    assert {r["type"] for r in speedup["ratios"]} == types
    assert sum(r["n"] for r in speedup["ratios"]) == TINY_ENTRIES
    stem = next(r for r in speedup["ratios"] if r["type"] == "stem")
    key = next(e.key for e in enumerate_entries(SPACE) if e.kind == "stem")
    assert stem["median"] == pytest.approx(fp32.table.entries[key]["ms"] / int8.table.entries[key]["ms"])
    assert "INT8 speed-up over FP32" in int8.report_paths[1].read_text()
    assert "speedup_vs_fp32" not in fp32.report  # an FP32 report has nothing to compare with


def test_speed_ratios_group_entries_by_type():
    entries = enumerate_entries(SPACE)
    fp32 = LatencyTable(SPACE, {e.key: {"ms": 1.0} for e in entries})
    # INT8 twice as fast on ReLU blocks, as fast elsewhere
    int8 = LatencyTable(SPACE, {e.key: {"ms": 0.5 if e.block is not None and e.block.act == "relu" else 1.0}
                                for e in entries})
    ratios = {r["type"]: r for r in precision_speed_ratios(int8, fp32)}
    relu_types = {entry_type(e) for e in entries if e.block is not None and e.block.act == "relu"}
    assert relu_types and all(ratios[t]["median"] == ratios[t]["min"] == ratios[t]["max"] == 2.0 for t in relu_types)
    assert all(r["median"] == 1.0 for t, r in ratios.items() if t not in relu_types)
    assert ratios["mbconv k3 e4 relu"]["n"] == 2  # one per stage-0 slot
    assert ratios[OVERHEAD_KEY]["n"] == 1


def test_interrupted_int8_profile_resumes_from_its_own_checkpoint(tmp_path):
    small = ProfileOptions(calibrate=2, validate=1, seed=3, precision="int8")  # fewer subnets: faster
    first = RecordingMeasurer(fail_after_passes=2)
    with pytest.raises(KeyboardInterrupt):
        Profiler(SPACE, cpu_test_profile(), tmp_path, small, measurer=first, progress=False).run()
    folder = tmp_path / "test-cpu"
    assert [p.name for p in folder.iterdir()] == [f"{SPACE.name}.int8.partial.jsonl"]
    second = RecordingMeasurer()
    result = Profiler(SPACE, cpu_test_profile(), tmp_path, small, measurer=second, progress=False).run()
    assert second.passes == cpu_test_profile().repeats - 2  # the checkpointed passes were kept
    assert result.table.precision == "int8" and not (folder / f"{SPACE.name}.int8.partial.jsonl").exists()
    third = RecordingMeasurer()  # finished and same protocol: kept; an FP32 run is a different table
    assert Profiler(SPACE, cpu_test_profile(), tmp_path, small, measurer=third, progress=False).run().reused
    assert "speedup_vs_fp32" not in result.report  # no FP32 table yet
    fp32 = Profiler(SPACE, cpu_test_profile(), tmp_path, ProfileOptions(calibrate=2, validate=1, seed=3),
                    measurer=RecordingMeasurer(), progress=False)
    assert fp32.path == folder / f"{SPACE.name}.json" and not fp32.path.exists()
    fp32.run()  # profiled after the INT8 table: asking for the INT8 table again adds the comparison
    again = Profiler(SPACE, cpu_test_profile(), tmp_path, small, measurer=third, progress=False).run()
    assert again.reused and third.passes == 0 and again.report["speedup_vs_fp32"]["ratios"]
    assert "speedup_vs_fp32" in json.loads(again.report_paths[0].read_text())


def test_int8_needs_an_onnx_runtime_device_and_a_known_precision(tmp_path):
    gpu = DeviceProfile.from_dict(dict(name="gpu", backend="torch-cuda", warmup=1, repeats=3))
    with pytest.raises(ConfigError, match="onnxruntime or remote device"):
        Profiler(SPACE, gpu, tmp_path, INT8, measurer=RecordingMeasurer())
    with pytest.raises(ConfigError, match="fp32, int8"):
        Profiler(SPACE, cpu_test_profile(), tmp_path, ProfileOptions(precision="fp16"), measurer=RecordingMeasurer())


def test_quantised_block_stays_close_to_fp32():
    """The latency graphs are real INT8 models: same outputs as FP32 up to quantisation error."""
    spec = next(e for e in enumerate_entries(SPACE) if e.kind == "block" and e.block.expand_conv)
    shape = (1, *spec.input_shape)
    fp32 = export_onnx(block_module(spec.block), shape)
    x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    run = lambda g: ort.InferenceSession(g, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]  # noqa: E731
    ref, q = run(fp32), run(quantize_for_latency(fp32, shape))
    assert np.abs(q - ref).max() < 0.1 * np.abs(ref).max()
    assert quantize_for_latency(fp32, shape) == quantize_for_latency(fp32, shape)  # resumable: same bytes
    with pytest.raises(Exception, match="activation_type"):
        quantize_graph(fp32, [x], activation_type="int4")


def test_cli_profiles_int8(tmp_path, capsys):
    args = ["profile", "--device", "cpu-1thread", "--space", SPACE.name, "--fast", "--calibrate", "2",
            "--validate", "1", "--out", str(tmp_path), "--no-progress"]
    assert cli_main(args + ["--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert f"{SPACE.name}.int8.json" in out
    data = json.loads((tmp_path / "cpu-1thread" / f"{SPACE.name}.int8.json").read_text())
    assert data["protocol"]["precision"] == "int8"
    with pytest.raises(SystemExit):
        cli_main(args + ["--precision", "int4"])
    assert "invalid choice" in capsys.readouterr().err
