"""Moving an exported entry graph to another input shape is exact, and refused where it would not be.

The profiler exports each block structure once and moves that graph to the other resolutions
(hwnas.latency.onnx_reshape). These tests compare moved graphs with fresh exports of the same
module (same weights) at the target shape: same nodes and attributes, same output shape, and the
same ONNX Runtime output; and check that graphs whose nodes encode the size are exported instead.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from hwnas.latency.block_models import EntryGraphs, entry_module, export_onnx
from hwnas.latency.onnx_reshape import reshape_blockers, with_input_shape
from hwnas.latency.profiler import Profiler, ProfileOptions
from hwnas.latency.table import enumerate_entries
from hwnas.space import get_space, list_spaces, register_space

from latency_measurers import InterleavingMeasurer, cpu_test_profile  # noqa: E402
from tiny_spaces import tiny_space  # noqa: E402 (tests/ is on sys.path)


def _nodes(model: onnx.ModelProto) -> list[tuple]:
    return [(n.op_type, tuple(n.input), tuple(n.output),
             tuple(sorted((a.name, str(onnx.helper.get_attribute_value(a))) for a in n.attribute)))
            for n in model.graph.node]


def _dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


def _run(graph: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def assert_moved_equals_fresh(module: nn.Module, base_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> None:
    base = onnx.load_from_string(export_onnx(module, base_shape))
    assert reshape_blockers(base) == []
    moved_bytes = with_input_shape(base, target_shape)
    assert moved_bytes is not None
    moved, fresh_bytes = onnx.load_from_string(moved_bytes), export_onnx(module, target_shape)
    fresh = onnx.load_from_string(fresh_bytes)
    assert _nodes(moved) == _nodes(fresh)
    assert [_dims(v) for v in moved.graph.input] == [_dims(v) for v in fresh.graph.input] == [list(target_shape)]
    assert [_dims(v) for v in moved.graph.output] == [_dims(v) for v in fresh.graph.output]
    assert len(moved.graph.value_info) == len(fresh.graph.value_info) == 0
    assert {t.name: list(t.dims) for t in moved.graph.initializer} == \
        {t.name: list(t.dims) for t in fresh.graph.initializer}
    x = np.random.default_rng(0).standard_normal(target_shape).astype(np.float32)
    np.testing.assert_allclose(_run(moved_bytes, x), _run(fresh_bytes, x), rtol=0, atol=1e-5)


def _structures(space, resolutions):
    """One entry per distinct structure (kind + block spec), at its first resolution, and the rest."""
    first, others = {}, {}
    for e in enumerate_entries(space, resolutions):
        if e.kind == "overhead":
            continue
        key = (e.kind, e.block)
        if key in first:
            others.setdefault(key, []).append(e)
        else:
            first[key] = e
    return first, others


def _kinds(entries) -> set[tuple]:
    return {(e.kind, *(() if e.block is None else (e.block.se_channels > 0, e.block.stride, e.block.kernel)))
            for e in entries}


def test_tiny_space_entries_move_exactly_to_other_sizes():
    space = tiny_space()
    first, _ = _structures(space, None)
    kinds = _kinds(first.values())
    assert {("stem",), ("head",)} <= kinds and {k[1:] for k in kinds if k[0] == "block"} >= {
        (False, 2, 3), (False, 2, 5), (True, 1, 3), (True, 1, 5), (False, 1, 3)}  # SE or not, both strides, each k
    for entry in first.values():
        torch.manual_seed(0)
        module = entry_module(space, entry)
        c, h, _ = entry.input_shape
        for size in (h + 4, h - 3):  # larger, and smaller with an odd size (stride 2 rounds)
            assert_moved_equals_fresh(module, (1, *entry.input_shape), (1, c, size, size))


@pytest.mark.parametrize("space_name, se_options", [("ofa-mbv3-w1.0", (False, True)),
                                                     ("ofa-proxyless-w1.3", (False,))])
def test_ofa_space_entries_move_exactly_to_other_resolutions(space_name, se_options):
    """A representative of every block kind (SE or not, stride, kernel, expand conv or not), the stem
    and the head of each MBConv-family OFA space, from 128 px to an odd-sized resolution and to
    224 px. ProxylessNAS graphs hold ReLU6's clip bounds as float ``Constant`` nodes."""
    space = get_space(space_name)
    first, others = _structures(space, (128, 132, 224))
    picked = {}
    for key, entry in first.items():
        kind = (entry.kind, *(() if entry.block is None else
                               (entry.block.se_channels > 0, entry.block.stride, entry.block.kernel,
                                entry.block.expand_conv)))
        picked.setdefault(kind, key)
    assert {k[1:4] for k in picked if k[0] == "block"} == {(se, s, k) for se in se_options for s in (1, 2)
                                                           for k in space.kernel_sizes}
    assert {k[0] for k in picked} == {"stem", "block", "head"}
    for key in picked.values():
        torch.manual_seed(0)
        module = entry_module(space, first[key])
        for target in others[key]:
            assert_moved_equals_fresh(module, (1, *first[key].input_shape), (1, *target.input_shape))


def _constant_graph(value: np.ndarray) -> onnx.ModelProto:
    """input -> Add(input, Constant(value)) -> output."""
    from onnx import helper, numpy_helper

    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(value, "c"))
    add = helper.make_node("Add", ["input", "c"], ["output"])
    io = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("input", "output")]
    return helper.make_model(helper.make_graph([const, add], "g", io[:1], io[1:]))


def test_float_constant_nodes_move_and_integer_ones_block():
    """A float Constant is a value (clip bounds); an integer one is how exporters write shapes."""
    assert reshape_blockers(_constant_graph(np.array(6.0, np.float32))) == []
    moved = with_input_shape(_constant_graph(np.array(6.0, np.float32)), (1, 2, 8, 8))
    assert moved is not None and _dims(onnx.load_from_string(moved).graph.output[0]) == [1, 2, 8, 8]
    blocked = _constant_graph(np.array([1, 2, 4, 4], np.int64))
    assert reshape_blockers(blocked) == ["non-float Constant node 'c'"]
    assert with_input_shape(blocked, (1, 2, 8, 8)) is None


class _AdaptivePool(nn.Module):
    """Adaptive pooling to 2x2: the exporter writes a kernel computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 2)


class _FixedReshape(nn.Module):
    """A view to a shape read off the input: the exporter writes it as a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2] * x.shape[3])


@pytest.mark.parametrize("module, blocker", [(_AdaptivePool(), "operator AveragePool"),
                                             (_FixedReshape(), "operator Reshape")])
def test_graphs_that_encode_the_size_are_not_moved(module, blocker):
    small, large = export_onnx(module, (1, 4, 8, 8)), export_onnx(module, (1, 4, 16, 16))
    small_model = onnx.load_from_string(small)
    assert _nodes(small_model) != _nodes(onnx.load_from_string(large))  # moving it would be wrong
    assert blocker in reshape_blockers(small_model)
    assert with_input_shape(small_model, (1, 4, 16, 16)) is None


def test_entry_graphs_export_unmovable_structures_at_every_shape(monkeypatch):
    import hwnas.latency.block_models as block_models

    space = tiny_space()
    stem = next(e for e in enumerate_entries(space) if e.kind == "stem")
    graphs = EntryGraphs(space)
    monkeypatch.setattr(block_models, "entry_module", lambda space, entry, supernet=None: _AdaptivePool())
    a, b = graphs.graph(stem, (1, 1, 8, 8)), graphs.graph(stem, (1, 1, 16, 16))
    assert (graphs.exported, graphs.moved) == (2, 0)
    assert a != b
    monkeypatch.undo()
    graphs = EntryGraphs(space)
    graphs.graph(stem, (1, 1, 8, 8)), graphs.graph(stem, (1, 1, 16, 16))
    assert (graphs.exported, graphs.moved) == (1, 1)


def _two_resolution_space():
    name = "tiny-reshape-test"
    if name in list_spaces():
        return get_space(name)
    return register_space(dataclasses.replace(tiny_space(), name=name, resolutions=(16, 20)))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_profile_exports_each_structure_once_and_resumes(tmp_path, precision):
    """FP32 is interrupted and resumed; INT8 (each moved graph quantised at its own shape) runs once."""
    space = _two_resolution_space()
    structures = len({(e.kind, e.block) for e in enumerate_entries(space)})
    entries = len(enumerate_entries(space))
    profile = cpu_test_profile()
    options = ProfileOptions(calibrate=2, validate=1, seed=3, precision=precision)
    if precision == "fp32":
        with pytest.raises(KeyboardInterrupt):
            Profiler(space, profile, tmp_path, options, measurer=InterleavingMeasurer(fail_after=1),
                     progress=False).run()
    result = Profiler(space, profile, tmp_path, options, measurer=InterleavingMeasurer(), progress=False).run()
    built = result.table.meta["graphs_built"]
    assert (built["entries_exported"], built["entries_moved"]) == (structures, entries - structures)
    assert entries > structures and set(result.table.entries) == {e.key for e in enumerate_entries(space)}
    assert all(e["ms"] > 0 for e in result.table.entries.values())
    assert result.measured["entry"] == entries


def test_resnet_entries_each_get_a_graph_of_their_own_shape():
    """ResNet stems and heads differ in channel counts that ``entry.block`` does not hold, so their
    graphs are moved only between entries of the same widths: every stem and head graph the
    profiler would time runs in ONNX Runtime at its own entry's input shape, and heads are moved."""
    from tiny_spaces import tiny_resnet_space

    space = tiny_resnet_space()
    graphs = EntryGraphs(space)
    for entry in enumerate_entries(space):
        if entry.kind not in ("stem", "head"):
            continue
        shape = (1, *entry.input_shape)
        out = _run(graphs.graph(entry, shape), np.zeros(shape, dtype=np.float32))
        assert np.isfinite(out).all(), entry.key
    assert graphs.moved > 0
