"""Measurers the latency-table tests share: the real ONNX Runtime measurer, counted and interruptible."""

from __future__ import annotations

from hwnas.latency.device import DeviceProfile
from hwnas.latency.measure import OnnxRuntimeMeasurer


def cpu_test_profile() -> DeviceProfile:
    return DeviceProfile.from_dict(dict(name="test-cpu", backend="onnxruntime", threads=1, warmup=1, repeats=3))


class CountingMeasurer:
    """Wraps the real measurer: counts calls, and can fail after ``fail_after`` calls (an interruption)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.inner = OnnxRuntimeMeasurer(cpu_test_profile())
        self.calls = 0
        self.fail_after = fail_after

    def measure_onnx(self, model, input_shape=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return self.inner.measure_onnx(model, input_shape)

    def describe(self):
        return self.inner.describe()


class InterleavingMeasurer(CountingMeasurer):
    """The real ONNX Runtime measurer's interleaved path, counting passes; can fail after ``fail_after`` passes."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.profile = self.inner.profile
        self.passes = 0
        self.fail_after_passes = fail_after

    def measure_interleaved(self, models, passes, burst=2, start=(), on_pass=None, progress=None, min_seconds=0.0):
        def counted(row):
            if self.fail_after_passes is not None and self.passes >= self.fail_after_passes:
                raise KeyboardInterrupt("simulated interruption")
            self.passes += 1
            if on_pass is not None:
                on_pass(row)

        return self.inner.measure_interleaved(models, passes, burst, start, counted, progress, min_seconds)
