"""Small ONNX graphs for latency-table entries: one block, the stem or the head on its own.

A latency table is only as good as the agreement between what it measures and what a deployed
subnet runs, so every entry is built from the same static modules the extracted subnet is made of
(:mod:`hwnas.supernet.static`) and exported the same way: eval mode, fixed input shape, the
TorchScript exporter with constant folding (which folds BatchNorm into the preceding conv, as
ONNX Runtime's Conv+BN fusion would at ``ORT_ENABLE_ALL`` anyway). Weights are random: latency
does not depend on their values. A ``resnet``-family entry is cut from the elastic ResNet supernet
(:meth:`~hwnas.supernet.resnet.ElasticResNet.export_stem`, its blocks' ``export``, the classifier),
the modules :meth:`~hwnas.supernet.resnet.ElasticResNet.extract` builds a subnet from; a ``plain``-family
entry likewise from :class:`~hwnas.supernet.plain.ElasticPlainCNN`'s layers and classifier, as the
pieces of :class:`~hwnas.supernet.plain.SubnetPlainCNN`.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from hwnas.arch import Architecture
from hwnas.errors import MeasurementError
from hwnas.plan import BlockSpec
from hwnas.space import AnySpace, SearchSpace
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


def entry_module(space: AnySpace, entry: Any, supernet: Callable[[], nn.Module] | None = None) -> nn.Module:
    """The module of one latency-table entry (:class:`hwnas.latency.table.TableEntry`) of ``space``'s
    family; ``supernet()`` gives the space's elastic supernet (built only where an entry needs it,
    once per call when not given: callers with many entries pass a cached one)."""
    if entry.kind == "overhead":
        return overhead_module()
    return _ENTRY_MODULES[space.family](space, entry, supernet or (lambda: _fresh_supernet(space)))


def _fresh_supernet(space: AnySpace) -> nn.Module:
    from hwnas.supernet.network import build_supernet

    return build_supernet(space)


def _mbconv_entry_module(space: SearchSpace, entry: Any, supernet: Callable[[], nn.Module]) -> nn.Module:
    return {"stem": lambda: stem_module(space), "head": lambda: head_module(space),
            "block": lambda: block_module(entry.block)}[entry.kind]()


def _resnet_entry_module(space: AnySpace, entry: Any, supernet: Callable[[], nn.Module]) -> nn.Module:
    """A bottleneck block, the stem (convs + max pooling) or the head (pooling + classifier), each as
    :class:`~hwnas.supernet.resnet.SubnetResNet` runs it."""
    from hwnas.supernet.resnet import SubnetResNet

    net = supernet()
    if entry.kind == "block":
        return _randomize_bn(net.blocks[entry.block.block].export(entry.block)).eval()
    if entry.kind == "stem":
        mid, out, skip = entry.stem
        part = SubnetResNet(net.export_stem(mid, out, skip), not skip, [], nn.Linear(1, 1), 0.0)
    else:
        part = SubnetResNet([], False, [], net.export_classifier(entry.input_shape[0]), 0.0)
    return _randomize_bn(_Part(part, entry.kind)).eval()


class _Part(nn.Module):
    """Runs one part (``stem`` or ``head``) of a static ResNet subnet."""

    def __init__(self, subnet: nn.Module, part: str) -> None:
        super().__init__()
        self.subnet, self.part = subnet, part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.subnet, self.part)(x)


def _plain_entry_module(space: AnySpace, entry: Any, supernet: Callable[[], nn.Module]) -> nn.Module:
    """A conv layer (pooling, conv, BN, ReLU) or the head (pooling, classifier), each as
    :class:`~hwnas.supernet.plain.SubnetPlainCNN` runs it."""
    net = supernet()
    if entry.kind == "block":
        return _randomize_bn(net.layers[entry.block.layer].export(entry.block)).eval()
    return net.export_head(entry.input_shape[0], entry.input_shape[1]).eval()


_ENTRY_MODULES = {"mbconv": _mbconv_entry_module, "resnet": _resnet_entry_module, "plain": _plain_entry_module}


def overhead_module() -> nn.Module:
    """A trivial graph (one ReLU on a 1x1x1 input): its latency is the runtime's fixed cost per call.

    Every table entry is timed as its own call, so a plain sum of N entries counts that cost N
    times while a whole network pays it once; the table subtracts it before calibration.
    """
    return nn.ReLU().eval()


class EntryGraphs:
    """Builds entries' ONNX graphs, exporting each distinct structure (a block spec, the stem, the
    head) once and moving that export to the other entries' input shapes
    (:func:`hwnas.latency.onnx_reshape.with_input_shape`): entries of one structure differ only in
    their input shape, and exporting is most of the time a profile spends building graphs. A
    structure whose graph cannot be moved exactly (a node that encodes the spatial size) is exported
    at every shape. ``exported`` and ``moved`` count what was done.
    """

    def __init__(self, space: AnySpace, supernet: Callable[[], nn.Module] | None = None) -> None:
        self.space, self.supernet = space, supernet
        self._exports: dict[tuple[str, Any], Any] = {}  # structure -> parsed export (None: not movable)
        self.exported = 0
        self.moved = 0

    def graph(self, entry: "TableEntry", input_shape: tuple[int, ...]) -> bytes:
        """``entry``'s graph at ``input_shape`` (batch included), as ONNX bytes."""
        from hwnas.latency.onnx_reshape import with_input_shape

        # what fixes the graph apart from its spatial size (a ResNet stem's widths and a head's input
        # channels are not in ``block``)
        structure = (entry.kind, entry.block, entry.stem, entry.input_shape[0])
        base = self._exports.get(structure)
        if base is not None:
            moved = with_input_shape(base, input_shape)
            if moved is not None:
                self.moved += 1
                return moved
        graph = export_onnx(entry_module(self.space, entry, self.supernet), input_shape)
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
    return subnet_onnx(build_supernet(space), arch, batch_size)


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
