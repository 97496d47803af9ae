"""Latency measurement backends: local ONNX Runtime, PyTorch on CUDA, and a remote edge agent.

All backends follow one protocol (warm-up runs, then ``repeats`` individually timed runs) and
return :class:`LatencyStats`, so a latency table does not care where it was measured. Local ONNX
Runtime can also time many models in interleaved passes (:meth:`OnnxRuntimeMeasurer.measure_interleaved`)
so that a drifting machine slows all of them alike. The headline number is the minimum
(:data:`LATENCY_STATISTIC`): on a shared machine other tenants only ever add time, and the minimum
over interleaved passes is what reproduced within +-10 % here; p10/median/p90 show the noise.

The edge agent imports this module on a board that has only numpy + onnxruntime, so torch is
imported lazily inside :class:`TorchCudaMeasurer` and onnxruntime lazily where it is used.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from hwnas.errors import MeasurementError
from hwnas.latency.agent_client import AgentClient
from hwnas.latency.device import DeviceProfile, load_device_profile
from hwnas.latency.stats import LATENCY_STATISTIC, LatencyStats

# Back-to-back runs per model per interleaved pass; the fastest is kept. With 2, runs right after
# hundreds of other graphs still paid for cold caches, and a table agreed with its own validation but
# over-predicted fresh subnets timed later in small groups. With 5 it agrees with them too: see
# experiments/results/deployment_agreement.json (experiments/deployment_agreement.py); the burst-2
# run was not kept as a result file.
INTERLEAVE_BURST = 5
# A group of a few models finishes its passes in a fraction of a second, inside one slow phase of a
# shared machine; time_models keeps passing until this long has gone by (profiling runs last longer).
MIN_MEASURE_SECONDS = 5.0
MAX_PASSES = 100_000


@runtime_checkable
class Measurer(Protocol):
    """What every backend offers: time an ONNX model and describe the hardware/software it ran on."""

    def measure_onnx(self, model: bytes | str | Path, input_shape: tuple[int, ...] | None = None) -> LatencyStats:
        ...

    def describe(self) -> dict[str, Any]:
        ...


# ---------------------------------------------------------------------------- host facts

def cpu_model() -> str:
    """CPU name from /proc/cpuinfo (x86 'model name', ARM boards' 'Model'/'Hardware'), else platform."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == key and v.strip():
                return v.strip()
    return platform.processor() or platform.machine() or "unknown"


def memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_names() -> list[str]:
    """NVIDIA GPU names from the driver's /proc entries (no torch or nvidia-smi needed)."""
    names = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        with contextlib.suppress(OSError):
            for line in info.read_text(encoding="utf-8").splitlines():
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
    return names


def host_facts() -> dict[str, Any]:
    """Hardware and software facts stamped next to every measurement."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    facts: dict[str, Any] = {
        "hostname": platform.node(), "machine": platform.machine(), "os": platform.platform(),
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "cpu_affinity": affinity,
        "memory_mb": memory_mb(), "gpu_names": gpu_names(), "python_version": platform.python_version(),
        "numpy_version": np.__version__,
    }
    try:
        from hwnas import __version__ as hwnas_version
        facts["hwnas_version"] = hwnas_version
    except ImportError:  # pragma: no cover
        facts["hwnas_version"] = None
    try:
        ort = _import_ort()
        facts["onnxruntime_version"] = ort.__version__
        facts["onnxruntime_providers"] = list(ort.get_available_providers())
    except MeasurementError:
        facts["onnxruntime_version"] = None
        facts["onnxruntime_providers"] = []
    return facts


# ---------------------------------------------------------------------------- ONNX Runtime

def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MeasurementError("onnxruntime is not installed; pip install onnxruntime "
                               "(or onnxruntime-gpu for CUDA)") from None
    return onnxruntime


@contextlib.contextmanager
def pinned_to(cores: Sequence[int] | None) -> Iterator[None]:
    """Run the block with this thread's CPU affinity set to ``cores``; restore it afterwards.

    Linux applies ``sched_setaffinity(0, ...)`` to the calling thread, and ONNX Runtime's pool
    threads inherit it when the session is created inside the block.
    """
    if not cores:
        yield
        return
    if not hasattr(os, "sched_setaffinity"):
        raise MeasurementError("core pinning needs Linux (os.sched_setaffinity); set pin_cores: null in the profile")
    before = os.sched_getaffinity(0)
    missing = sorted(set(cores) - before)
    if missing:
        raise MeasurementError(f"cannot pin to CPU(s) {missing}: this process may only use {sorted(before)}; "
                               "edit pin_cores in the device profile")
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Hold torch at one intra-op thread while timing: idle torch workers spin on the cores being
    measured. Does nothing where torch is absent (the edge agent)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def _ort_error_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


class OnnxRuntimeMeasurer:
    """Times ONNX models with an ``onnxruntime.InferenceSession`` configured from a device profile."""

    max_interleaved_bytes = 1 << 30  # models held open at once by measure_interleaved (sessions ~ 2-3x this)

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        self._ort = _import_ort()
        available = list(self._ort.get_available_providers())
        if profile.provider not in available:
            raise MeasurementError(
                f"execution provider {profile.provider} is not available in this onnxruntime "
                f"{self._ort.__version__}; available: {', '.join(available)}. Install the matching "
                "onnxruntime package (e.g. onnxruntime-gpu) or change provider in the device profile")

    def session_options(self) -> Any:
        """ONNX Runtime's conventions for stable latency: fixed intra-op threads, sequential execution."""
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = self.profile.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only; warnings would flood a profiling run
        return so

    def providers(self) -> list[str]:
        if self.profile.provider == "CPUExecutionProvider":
            return ["CPUExecutionProvider"]
        return [self.profile.provider, "CPUExecutionProvider"]  # ORT convention: CPU fallback last

    def _session(self, model: bytes | str | Path) -> Any:
        source = bytes(model) if isinstance(model, (bytes, bytearray, memoryview)) else str(model)
        try:
            return self._ort.InferenceSession(source, sess_options=self.session_options(),
                                              providers=self.providers())
        except Exception as exc:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
            raise MeasurementError(f"onnxruntime cannot load the model ({_ort_error_reason(exc)}); check it is a "
                                   "valid ONNX file using only standard ops supported by this runtime") from None

    def _inputs(self, session: Any, input_shape: tuple[int, ...] | None) -> dict[str, np.ndarray]:
        """Fixed random inputs created once: static dims from the model, a symbolic batch -> batch_size."""
        rng = np.random.default_rng(0)
        feeds = {}
        for i, arg in enumerate(session.get_inputs()):
            if i == 0 and input_shape is not None:
                shape = tuple(int(d) for d in input_shape)
            else:
                shape = tuple(d if isinstance(d, int) and d > 0 else
                              (self.profile.batch_size if j == 0 else None) for j, d in enumerate(arg.shape))
                if any(d is None for d in shape):
                    raise MeasurementError(f"model input {arg.name!r} has symbolic non-batch dims {arg.shape}; "
                                           "pass input_shape explicitly or export with static shapes")
            dtype = _ORT_DTYPES.get(arg.type)
            if dtype is None:
                raise MeasurementError(f"model input {arg.name!r} has unsupported type {arg.type}; "
                                       f"supported: {', '.join(_ORT_DTYPES)}")
            if np.issubdtype(dtype, np.floating):
                feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
            else:
                feeds[arg.name] = np.zeros(shape, dtype=dtype)
        return feeds

    def measure_onnx(self, model: bytes | str | Path, input_shape: tuple[int, ...] | None = None) -> LatencyStats:
        """Warm up, then time ``repeats`` single runs with ``perf_counter_ns``; return their statistics."""
        with pinned_to(self.profile.pin_cores):
            session = self._session(model)
            if self.profile.provider not in session.get_providers():
                raise MeasurementError(f"onnxruntime did not enable {self.profile.provider} for this model "
                                       f"(session uses {session.get_providers()}); check the provider's install")
            feeds = self._inputs(session, input_shape)
            first = next(iter(feeds.values()), None)
            batch = int(first.shape[0]) if first is not None and first.ndim else 1
            try:
                for _ in range(self.profile.warmup):
                    session.run(None, feeds)
                samples = []
                for _ in range(self.profile.repeats):
                    t0 = time.perf_counter_ns()
                    session.run(None, feeds)
                    samples.append((time.perf_counter_ns() - t0) / 1e6)
            except Exception as exc:
                raise MeasurementError(f"onnxruntime failed running the model ({_ort_error_reason(exc)}); check "
                                       "input_shape matches the model's input") from None
        return LatencyStats.from_samples(samples, batch)

    def measure_interleaved(self, models: Sequence[tuple[bytes | str | Path, tuple[int, ...] | None]],
                            passes: int, burst: int = INTERLEAVE_BURST, start: Sequence[np.ndarray] = (),
                            on_pass: Any = None, progress: Any = None, min_seconds: float = 0.0) -> np.ndarray:
        """Time many models in round-robin passes; return a (passes, models) array of milliseconds.

        Why: a shared or virtualised CPU drifts in speed. On this project's 2-core VM a model's
        latency jumps for fractions of a second and stays slower for seconds at a time, so
        timing model A now and model B a minute later turns machine drift into table error. Here
        every model gets one burst per pass (``burst`` back-to-back runs, the fastest kept, so its
        weights are cache-warm as in deployment), and the passes cycle through all models, so each
        model's samples come from the same moments as every other's and a statistic over passes
        (median, min) compares them fairly. ``start`` holds passes already done (resume);
        ``on_pass(row)`` is called after each new pass (checkpointing); ``progress`` wraps the pass
        range (a progress bar). ``min_seconds`` adds passes until the timing has lasted that long:
        slow phases of a shared machine can last seconds, and a minimum needs to see a fast one.
        """
        if burst < 1 or passes < 0:
            raise MeasurementError("interleaved timing needs burst >= 1 and passes >= 0")
        rows = [np.asarray(r, dtype=np.float64) for r in start][:passes]
        if len(rows) >= passes:
            return np.array(rows).reshape(len(rows), len(models))
        with pinned_to(self.profile.pin_cores):
            runs = []
            for j, (model, shape) in enumerate(models):
                try:
                    session = self._session(model)
                    feeds = self._inputs(session, shape)
                except MeasurementError as exc:
                    raise MeasurementError(f"model {j} of {len(models)}: {exc}") from None
                runs.append((session, feeds))
            try:
                for session, feeds in runs:
                    for _ in range(self.profile.warmup):
                        session.run(None, feeds)
                started = time.perf_counter()
                todo = range(len(rows), passes)
                for _ in (progress(todo) if progress is not None else todo):
                    row = np.array([self._burst(session, feeds, burst) for session, feeds in runs])
                    rows.append(row)
                    if on_pass is not None:
                        on_pass(row)
                while time.perf_counter() < started + min_seconds and len(rows) < MAX_PASSES:
                    rows.append(np.array([self._burst(session, feeds, burst) for session, feeds in runs]))
            except MeasurementError:
                raise
            except Exception as exc:
                raise MeasurementError(f"onnxruntime failed running a model ({_ort_error_reason(exc)}); check "
                                       "input_shape matches the model's input") from None
        return np.array(rows)

    @staticmethod
    def _burst(session: Any, feeds: dict[str, np.ndarray], burst: int) -> float:
        """``burst`` back-to-back runs; the fastest in milliseconds."""
        best = None
        for _ in range(burst):
            t0 = time.perf_counter_ns()
            session.run(None, feeds)
            dt = time.perf_counter_ns() - t0
            best = dt if best is None or dt < best else best
        return best / 1e6

    def describe(self) -> dict[str, Any]:
        return {**host_facts(), "backend": "onnxruntime", "provider": self.profile.provider,
                "threads": self.profile.threads, "pin_cores": list(self.profile.pin_cores or []) or None}


@dataclass(frozen=True)
class TimingProtocol:
    """How one latency is summarised: ``statistic`` over interleaved passes, each pass the fastest of
    ``burst`` back-to-back runs. Models compared with a latency table must be timed with the table's
    own protocol (:meth:`of_table`), else predicted and measured differ by protocol, not by error."""

    statistic: str = LATENCY_STATISTIC
    burst: int = INTERLEAVE_BURST

    @classmethod
    def of_table(cls, meta: dict[str, Any] | None) -> "TimingProtocol":
        """The protocol a table records in ``meta["protocol"]`` (e.g. ``"min over 30 interleaved ...
        (each pass: fastest of 5 back-to-back runs)"``); the defaults where it says nothing."""
        proto = (meta or {}).get("protocol") or {}
        words = str(proto.get("statistic") or "").split()
        statistic = words[0] if words and words[0] in ("min", "median") else LATENCY_STATISTIC
        burst = proto.get("burst")
        if burst is None:
            found = re.search(r"fastest of (\d+)", str(proto.get("statistic") or ""))
            burst = int(found.group(1)) if found else (1 if proto.get("interleaved") is False else INTERLEAVE_BURST)
        return cls(statistic=statistic, burst=int(burst))


def reference_groups(sizes: Sequence[int], reference: int | None, limit: int) -> list[list[int]]:
    """:func:`balanced_groups` where, with a ``reference`` index, every group also holds the reference
    (last), so the machine's speed in each group can be divided out (:func:`rescale_groups`)."""
    if reference is None:
        return balanced_groups(sizes, limit)
    others = [i for i in range(len(sizes)) if i != reference]
    room = max(limit - sizes[reference], 1) if limit > 0 else 0
    return [[others[k] for k in members] + [reference]
            for members in balanced_groups([sizes[i] for i in others], room)]


def rescale_groups(samples: list[np.ndarray], groups: Sequence[Sequence[int]], ref_rows: Sequence[np.ndarray],
                   statistic: str) -> list[float]:
    """Scale each group's samples to the speed of the fastest group, read off the reference timed in
    every group (``ref_rows[g]``: its samples in group ``g``, where it is the last member); the
    reference gets the fastest group's samples. Returns each group's slowdown relative to the
    fastest (1.0 for it). ``samples`` (one array per model) is changed in place."""
    if len(groups) < 2:
        return [1.0] * len(groups)
    stat = {"min": np.min, "median": np.median}[statistic]
    speeds = np.array([stat(r) for r in ref_rows])
    fastest = int(np.argmin(speeds))
    for members, speed in zip(groups, speeds):
        for i in members[:-1]:
            samples[i] = samples[i] * (speeds[fastest] / speed)
    samples[groups[0][-1]] = np.asarray(ref_rows[fastest])
    return (speeds / speeds[fastest]).tolist()


class PassLog(Protocol):
    """Where :func:`time_models` finds a group's passes already timed and puts each new one: a
    profiling run's checkpoint, so an interrupted run resumes. ``members`` index the timed models
    (the reference last), as the group was formed."""

    def done(self, members: Sequence[int]) -> Sequence[np.ndarray]:
        ...

    def add(self, members: Sequence[int], row: np.ndarray) -> None:
        ...


class Timings(list):
    """What :func:`time_models` returns: one :class:`LatencyStats` per model (the reference last),
    plus each group's slowdown relative to the fastest group (empty unless a reference was timed
    in several groups), which a latency table records as the drift between its groups."""

    group_slowdowns: list[float]


def time_models(measurer: Measurer, models: Sequence[tuple[bytes | str | Path, tuple[int, ...] | None]],
                progress: Any = None, min_seconds: float = MIN_MEASURE_SECONDS,
                protocol: TimingProtocol = TimingProtocol(),
                reference: tuple[bytes | str | Path, tuple[int, ...] | None] | None = None,
                log: PassLog | None = None) -> Timings:
    """Latency of several models on one device: interleaved passes (``protocol.burst`` runs each) where
    the backend can hold many sessions open (local ONNX Runtime, an agent), else one after another.

    The one timing path of hwnas: ``hwnas profile`` builds tables with it (``min_seconds=0``: a table's
    protocol is exactly ``repeats`` passes) and export and ``--validate-front`` time models with it, so
    predicted and measured latencies differ by error, not by protocol. ``reference`` (a table's
    speed-reference subnet) is timed in every group the models are split into (memory or an agent's
    upload limit) and each group is rescaled to the fastest group's speed; its stats come last in the
    returned list. ``log`` resumes and checkpoints passes. Summarise each with
    ``stats.value(protocol.statistic)``.
    """
    models = list(models) + ([reference] if reference is not None else [])
    interleave = getattr(measurer, "measure_interleaved", None)
    timings = Timings()
    timings.group_slowdowns = []
    if interleave is None or len(models) < 2:
        timings.extend(measurer.measure_onnx(model, shape) for model, shape in models)
        return timings
    profile = measurer.profile  # type: ignore[attr-defined]
    samples: list[np.ndarray] = [np.empty(0)] * len(models)
    limit = int(getattr(measurer, "max_interleaved_bytes", 0) or 0)
    sizes = [_model_size(m) for m, _ in models]
    groups = reference_groups(sizes, len(models) - 1 if reference is not None else None, limit)
    ref_rows = []
    for members in groups:
        start = log.done(members) if log is not None else ()
        on_pass = (lambda row, members=members: log.add(members, row)) if log is not None else None
        # files are read one group at a time: a profile of large subnets holds its graphs on disk
        group = [(_model_bytes(models[i][0]), models[i][1]) for i in members]
        rows = interleave(group, profile.repeats, protocol.burst, start=start,
                          on_pass=on_pass, progress=progress, min_seconds=min_seconds)
        del group
        for k, i in enumerate(members):
            samples[i] = rows[:, k]
        ref_rows.append(rows[:, -1])
    if reference is not None and len(groups) > 1:
        timings.group_slowdowns = rescale_groups(samples, groups, ref_rows, protocol.statistic)
    batch = [int(shape[0]) if shape else profile.batch_size for _, shape in models]
    timings.extend(LatencyStats.from_samples(samples[j], batch[j]) for j in range(len(models)))
    return timings


# ---------------------------------------------------------------------------- PyTorch on CUDA

_TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchCudaMeasurer:
    """Times torch modules on a CUDA GPU with CUDA events (GPU-side time, no host sync noise).

    With ``cuda_graphs: true`` the forward pass is captured once and replayed, removing kernel
    launch overhead that otherwise dominates small batch-1 models.
    """

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        try:
            import torch
        except ImportError:
            raise MeasurementError("no CUDA device: torch is not installed; install torch with CUDA "
                                   "or use a CPU profile such as cpu-1thread") from None
        if not torch.cuda.is_available():
            raise MeasurementError("no CUDA device available (torch.cuda.is_available() is False); run on a "
                                   "machine with an NVIDIA GPU or use a CPU profile such as cpu-1thread")
        self._torch = torch
        self.device = torch.device("cuda")

    def measure_module(self, module: Any, input_shape: tuple[int, ...]) -> LatencyStats:
        """Time ``module`` on a full input of ``input_shape`` (batch first) at the profile's precision."""
        torch = self._torch
        dtype = getattr(torch, _TORCH_DTYPES[self.profile.precision])
        model = copy.deepcopy(module).eval().to(self.device, dtype=dtype)  # never move the caller's module
        x = torch.randn(*input_shape, device=self.device, dtype=dtype)
        torch.backends.cudnn.benchmark = True
        with torch.inference_mode():
            step = self._graph_step(model, x) if self.profile.cuda_graphs else (lambda: model(x))
            for _ in range(self.profile.warmup):
                step()
            torch.cuda.synchronize()
            samples = []
            for _ in range(self.profile.repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step()
                end.record()
                end.synchronize()
                samples.append(start.elapsed_time(end))
        return LatencyStats.from_samples(samples, int(input_shape[0]))

    def _graph_step(self, model: Any, x: Any) -> Any:
        torch = self._torch
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up on a side stream before capture, as PyTorch documents
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)
        return graph.replay

    def measure_onnx(self, model: bytes | str | Path, input_shape: tuple[int, ...] | None = None) -> LatencyStats:
        """ONNX models run through onnxruntime's CUDAExecutionProvider (needs onnxruntime-gpu).

        Timed on the host with ``perf_counter_ns`` around ``session.run``, so it includes the
        host<->device copies of inputs and outputs, as a deployed ORT model would.
        """
        profile = self.profile
        if profile.provider == "CPUExecutionProvider":
            profile = profile.replace(provider="CUDAExecutionProvider")
        return OnnxRuntimeMeasurer(profile.replace(backend="onnxruntime", cuda_graphs=False)).measure_onnx(
            model, input_shape)

    def describe(self) -> dict[str, Any]:
        torch = self._torch
        return {**host_facts(), "backend": "torch-cuda", "torch_version": torch.__version__,
                "cuda_version": torch.version.cuda, "gpu_name": torch.cuda.get_device_name(self.device),
                "precision": self.profile.precision, "cuda_graphs": self.profile.cuda_graphs,
                "provider": self.profile.provider}


# ---------------------------------------------------------------------------- remote agent

class RemoteMeasurer:
    """Sends ONNX bytes to an ``hwnas agent serve`` process on the target board and gets stats back."""

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        self.client = AgentClient(profile.url or "", token=profile.token(), timeout_s=profile.timeout_s)
        self._max_bytes: int | None = None

    def options(self) -> dict[str, Any]:
        p = self.profile
        return {"warmup": p.warmup, "repeats": p.repeats, "threads": p.threads, "pin": p.pin_cores,
                "batch": p.batch_size, "provider": p.provider}

    def measure_onnx(self, model: bytes | str | Path, input_shape: tuple[int, ...] | None = None) -> LatencyStats:
        return self.client.measure(_model_bytes(model), shape=input_shape, **self.options())

    @property
    def max_interleaved_bytes(self) -> int:
        """What one interleaved request may carry: the agent's upload limit, less room for the header."""
        if self._max_bytes is None:
            limit_mb = float(self.client.info().get("max_upload_mb") or 64.0)
            self._max_bytes = int(limit_mb * 2**20 * 0.95)
        return self._max_bytes

    def measure_interleaved(self, models: Sequence[tuple[bytes | str | Path, tuple[int, ...] | None]],
                            passes: int, burst: int = INTERLEAVE_BURST, start: Sequence[np.ndarray] = (),
                            on_pass: Any = None, progress: Any = None, min_seconds: float = 0.0) -> np.ndarray:
        """The agent's ``/v1/measure-interleaved``: the remaining passes in one request (see
        :meth:`OnnxRuntimeMeasurer.measure_interleaved` for why and for the arguments)."""
        rows = [np.asarray(r, dtype=np.float64) for r in start][:passes]
        if len(rows) < passes:
            options = {k: v for k, v in self.options().items() if k != "repeats"}
            if min_seconds > 0:
                options["min_seconds"] = min_seconds
            new = self.client.measure_interleaved([(_model_bytes(m), sh) for m, sh in models], passes - len(rows),
                                                  burst, **options)
            for row in (progress(range(len(new))) if progress is not None else range(len(new))):
                rows.append(new[row])
                if on_pass is not None:
                    on_pass(new[row])
        return np.array(rows).reshape(len(rows), len(models))  # may hold extra passes (min_seconds)

    def describe(self) -> dict[str, Any]:
        return {**self.client.info(), "backend": "remote", "url": self.profile.url,
                "provider": self.profile.provider, "threads": self.profile.threads,
                "pin_cores": list(self.profile.pin_cores or []) or None}


def _model_bytes(model: bytes | str | Path) -> bytes:
    return bytes(model) if isinstance(model, (bytes, bytearray, memoryview)) else Path(model).read_bytes()


def _model_size(model: bytes | str | Path) -> int:
    """Bytes of a model held in memory or in a file (without reading the file)."""
    return len(model) if isinstance(model, (bytes, bytearray, memoryview)) else Path(model).stat().st_size


def balanced_groups(sizes: Sequence[int], limit: int) -> list[list[int]]:
    """Split item indices into the fewest groups whose byte totals stay within ``limit`` (0 = one group).

    Largest items first, each into the currently lightest group, so every group gets a similar mix
    of big subnets and small block graphs; indices within a group keep their original order.
    """
    total = int(sum(sizes))
    if limit <= 0 or total <= limit:
        return [list(range(len(sizes)))]
    if max(sizes) > limit:
        raise MeasurementError(f"a model of {max(sizes) / 1e6:.1f} MB exceeds the {limit / 1e6:.1f} MB the device "
                               "takes at once; raise the agent's --max-upload-mb")
    n = -(-total // limit)
    while True:
        loads, groups = [0] * n, [[] for _ in range(n)]
        for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
            g = min(range(n), key=loads.__getitem__)
            loads[g] += sizes[i]
            groups[g].append(i)
        if max(loads) <= limit:
            return [sorted(g) for g in groups if g]
        n += 1


def make_measurer(profile: DeviceProfile | str | Path) -> Measurer:
    """The measurer for a profile's backend (accepts a profile, a profile name or a .yaml path)."""
    profile = load_device_profile(profile)
    backends = {"onnxruntime": OnnxRuntimeMeasurer, "torch-cuda": TorchCudaMeasurer, "remote": RemoteMeasurer}
    return backends[profile.backend](profile)
