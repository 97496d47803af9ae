"""An exported ONNX graph moved to another fixed input shape, instead of exporting it again.

A latency table holds the same block (stem, head) at every resolution of the space, and those
graphs differ only in their input shape: ``torch.onnx.export`` writes the same nodes with the same
attributes and weights, and the runtime derives every intermediate shape from the input. A space
has many times more entries than distinct structures (one per resolution), and an export costs far
more than rewriting a shape, so the profiler exports each structure once and moves it.

That is exact only for graphs whose nodes do not encode the spatial size. An exporter writes the
size into an ``AveragePool`` kernel (adaptive pooling), a ``Reshape``'s constant shape, ``Pad`` or
``Resize`` inputs, ... so a graph may be moved only when every node is an operator whose behaviour
is fixed by its attributes alone (:data:`SHAPE_FREE_OPS`) and it holds no integer constant (the form
shapes, axes and indices take), neither as an initializer nor as a ``Constant`` node. A float
``Constant`` node is a value such as ReLU6's clip bounds (ProxylessNAS blocks), never a size. Anything else is reported by :func:`reshape_blockers` and the caller
exports afresh. ``tests/test_onnx_reshape.py`` checks moved graphs against fresh exports.
"""

from __future__ import annotations

from typing import Sequence

import onnx
from onnx import TensorProto, shape_inference

# Operators whose attributes and (float) inputs never depend on the input's spatial size: with the
# same attributes they compute the right thing at any size. Pooling with explicit kernels, Reshape,
# Pad, Resize, Slice, Shape, ... are left out on purpose: exporters fill those in from the size.
SHAPE_FREE_OPS = frozenset({
    "Add", "BatchNormalization", "Clip", "Conv", "Div", "Flatten", "Gemm", "GlobalAveragePool",
    "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "MatMul", "Mul", "ReduceMean",
    "Relu", "Sigmoid", "Sub", "Tanh",
})
_FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})


def reshape_blockers(model: onnx.ModelProto) -> list[str]:
    """Why ``model`` cannot be moved to another input shape exactly (empty: it can)."""
    graph = model.graph
    reasons = [f"{len(graph.input)} graph inputs (one expected)"] if len(graph.input) != 1 else []
    reasons += [f"operator {op}" for op in sorted({n.op_type for n in graph.node} - SHAPE_FREE_OPS - {"Constant"})]
    reasons += [f"integer constant {t.name!r}" for t in graph.initializer if t.data_type not in _FLOAT_TYPES]
    reasons += [f"non-float Constant node {n.output[0]!r}" for n in graph.node
                if n.op_type == "Constant" and not _is_float_constant(n)]
    return reasons


def _is_float_constant(node: onnx.NodeProto) -> bool:
    """A ``Constant`` node holding a float value (a tensor of a float type, ``value_float(s)``)."""
    if len(node.attribute) != 1:
        return False
    attr = node.attribute[0]
    if attr.name == "value":
        return attr.t.data_type in _FLOAT_TYPES
    return attr.name in ("value_float", "value_floats")


def with_input_shape(model: onnx.ModelProto, shape: Sequence[int]) -> bytes | None:
    """``model`` serialised with its (only) input fixed to ``shape``, or ``None`` when that would not be
    exact (see :func:`reshape_blockers`) or shape inference cannot derive the outputs' shapes.

    Intermediate ``value_info`` of the old shape is dropped and the outputs' shapes are recomputed by
    ONNX shape inference, so the result carries exactly what a fresh export at ``shape`` carries.
    """
    if reshape_blockers(model) or len(model.graph.input[0].type.tensor_type.shape.dim) != len(shape):
        return None
    moved = onnx.ModelProto()
    moved.CopyFrom(model)
    graph = moved.graph
    del graph.value_info[:]
    _set_dims(graph.input[0].type.tensor_type, shape)
    for output in graph.output:
        output.type.tensor_type.ClearField("shape")
    try:
        inferred = shape_inference.infer_shapes(moved, strict_mode=True)
    except Exception:  # onnx raises its own InferenceError types; any failure means "export instead"
        return None
    for output, found in zip(graph.output, inferred.graph.output):
        dims = found.type.tensor_type.shape.dim
        if not found.type.tensor_type.HasField("shape") or any(not d.HasField("dim_value") for d in dims):
            return None
        output.type.CopyFrom(found.type)
    return moved.SerializeToString()


def _set_dims(tensor_type: onnx.TypeProto.Tensor, shape: Sequence[int]) -> None:
    tensor_type.ClearField("shape")
    for size in shape:
        tensor_type.shape.dim.add().dim_value = int(size)


__all__ = ["SHAPE_FREE_OPS", "reshape_blockers", "with_input_shape"]
