"""Whole-subnet ONNX graphs for a latency profile, built in worker processes.

Once each block structure is exported only once (:class:`hwnas.latency.block_models.EntryGraphs`),
exporting the calibration and validation subnets whole is most of a profile's graph building, and
the TorchScript exporter uses one core. Graphs are all built before any is timed, so the other
cores are idle then: worker processes export subnets while the profiler builds the entries' graphs.
Each worker builds its own random-weight supernet (latency does not depend on the weights) and
runs torch on one thread. Workers are spawned, not forked: a fork of a process that has already
run torch's thread pools can hang, and spawn behaves the same on every platform.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from hwnas.arch import Architecture
from hwnas.space import SearchSpace

# A worker's start-up (importing torch, building a supernet) is only worth it for at least this many
# subnets; with fewer in all, the profiler builds every graph in its own process.
SUBNETS_PER_WORKER = 8

_SUPERNETS: dict[str, Any] = {}  # per worker process: space fingerprint -> random-weight supernet


def default_workers(n_subnets: int) -> int:
    """Workers for ``n_subnets``: one per core this process may run on, each with at least
    :data:`SUBNETS_PER_WORKER` subnets (many cores would otherwise mean many idle torch processes);
    1 means none."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    workers = min(cores, n_subnets // SUBNETS_PER_WORKER)
    return workers if workers >= 2 else 1


class SubnetGraphPool:
    """Worker processes that build subnets' graphs; a context manager (workers stop on exit)."""

    def __init__(self, space: SearchSpace, batch_size: int, int8: bool, workers: int) -> None:
        import multiprocessing

        self.space, self.batch_size, self.int8 = space, batch_size, int8
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker)

    def submit(self, arch: Architecture) -> Future:
        """A future of ``(graph bytes, input shape)`` for ``arch``'s subnet."""
        return self._executor.submit(subnet_graph, self.space, arch, self.batch_size, self.int8)

    def __enter__(self) -> "SubnetGraphPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def subnet_graph(space: SearchSpace, arch: Architecture, batch_size: int,
                 int8: bool = False) -> tuple[bytes, tuple[int, ...]]:
    """``arch``'s subnet as ONNX bytes (INT8-quantised as the profiler quantises it when ``int8``),
    extracted from this process's random-weight supernet of ``space``."""
    from hwnas.latency.block_models import quantize_for_latency, subnet_onnx
    from hwnas.supernet.network import build_supernet

    supernet = _SUPERNETS.get(space.fingerprint())
    if supernet is None:
        supernet = _SUPERNETS[space.fingerprint()] = build_supernet(space).eval()
    graph, shape = subnet_onnx(supernet, arch, batch_size)
    return (quantize_for_latency(graph, shape, "subnet") if int8 else graph), shape


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker: the workers share the machine


__all__ = ["SUBNETS_PER_WORKER", "SubnetGraphPool", "default_workers", "subnet_graph"]
