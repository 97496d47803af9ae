"""The elastic plain CNN supernet (``plain`` family: VGG-style conv stacks) and its static subnets.

One conv + BN per layer position of the space holds the largest shape (widest input and output,
largest kernel). A subnet's layer uses the leading slices of the channels and the centre of the
kernel: once-for-all's elastic kernel without its kernel-transformation matrices, which a dense
conv stack does not need to train well and which would make extraction a learned transform rather
than a slice. Elastic depth runs a stage's first ``depth[stage]`` layers. The layer shapes come from
:func:`hwnas.plain_arch.plain_plan`, which the static subnet, the latency table and the MACs count share.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.plain_arch import (ConvLayerSpec, LayerPosition, PlainArchitecture, largest_plain_architecture,
                              layer_positions, plain_plan, plain_space, sample_plain_architecture,
                              smallest_plain_architecture)
from hwnas.space import PlainSpace
from hwnas.supernet.elastic import DynamicBatchNorm2d, ElasticClassifier, leading_linear
from hwnas.supernet.static import ConvBNAct


def centre_kernel(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The central ``kernel x kernel`` taps of a larger stored kernel (a view: gradients flow to it)."""
    start = (weight.size(2) - kernel) // 2
    return weight[:, :, start:start + kernel, start:start + kernel]


class DynamicPlainConv(nn.Module):
    """One elastic conv layer: k x k conv (stride 1, same padding; leading channels, centre taps) + BN.

    ReLU and the pooling before it are the network's: they have no weights to slice.
    """

    def __init__(self, max_in: int, max_out: int, max_kernel: int, space: PlainSpace) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, max_kernel, max_kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bn = DynamicBatchNorm2d(max_out, eps=space.bn_eps, momentum=space.bn_momentum)

    def active_weight(self, in_channels: int, out_channels: int, kernel: int) -> torch.Tensor:
        return centre_kernel(self.weight[:out_channels, :in_channels], kernel)

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int) -> torch.Tensor:
        weight = self.active_weight(x.size(1), out_channels, kernel)
        return self.bn(F.conv2d(x, weight, None, 1, kernel // 2))

    @torch.no_grad()
    def export(self, spec: ConvLayerSpec) -> "PlainConvLayer":
        """The static layer (pool, conv, BN, [skip], ReLU) of ``spec`` with this layer's weights sliced."""
        conv = ConvBNAct(spec.in_channels, spec.out_channels, spec.kernel, 1,
                         act=None if spec.residual else "relu").to(self.weight)
        conv.conv.weight.copy_(self.active_weight(spec.in_channels, spec.out_channels, spec.kernel))
        conv.bn = self.bn.export(spec.out_channels)
        return PlainConvLayer(conv, spec.pool, spec.residual)

    @torch.no_grad()
    def permute_outputs(self, order: torch.Tensor) -> None:
        """Reorder output channels (conv filters and every BN tensor alike)."""
        self.weight.copy_(self.weight[order])
        for tensor in (self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var):
            tensor.copy_(tensor[order])

    @torch.no_grad()
    def permute_inputs(self, order: torch.Tensor) -> None:
        self.weight.copy_(self.weight[:, order])

    @torch.no_grad()
    def importance(self) -> torch.Tensor:
        """Per output channel, the L1 norm of its filter (full input width, full kernel)."""
        return self.weight.abs().sum(dim=(1, 2, 3))


class ElasticPlainCNN(nn.Module):
    """The supernet of a :class:`~hwnas.space.PlainSpace`.

    ``set_active(arch)`` selects a subnet, ``forward`` runs it (differentiably: every layer reads a
    view of the stored weights), ``extract(arch)`` returns the static :class:`SubnetPlainCNN` with the
    sliced weights and BN statistics.
    """

    def __init__(self, space: PlainSpace | str) -> None:
        super().__init__()
        self.space = space = plain_space(space)
        self.positions: tuple[LayerPosition, ...] = layer_positions(space)
        widest = plain_plan(space, largest_plain_architecture(space))
        self.layers = nn.ModuleList(DynamicPlainConv(spec.in_channels, spec.out_channels, space.max_kernel, space)
                                    for spec in widest.layers)
        self.head_size = widest.final_size  # the one map size a flattened head sees (unused by global pooling)
        inputs = space.head_inputs(widest.features, widest.final_size)
        # the head's first linear layer reads the leading inputs: flattened channel-major, the leading
        # channels' inputs lead, so a narrower last stage is a leading slice either way
        self.hidden = nn.Linear(inputs, space.head_hidden) if space.head_hidden else None
        self.classifier = ElasticClassifier(space.head_hidden or inputs, space.num_classes, space.dropout)
        nn.init.normal_(self.classifier.linear.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.linear.bias)
        self.active = self.set_largest()

    # ----------------------------------------------------------------------------- selection
    def set_active(self, arch: PlainArchitecture) -> PlainArchitecture:
        self.active, self._plan = arch, plain_plan(self.space, arch)  # plain_plan validates
        return arch

    def sample_active(self, rng: np.random.Generator | int | None = None) -> PlainArchitecture:
        return self.set_active(sample_plain_architecture(self.space, rng))

    def set_largest(self) -> PlainArchitecture:
        return self.set_active(largest_plain_architecture(self.space))

    def set_smallest(self) -> PlainArchitecture:
        return self.set_active(smallest_plain_architecture(self.space))

    # ----------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for spec in self._plan.layers:
            if spec.pool:
                x = F.max_pool2d(x, 2, 2)
            y = self.layers[spec.layer](x, spec.out_channels, spec.kernel)
            x = F.relu(x + y if spec.residual else y)
        x = head_input(x, self.space.head == "flatten")
        if self.hidden is not None:
            x = F.relu(F.linear(x, self.hidden.weight[:, :x.size(1)], self.hidden.bias))
        return self.classifier(x)

    # ----------------------------------------------------------------------------- extraction
    @torch.no_grad()
    def extract(self, arch: PlainArchitecture | None = None) -> "SubnetPlainCNN":
        """A standalone static subnet (sliced weights; BN statistics copied)."""
        arch = self.active if arch is None else arch
        plan = plain_plan(self.space, arch)
        layers = [self.layers[spec.layer].export(spec) for spec in plan.layers]
        subnet = SubnetPlainCNN(layers, self.export_head(plan.features, plan.final_size))
        subnet.arch = arch
        return subnet.train(self.training)

    @torch.no_grad()
    def export_head(self, features: int, size: int) -> "PlainHead":
        """The static head over the leading ``features`` channels of a ``size`` x ``size`` map."""
        inputs = self.space.head_inputs(features, size)
        hidden = None
        if self.hidden is not None:
            hidden = leading_linear(self.hidden, inputs)
            inputs = self.space.head_hidden
        return PlainHead(self.space.head, hidden, leading_linear(self.classifier.linear, inputs), self.space.dropout)

    # ----------------------------------------------------------------------------- channel sorting
    @torch.no_grad()
    def sort_channels(self) -> None:
        """Importance-sort every layer's output channels, so a narrower width keeps the strongest ones.

        Importance is a filter's L1 norm. A layer whose output can leave its stage (it may be the
        stage's last under some depth) feeds the next stage's first layer or the classifier, which
        reads one channel order whatever the depth; so those layers share one order (by their summed
        importance). A layer that always feeds the next layer of its stage gets its own. Every
        consumer's input channels are permuted alike, so the network computes the same function at
        full width; at any depth and kernel. In a residual space a layer's output is added to its input,
        so one order serves the whole stage.
        """
        for stage in range(self.space.num_stages):
            ids = [p.layer for p in self.positions if p.stage == stage]
            # positions that never end the stage get their own order; with identity skips every layer
            # adds to its input, so the whole stage shares one
            inner = 0 if self.space.residual else self.space.base_depths[stage] + min(self.space.depths) - 1
            shared = torch.argsort(sum(self.layers[i].importance() for i in ids[inner:]), descending=True)
            for pos, i in enumerate(ids):
                order = torch.argsort(self.layers[i].importance(), descending=True) if pos < inner else shared
                self.layers[i].permute_outputs(order)
                if pos + 1 < len(ids):
                    self.layers[i + 1].permute_inputs(order)
            if stage + 1 < self.space.num_stages:
                self.layers[ids[-1] + 1].permute_inputs(shared)
            else:
                self._permute_head_inputs(shared)

    @torch.no_grad()
    def _permute_head_inputs(self, order: torch.Tensor) -> None:
        """Reorder the head's input channels (every flattened position of a channel moves with it)."""
        weight = (self.hidden if self.hidden is not None else self.classifier.linear).weight
        per_channel = self.space.head_inputs(1, self.head_size)
        weight.copy_(weight.view(weight.size(0), -1, per_channel)[:, order].reshape_as(weight))


# --------------------------------------------------------------------------------- static subnet
class PlainConvLayer(nn.Module):
    """[2x2 max pooling] -> conv + BN (:class:`ConvBNAct`, so BN folds) -> [+ input] -> ReLU: one
    latency-table entry. With ``residual`` the ReLU follows the skip, so ``conv`` has no activation."""

    def __init__(self, conv: ConvBNAct, pool: bool, residual: bool = False) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2) if pool else None
        self.conv = conv
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        return F.relu(x + self.conv(x)) if self.residual else self.conv(x)


def head_input(x: torch.Tensor, flatten: bool) -> torch.Tensor:
    """What the head's first linear layer reads: the map flattened channel-major, or averaged globally."""
    return x.flatten(1) if flatten else x.mean(dim=(2, 3))


class PlainHead(nn.Module):
    """Global average pooling or flattening, [hidden linear + ReLU], dropout, classifier: the other
    latency-table entry."""

    def __init__(self, pool: str, hidden: nn.Linear | None, classifier: nn.Linear, dropout: float) -> None:
        super().__init__()
        self.flatten = pool == "flatten"
        self.hidden = hidden
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = head_input(x, self.flatten)
        if self.hidden is not None:
            x = F.relu(self.hidden(x))
        return self.classifier(self.dropout(x))


class SubnetPlainCNN(nn.Module):
    """A standalone plain-CNN subnet: its conv layers in order, then the head."""

    def __init__(self, layers: list[PlainConvLayer], head: PlainHead) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(x)

    def split_shared(self) -> tuple[nn.Module, nn.Module]:
        """(the layers every subnet of the space shares at a resolution, the rest), as
        :meth:`~hwnas.supernet.static.SubnetMobileNetV3.split_shared`: here none (even the first
        layer's width and kernel are elastic), so the shared part is an empty ``Sequential`` (identity)."""
        return nn.Sequential(), nn.Sequential(*self.layers, self.head)
