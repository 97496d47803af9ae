"""Whole subnets exported in worker processes are the graphs the profiler would build itself."""

from __future__ import annotations

import dataclasses

import onnx
import pytest

from hwnas.errors import ConfigError
from hwnas.latency.graph_pool import SUBNETS_PER_WORKER, SubnetGraphPool, default_workers, subnet_graph
from hwnas.latency.profiler import Profiler, ProfileOptions, sample_distinct
from hwnas.space import get_space, list_spaces, register_space

from latency_measurers import InterleavingMeasurer, cpu_test_profile  # noqa: E402
from tiny_spaces import tiny_space  # noqa: E402 (tests/ is on sys.path)


def _structure(graph: bytes) -> list[tuple]:
    model = onnx.load_from_string(graph)
    return [(n.op_type, tuple(sorted((a.name, str(onnx.helper.get_attribute_value(a))) for a in n.attribute)))
            for n in model.graph.node] + [[d.dim_value for d in v.type.tensor_type.shape.dim]
                                          for v in (*model.graph.input, *model.graph.output)]


def _space():
    name = "tiny-pool-test"
    if name in list_spaces():
        return get_space(name)
    return register_space(dataclasses.replace(tiny_space(), name=name, resolutions=(16, 20)))


def test_pool_builds_the_graphs_this_process_builds():
    space = _space()
    archs = sample_distinct(space, 2, (0, 1), space.resolutions)
    with SubnetGraphPool(space, 1, int8=False, workers=1) as pool:
        pooled = [future.result() for future in [pool.submit(a) for a in archs]]
    for arch, (graph, shape) in zip(archs, pooled):
        local, local_shape = subnet_graph(space, arch, 1)
        assert shape == local_shape == (1, space.in_channels, arch.resolution, arch.resolution)
        assert _structure(graph) == _structure(local)


def test_profile_builds_subnets_in_workers(tmp_path, monkeypatch):
    """With build_workers, no subnet is built in the profiling process (INT8: workers quantise too)."""
    def in_process(self, arch):
        raise AssertionError("subnet built in the profiling process")

    monkeypatch.setattr(Profiler, "_subnet_graph", in_process)
    options = ProfileOptions(calibrate=2, validate=1, seed=3, precision="int8", build_workers=2)
    result = Profiler(_space(), cpu_test_profile(), tmp_path, options, measurer=InterleavingMeasurer(),
                      progress=False).run()
    assert len(result.table.calibration["points"]) == 2 and len(result.report["validation"]["points"]) == 1
    assert all(p["measured_ms"] > 0 for p in result.table.calibration["points"])
    with pytest.raises(ConfigError, match="--build-workers"):
        Profiler(_space(), cpu_test_profile(), tmp_path, ProfileOptions(build_workers=0))


@pytest.mark.parametrize("cores, subnets, workers", [(2, 160, 2), (64, 160, 160 // SUBNETS_PER_WORKER),
                                                     (64, SUBNETS_PER_WORKER + 1, 1), (1, 160, 1)])
def test_default_workers_pay_their_start_up(monkeypatch, cores, subnets, workers):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_workers(subnets) == workers
