"""The once-for-all elastic ResNet supernet (``resnet`` family) and its static subnets.

Module names mirror once-for-all's ``OFAResNets`` in its flat layout (``input_stem.N``,
``blocks.N.conv1``/``conv2``/``conv3``/``downsample``, ``classifier.linear``), so a published
checkpoint maps onto it by key normalisation alone (:mod:`hwnas.supernet.ofa_checkpoint`).
Elastic width is the leading slice of every stored tensor; the layer shapes come from
:func:`hwnas.resnet_arch.resnet_plan`, which the static subnet and the MACs count share.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.resnet_arch import (BottleneckSpec, ResNetArchitecture, largest_resnet_architecture, resnet_plan,
                               sample_resnet_architecture)
from hwnas.space import ResNetSpace, get_space, require_family
from hwnas.supernet.elastic import DynamicBatchNorm2d, ElasticClassifier, leading_linear
from hwnas.supernet.static import ConvBNAct


class DynamicConvBN(nn.Module):
    """A k x k conv (leading slices of its stored weight) + BN over the active channels."""

    def __init__(self, max_in: int, max_out: int, kernel: int, stride: int, space: ResNetSpace) -> None:
        super().__init__()
        self.stride = stride
        self.conv = _DynamicConv(max_in, max_out, kernel)
        self.bn = DynamicBatchNorm2d(max_out, eps=space.bn_eps, momentum=space.bn_momentum)

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        weight = self.conv.weight[:out_channels, :x.size(1)]
        return self.bn(F.conv2d(x, weight, None, self.stride, weight.size(2) // 2))

    def export(self, in_channels: int, out_channels: int, act: str | None) -> ConvBNAct:
        """A static conv + BN (+ ReLU) with this layer's weights sliced to the given widths."""
        k = self.conv.weight.size(2)
        layer = ConvBNAct(in_channels, out_channels, k, self.stride, act=act).to(self.conv.weight)
        with torch.no_grad():
            layer.conv.weight.copy_(self.conv.weight[:out_channels, :in_channels])
        layer.bn = self.bn.export(out_channels)
        return layer


class _DynamicConv(nn.Module):
    """Holds the full weight under ``weight`` (once-for-all's flat ``conv.weight``)."""

    def __init__(self, max_in: int, max_out: int, kernel: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")


class DynamicBottleneck(nn.Module):
    """An elastic bottleneck block: hidden and output width chosen per forward."""

    def __init__(self, space: ResNetSpace, max_in: int, max_out: int, stride: int, downsample: bool) -> None:
        super().__init__()
        max_mid = space.mid_channels(max_out, max(space.expand_ratios))
        self.conv1 = DynamicConvBN(max_in, max_mid, 1, 1, space)
        self.conv2 = DynamicConvBN(max_mid, max_mid, 3, stride, space)
        self.conv3 = DynamicConvBN(max_mid, max_out, 1, 1, space)
        self.downsample = DynamicConvBN(max_in, max_out, 1, 1, space) if downsample else None
        self.stride = stride

    def forward(self, x: torch.Tensor, spec: BottleneckSpec) -> torch.Tensor:
        y = F.relu(self.conv1(x, spec.mid_channels))
        y = F.relu(self.conv2(y, spec.mid_channels))
        y = self.conv3(y, spec.out_channels)
        return F.relu(y + self._shortcut(x, spec.out_channels))

    def _shortcut(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        if self.downsample is None:
            return x
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride, self.stride, 0, ceil_mode=True)
        return self.downsample(x, out_channels)

    def export(self, spec: BottleneckSpec) -> "Bottleneck":
        return Bottleneck(self.conv1.export(spec.in_channels, spec.mid_channels, "relu"),
                          self.conv2.export(spec.mid_channels, spec.mid_channels, "relu"),
                          self.conv3.export(spec.mid_channels, spec.out_channels, None),
                          None if self.downsample is None else
                          self.downsample.export(spec.in_channels, spec.out_channels, None), self.stride)


class _StemResidual(nn.Module):
    """The stem's middle conv, under ``conv`` (once-for-all's ResidualBlock naming)."""

    def __init__(self, conv: DynamicConvBN) -> None:
        super().__init__()
        self.conv = conv


class ElasticResNet(nn.Module):
    """once-for-all's ``OFAResNets`` over a :class:`~hwnas.space.ResNetSpace`.

    ``set_active(arch)`` selects a subnet, ``forward`` runs it, ``extract(arch)`` returns the static
    subnet (:class:`SubnetResNet`) with the sliced weights.
    """

    def __init__(self, space: ResNetSpace | str) -> None:
        super().__init__()
        self.space = space = get_space(space)
        require_family(space, "resnet", "the elastic ResNet supernet")
        top = len(space.width_mults) - 1
        mid, out = space.stem_widths(top, top)
        self.input_stem = nn.ModuleList([
            DynamicConvBN(space.in_channels, mid, 3, 2, space),
            _StemResidual(DynamicConvBN(mid, mid, 3, 1, space)),
            DynamicConvBN(mid, out, 3, 1, space)])
        blocks = []
        for spec in resnet_plan(space, largest_resnet_architecture(space)).blocks:  # every block, widest
            blocks.append(DynamicBottleneck(space, spec.in_channels, spec.out_channels, spec.stride, spec.downsample))
        self.blocks = nn.ModuleList(blocks)
        self.classifier = ElasticClassifier(blocks[-1].conv3.conv.weight.size(0), space.num_classes, space.dropout)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        self.active = self.set_active(largest_resnet_architecture(space))

    def set_active(self, arch: ResNetArchitecture) -> ResNetArchitecture:
        self.active, self._plan = arch, resnet_plan(self.space, arch)
        return arch

    def sample_active(self, rng: np.random.Generator | int | None = None) -> ResNetArchitecture:
        return self.set_active(sample_resnet_architecture(self.space, rng))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan = self._plan
        x = F.relu(self.input_stem[0](x, plan.stem_mid))
        if not plan.stem_skip:
            x = x + F.relu(self.input_stem[1].conv(x, plan.stem_mid))
        x = F.relu(self.input_stem[2](x, plan.stem_out))
        x = F.max_pool2d(x, 3, 2, 1)
        for spec in plan.blocks:
            x = self.blocks[spec.block](x, spec)
        return self.classifier(x.mean(dim=(2, 3)))

    @torch.no_grad()
    def extract(self, arch: ResNetArchitecture | None = None) -> "SubnetResNet":
        """A standalone static subnet (sliced weights; BN statistics copied)."""
        arch = self.active if arch is None else arch
        plan = resnet_plan(self.space, arch)
        blocks = [self.blocks[spec.block].export(spec) for spec in plan.blocks]
        subnet = SubnetResNet(self.export_stem(plan.stem_mid, plan.stem_out, plan.stem_skip), not plan.stem_skip,
                              blocks, self.export_classifier(plan.features), self.space.dropout)
        subnet.arch = arch
        return subnet.train(self.training)

    @torch.no_grad()
    def export_stem(self, stem_mid: int, stem_out: int, skip: bool) -> list[ConvBNAct]:
        """The static stem convs at these widths (the middle one unless ``skip``)."""
        stem = [self.input_stem[0].export(self.space.in_channels, stem_mid, "relu")]
        if not skip:
            stem.append(self.input_stem[1].conv.export(stem_mid, stem_mid, "relu"))
        stem.append(self.input_stem[2].export(stem_mid, stem_out, "relu"))
        return stem

    @torch.no_grad()
    def export_classifier(self, features: int) -> nn.Linear:
        """The static classifier over the leading ``features`` inputs."""
        return leading_linear(self.classifier.linear, features)


# --------------------------------------------------------------------------------- static subnet
class Bottleneck(nn.Module):
    """Static bottleneck block built from :class:`ConvBNAct` (so BN folds and it exports like MBConv)."""

    def __init__(self, conv1: ConvBNAct, conv2: ConvBNAct, conv3: ConvBNAct, downsample: ConvBNAct | None,
                 stride: int) -> None:
        super().__init__()
        self.conv1, self.conv2, self.conv3, self.downsample = conv1, conv2, conv3, downsample
        self.pool = nn.AvgPool2d(stride, stride, 0, ceil_mode=True) if downsample is not None and stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(self.pool(x) if self.pool is not None else x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


class SubnetResNet(nn.Module):
    """A standalone ResNet subnet: stem convs (the middle one with an identity shortcut), max pooling,
    bottleneck blocks, global pooling, classifier."""

    def __init__(self, stem: list[ConvBNAct], stem_residual: bool, blocks: list[Bottleneck], classifier: nn.Linear,
                 dropout: float) -> None:
        super().__init__()
        self.input_stem = nn.ModuleList(stem)
        self.stem_residual = stem_residual
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Stem convs and max pooling (a latency-table entry on its own)."""
        x = self.input_stem[0](x)
        if self.stem_residual:
            x = x + self.input_stem[1](x)
        x = self.input_stem[-1](x)
        return F.max_pool2d(x, 3, 2, 1)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Global pooling and the classifier (a latency-table entry on its own)."""
        return self.classifier(self.dropout(x.mean(dim=(2, 3))))
