"""The agent's measurement worker: one child process that runs ONNX Runtime under hard limits.

Why a process: a model is code. A 234-byte ``Loop`` of 10^15 iterations never returns, an
``Expand`` allocates gigabytes, and neither can be interrupted inside ONNX Runtime from a Python
thread. So the agent never runs a model itself; it hands the job to this worker, which runs with
an address-space limit (``RLIMIT_AS``), single-threaded BLAS/OpenMP and input tensors capped in
elements before they are allocated, while the agent waits at most the request's wall-time limit.
A worker that overruns it (or whose client hung up) is killed with SIGKILL and a fresh one is
started at once, so the next request is served right away.

Protocol (no pickle, the worker is the untrusted side): frames of a 4-byte big-endian length and
UTF-8 JSON, jobs on the worker's stdin, answers on a private copy of its stdout (fd 1 itself is
pointed at stderr so a stray print cannot corrupt the stream). Answers are ``{"status": 200,
"body": ...}`` or ``{"status": 4xx/500, "error": reason}``.
"""

from __future__ import annotations

import json
import math
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

from hwnas.latency.agent_request import RequestError

START_TIMEOUT_S = 60.0  # importing onnxruntime on a slow board
_POLL_S = 0.2  # how often a waiting request checks whether its client hung up
# Threads a worker may start besides ONNX Runtime's pool: none. glibc arenas are capped too, since
# each arena reserves 64 MB of address space and would eat into RLIMIT_AS.
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}


class ClientGone(Exception):
    """The client closed its connection while its model was running; the run was killed."""


class MeasurementWorker:
    """Runs jobs one at a time in a child process; kills and replaces it when a job overruns.

    ``max_memory_bytes`` is the child's address-space limit; ``time_limit_s`` the wall time a job
    may take. Thread-safe: concurrent callers queue on an internal lock (the device is timed by
    one job at a time, so timings never disturb each other).
    """

    def __init__(self, max_memory_bytes: int, time_limit_s: float, max_input_elements: int) -> None:
        self.max_memory_bytes = max_memory_bytes
        self.time_limit_s = time_limit_s
        self.max_input_elements = max_input_elements
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._ready = False

    def start(self) -> None:
        """Start the child now (it imports onnxruntime) so the first request does not wait for it."""
        with self._lock:
            self._spawn()

    def close(self) -> None:
        with self._lock:
            self._kill()

    def run(self, job: dict[str, Any], client_gone: Callable[[], bool] = lambda: False) -> Any:
        """Run one job; its answer's body, or RequestError (4xx: the model's fault, 5xx: ours) / ClientGone."""
        with self._lock:
            proc = self._ensure_ready()
            try:
                _write_frame(proc.stdin, {**job, "max_input_elements": self.max_input_elements})
                answer = self._wait(proc, time.monotonic() + self.time_limit_s, client_gone)
            except (BrokenPipeError, EOFError):
                answer = {"status": 422, "error": self._death_reason(proc)}
                self._restart()
        if answer.get("status") != 200:
            raise RequestError(int(answer.get("status", 500)), str(answer.get("error", "worker error")))
        return answer.get("body")

    def _wait(self, proc: subprocess.Popen, deadline: float, client_gone: Callable[[], bool]) -> dict[str, Any]:
        reader = _FrameReader(proc.stdout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._restart()
                return {"status": 422, "error": (
                    f"the measurement ran past this agent's limit of {self.time_limit_s:g} s per request and was "
                    "stopped; send fewer warmup/repeats/passes or models, or restart the agent with a larger "
                    "--max-request-seconds")}
            frame = reader.poll(min(left, _POLL_S))
            if frame is not None:
                return frame
            if client_gone():
                self._restart()
                raise ClientGone()

    def _ensure_ready(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._spawn()
        assert self._proc is not None
        if not self._ready:
            try:
                hello = _FrameReader(self._proc.stdout).poll(START_TIMEOUT_S)
            except EOFError:
                hello = None
            if not hello or hello.get("status") != 200:
                reason = self._death_reason(self._proc) if hello is None else hello.get("error")
                self._kill()
                raise RequestError(503, f"the measurement worker did not start ({reason}); see the agent's log",
                                   {"Retry-After": "5"})
            self._ready = True
        return self._proc

    def _spawn(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        package_root = str(Path(__file__).resolve().parents[2])  # the same hwnas as this process
        env = {**os.environ, **_WORKER_ENV,
               "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "hwnas.latency.agent_worker", str(self.max_memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self._ready = False

    def _restart(self) -> None:
        """Kill the running child (a runaway model) and start its replacement right away."""
        self._kill()
        self._spawn()

    def _kill(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        self._proc = None
        self._ready = False

    def _death_reason(self, proc: subprocess.Popen) -> str:
        code = proc.wait(timeout=5)
        what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return (f"the measurement process died ({what}) while running this model, possibly out of memory under "
                f"the agent's limit of {self.max_memory_bytes / 2**20:g} MB (--max-memory-mb); it was restarted")


class _FrameReader:
    """Reads one length-prefixed JSON frame from a pipe, waiting at most a given time per poll."""

    def __init__(self, pipe: Any) -> None:
        self._fd = pipe.fileno()
        self._buffer = b""

    def poll(self, timeout_s: float) -> dict[str, Any] | None:
        """The frame if complete within ``timeout_s``, else None; EOFError when the child is gone."""
        deadline = time.monotonic() + timeout_s
        while True:
            if len(self._buffer) >= 4:
                size = int.from_bytes(self._buffer[:4], "big")
                if len(self._buffer) >= 4 + size:
                    return json.loads(self._buffer[4:4 + size])
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                return None
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                raise EOFError("worker closed its output")
            self._buffer += chunk


def _write_frame(stream: BinaryIO | None, message: dict[str, Any]) -> None:
    assert stream is not None
    data = json.dumps(message).encode("utf-8")
    stream.write(len(data).to_bytes(4, "big") + data)
    stream.flush()


def _read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    return json.loads(stream.read(int.from_bytes(head, "big")))


# ---- the child side -------------------------------------------------------------------------------


def _limited_measurer_class() -> type:
    """OnnxRuntimeMeasurer that refuses inputs over the element cap before allocating them."""
    import numpy as np

    from hwnas.errors import MeasurementError
    from hwnas.latency.measure import OnnxRuntimeMeasurer

    class InputTooLarge(MeasurementError):
        status = 422  # a limit, not a malformed request

    class LimitedMeasurer(OnnxRuntimeMeasurer):
        max_input_elements = 0

        def _inputs(self, session: Any, input_shape: tuple[int, ...] | None) -> dict[str, np.ndarray]:
            total = 0
            for i, arg in enumerate(session.get_inputs()):
                dims = input_shape if i == 0 and input_shape is not None else [
                    d if isinstance(d, int) and d > 0 else (self.profile.batch_size if j == 0 else 1)
                    for j, d in enumerate(arg.shape)]
                total += math.prod(int(d) for d in dims)
            if total > self.max_input_elements:
                raise InputTooLarge(f"the model's inputs hold {total:,} elements, over this agent's limit of "
                                    f"{self.max_input_elements:,} (a quarter of --max-memory-mb in float32); "
                                    "send a smaller shape or batch")
            return super()._inputs(session, input_shape)

    return LimitedMeasurer


def _run_job(job: dict[str, Any], measurer_class: type) -> dict[str, Any]:
    """One job -> an answer frame; the model's faults become 4xx, anything else 500."""
    from hwnas.errors import HwnasError
    from hwnas.latency.device import DeviceProfile

    try:
        measurer = measurer_class(DeviceProfile.from_dict(job["profile"], source="measure request"))
        measurer.max_input_elements = int(job["max_input_elements"])
        models = [(path, tuple(shape) if shape else None) for path, shape in job["models"]]
        if job["kind"] == "measure":
            return {"status": 200, "body": measurer.measure_onnx(*models[0]).to_dict()}
        rows = measurer.measure_interleaved(models, job["passes"], job["burst"], min_seconds=job["min_seconds"])
        return {"status": 200, "body": {"rows": rows.tolist()}}
    except MemoryError:
        return {"status": 422, "error": "the model ran out of memory under this agent's limit "
                                        f"of {resource.getrlimit(resource.RLIMIT_AS)[0] / 2**20:g} MB (--max-memory-mb)"}
    except HwnasError as exc:
        text = str(exc)
        if "alloc" in text.lower():  # onnxruntime hit the address-space limit
            return {"status": 422, "error": f"{text}; this agent's memory limit is --max-memory-mb"}
        return {"status": getattr(exc, "status", 400), "error": text}
    except Exception as exc:  # a bug in the agent, not the client's fault
        return {"status": 500, "error": f"internal agent error: {type(exc).__name__}: {exc}"}


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the agent dies, so no runaway outlives it."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    """Worker entry point: limit memory, import the runtime, then answer jobs until stdin closes."""
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _die_with_parent()
    memory = int(argv[0])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        measurer_class = _limited_measurer_class()
        measurer_class(_hello_profile())  # imports onnxruntime now, not during the first request
    except Exception as exc:  # e.g. onnxruntime missing or the memory limit below what it needs to import
        _write_frame(channel, {"status": 500, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _write_frame(channel, {"status": 200})
    stdin = sys.stdin.buffer
    while (job := _read_frame(stdin)) is not None:
        _write_frame(channel, _run_job(job, measurer_class))
    return 0


def _hello_profile() -> Any:
    from hwnas.latency.device import DeviceProfile

    return DeviceProfile(name="agent-worker", backend="onnxruntime")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
