"""Small ONNX graphs for latency-table entries: one MBConv block, the stem or the head on its own.

A latency table is only as good as the agreement between what it measures and what a deployed
subnet runs, so every entry is built from the same static modules the extracted subnet is made of
(:mod:`hwnas.supernet.static`) and exported the same way: eval mode, fixed input shape, the
TorchScript exporter with constant folding (which folds BatchNorm into the preceding conv, as
ONNX Runtime's Conv+BN fusion would at ``ORT_ENABLE_ALL`` anyway). Weights are random: latency
does not depend on their values.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hwnas.arch import Architecture
from hwnas.errors import MeasurementError
from hwnas.plan import BlockSpec
from hwnas.space import SearchSpace
from hwnas.supernet.elastic import stem
from hwnas.supernet.static import Head, MBConvBlock

if TYPE_CHECKING:
    from hwnas.latency.table import TableEntry

ONNX_OPSET = 17
INT8_CALIBRATION_BATCHES = 4  # random inputs that fix an INT8 graph's activation ranges (latency ignores them)


def block_module(spec: BlockSpec) -> nn.Module:
    """A randomly initialised static MBConv block in eval mode."""
    return _randomize_bn(MBConvBlock(spec)).eval()


def stem_module(space: SearchSpace) -> nn.Module:
    """The stem conv (conv + BN + activation), as the subnet runs it."""
    return _randomize_bn(stem(space)).eval()


def head_module(space: SearchSpace) -> nn.Module:
    """Final 1x1 expand + pool + feature mix + classifier, input = the last stage's feature map."""
    return _randomize_bn(Head.for_space(space)).eval()


def overhead_module() -> nn.Module:
    """A trivial graph (one ReLU on a 1x1x1 input): its latency is the runtime's fixed cost per call.

    Every table entry is timed as its own call, so a plain sum of N entries counts that cost N
    times while a whole network pays it once; the table subtracts it before calibration.
    """
    return nn.ReLU().eval()


def entry_module(space: SearchSpace, entry: "TableEntry") -> nn.Module:
    """The module a table entry times: its block, the space's stem or head, or the overhead graph."""
    if entry.kind == "block":
        return block_module(entry.block)
    return {"stem": lambda: stem_module(space), "head": lambda: head_module(space),
            "overhead": overhead_module}[entry.kind]()


class EntryGraphs:
    """Builds entries' ONNX graphs, exporting each distinct structure (a block spec, the stem, the
    head) once and moving that export to the other entries' input shapes
    (:func:`hwnas.latency.onnx_reshape.with_input_shape`): entries of one structure differ only in
    their input shape, and exporting is most of the time a profile spends building graphs. A
    structure whose graph cannot be moved exactly (a node that encodes the spatial size) is exported
    at every shape. ``exported`` and ``moved`` count what was done.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._exports: dict[tuple[str, Any], Any] = {}  # structure -> parsed export (None: not movable)
        self.exported = 0
        self.moved = 0

    def graph(self, entry: "TableEntry", input_shape: tuple[int, ...]) -> bytes:
        """``entry``'s graph at ``input_shape`` (batch included), as ONNX bytes."""
        from hwnas.latency.onnx_reshape import with_input_shape

        structure = (entry.kind, entry.block)
        base = self._exports.get(structure)
        if base is not None:
            moved = with_input_shape(base, input_shape)
            if moved is not None:
                self.moved += 1
                return moved
        graph = export_onnx(entry_module(self.space, entry), input_shape)
        self.exported += 1
        if structure not in self._exports:
            self._exports[structure] = _movable(graph)
        return graph


def _movable(graph: bytes) -> Any:
    """The parsed graph if it can be moved to other input shapes, else ``None``."""
    import onnx

    from hwnas.latency.onnx_reshape import reshape_blockers

    model = onnx.load_from_string(graph)
    return None if reshape_blockers(model) else model


def reference_graph(space: SearchSpace, arch: Architecture, batch_size: int) -> tuple[bytes, tuple[int, ...]]:
    """The reference subnet as ONNX (random weights: latency does not depend on their values)."""
    from hwnas.supernet.network import build_supernet

    torch.manual_seed(0)
    subnet = build_supernet(space).extract(arch).eval()
    shape = (batch_size, space.in_channels, arch.resolution, arch.resolution)
    return export_onnx(subnet, shape), shape


def export_onnx(module: nn.Module, input_shape: tuple[int, ...], opset: int = ONNX_OPSET) -> bytes:
    """Serialise ``module`` (eval mode, BN folded by constant folding) with a fixed input shape."""
    module = module.eval()
    x = torch.randn(*input_shape)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation on every call
            torch.onnx.export(module, (x,), buffer, opset_version=opset, input_names=["input"],
                              output_names=["output"], do_constant_folding=True, dynamo=False)
    except Exception as exc:  # the exporter raises many internal types; report them as one user-facing error
        raise MeasurementError(f"ONNX export of {type(module).__name__} with input {tuple(input_shape)} failed "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                               "check the torch/onnx installation (pip install onnx)") from None
    return buffer.getvalue()


def quantize_for_latency(graph: bytes, input_shape: tuple[int, ...], name: str = "graph") -> bytes:
    """``graph`` statically quantised to INT8 (QDQ, per-channel) by the export path's quantiser.

    Activation ranges come from a few seeded standard-normal inputs rather than images: a block's
    input is a feature map, and the integer kernels do the same work whatever the scales are, so the
    latency is that of the deployed INT8 model. Seeded, so a resumed profile rebuilds the same graph.
    """
    import numpy as np

    from hwnas.export.quantize import quantize_graph

    rng = np.random.default_rng(0)
    batches = [rng.standard_normal(input_shape, dtype=np.float32) for _ in range(INT8_CALIBRATION_BATCHES)]
    return quantize_graph(graph, batches, name=name)


def subnet_onnx(supernet: nn.Module, arch: Architecture, batch_size: int) -> tuple[bytes, tuple[int, ...]]:
    """The whole extracted subnet of ``arch`` as ONNX bytes, and the input shape it was exported with."""
    subnet = supernet.extract(arch).eval()
    shape = (batch_size, supernet.space.in_channels, arch.resolution, arch.resolution)
    return export_onnx(subnet, shape), shape


@torch.no_grad()
def _randomize_bn(module: nn.Module) -> nn.Module:
    """Non-trivial BN statistics, so the folded graph has real (non-identity) scale and shift."""
    generator = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.1, generator=generator)
            m.running_var.uniform_(0.5, 1.5, generator=generator)
    return module
