"""Local latency measurement: real ONNX Runtime timings on a tiny Conv+Relu model."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwnas.errors import MeasurementError
from hwnas.latency.device import DeviceProfile
from hwnas.latency.measure import (LatencyStats, Measurer, OnnxRuntimeMeasurer, RemoteMeasurer,
                                   TorchCudaMeasurer, host_facts, make_measurer, pinned_to)


def conv_relu_model(batch: int | str = 1) -> bytes:
    """Conv(3->8, 3x3) + Relu on 1x3x16x16 (or a symbolic batch), opset 17."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8, 16, 16])],
        initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def cpu_profile(**changes) -> DeviceProfile:
    first_core = min(os.sched_getaffinity(0))
    base = dict(name="test-cpu", backend="onnxruntime", threads=1, pin_cores=[first_core], warmup=2, repeats=5)
    return DeviceProfile.from_dict({**base, **changes})


def test_local_measurement_gives_sane_stats():
    measurer = OnnxRuntimeMeasurer(cpu_profile())
    assert isinstance(measurer, Measurer)
    affinity_before = os.sched_getaffinity(0)
    stats = measurer.measure_onnx(conv_relu_model())
    assert os.sched_getaffinity(0) == affinity_before  # pinning restored
    assert stats.repeats == 5 and stats.batch_size == 1
    assert 0 < stats.min_ms <= stats.p10_ms <= stats.median_ms <= stats.p90_ms
    assert stats.min_ms <= stats.mean_ms and stats.std_ms >= 0
    assert stats.median_ms < 1000  # a 16x16 conv takes far less than a second


def test_symbolic_batch_uses_profile_batch_and_shape_override(tmp_path):
    measurer = OnnxRuntimeMeasurer(cpu_profile(batch_size=4, pin_cores=None))
    assert measurer.measure_onnx(conv_relu_model("N")).batch_size == 4
    path = tmp_path / "m.onnx"
    path.write_bytes(conv_relu_model("N"))
    assert measurer.measure_onnx(path, input_shape=(2, 3, 16, 16)).batch_size == 2  # a path works too


def test_unavailable_provider_lists_available_ones():
    with pytest.raises(MeasurementError) as info:
        OnnxRuntimeMeasurer(cpu_profile(provider="NoSuchExecutionProvider"))
    assert "NoSuchExecutionProvider" in str(info.value) and "CPUExecutionProvider" in str(info.value)


def test_bad_model_and_bad_shape_raise_measurement_error():
    measurer = OnnxRuntimeMeasurer(cpu_profile())
    with pytest.raises(MeasurementError, match="cannot load the model"):
        measurer.measure_onnx(b"definitely not onnx")
    with pytest.raises(MeasurementError, match="input_shape"):
        measurer.measure_onnx(conv_relu_model(), input_shape=(1, 5, 16, 16))


def test_pinning_rejects_cpus_outside_affinity():
    with pytest.raises(MeasurementError, match="cannot pin"):
        with pinned_to([10_000]):
            pass


def test_latency_stats_from_samples_and_round_trip():
    stats = LatencyStats.from_samples([5.0, 1.0, 3.0, 2.0, 4.0], batch_size=8)
    assert (stats.median_ms, stats.min_ms, stats.mean_ms, stats.repeats) == (3.0, 1.0, 3.0, 5)
    assert stats.p10_ms == pytest.approx(1.4) and stats.p90_ms == pytest.approx(4.6)
    assert LatencyStats.from_dict(stats.to_dict()) == stats
    with pytest.raises(MeasurementError, match="median_ms"):
        LatencyStats.from_dict({"mean_ms": 1.0})
    with pytest.raises(MeasurementError):
        LatencyStats.from_samples([], batch_size=1)


def test_describe_reports_host_and_runtime():
    facts = OnnxRuntimeMeasurer(cpu_profile()).describe()
    assert facts["cpu_model"] and facts["cpu_count"] >= 1
    assert "CPUExecutionProvider" in facts["onnxruntime_providers"] and facts["onnxruntime_version"]
    assert facts["provider"] == "CPUExecutionProvider" and facts["threads"] == 1
    assert set(host_facts()) <= set(facts)


def test_make_measurer_picks_backend(monkeypatch):
    assert isinstance(make_measurer(cpu_profile()), OnnxRuntimeMeasurer)
    assert isinstance(make_measurer("cpu-1thread"), OnnxRuntimeMeasurer)
    monkeypatch.setenv("HWNAS_AGENT_TOKEN", "x")
    assert isinstance(make_measurer("edge-agent"), RemoteMeasurer)  # no connection until used


def _cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.skipif(_cuda_available(), reason="checks the no-CUDA error path")
def test_torch_cuda_without_cuda_raises_clear_error():
    with pytest.raises(MeasurementError, match="no CUDA device"):
        make_measurer("cuda-b1")


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("graphs", [False, True])
def test_torch_cuda_measures_module(graphs):
    import torch

    torch.set_num_threads(1)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    profile = DeviceProfile(name="gpu", backend="torch-cuda", precision="fp16", warmup=3, repeats=10,
                            cuda_graphs=graphs)
    stats = TorchCudaMeasurer(profile).measure_module(module, (2, 3, 16, 16))
    assert stats.repeats == 10 and stats.batch_size == 2 and 0 < stats.min_ms <= stats.median_ms
    assert next(module.parameters()).device.type == "cpu"  # caller's module untouched
