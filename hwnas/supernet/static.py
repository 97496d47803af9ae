"""Static (non-elastic) MobileNetV3 building blocks and the standalone subnet network.

A subnet extracted from the supernet is built from these plain modules, so it exports to ONNX,
folds BN, quantises and is measured exactly like any hand-written model. The latency profiler
also builds single blocks from here, so the table measures the same operators the exported
models run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.plan import BlockSpec


def activation(name: str) -> nn.Module:
    """OFA's 'relu' is plain ReLU, 'relu6' is min(max(x, 0), 6); 'hswish' is x * relu6(x + 3) / 6 (= nn.Hardswish)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish()
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Module):
    """Conv (no bias) -> optional BN -> optional activation; attribute names match OFA's ConvLayer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 act: str | None = None, use_bn: bool = True, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels) if use_bn else None
        self.act = activation(act) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


class SqueezeExcite(nn.Module):
    """SE as in OFA: mean-pool, 1x1 reduce (+bias), ReLU, 1x1 expand (+bias), hard sigmoid."""

    def __init__(self, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.fc = nn.ModuleDict({
            "reduce": nn.Conv2d(channels, mid_channels, 1, bias=True),
            "expand": nn.Conv2d(mid_channels, channels, 1, bias=True),
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3), keepdim=True)
        y = F.relu(self.fc["reduce"](y))
        y = F.hardsigmoid(self.fc["expand"](y))
        return x * y


class MBConvBlock(nn.Module):
    """Inverted residual block: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project (+ identity)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.spec = spec
        if spec.expand_conv:
            self.inverted_bottleneck = ConvBNAct(spec.in_channels, spec.mid_channels, 1, act=spec.act)
        else:
            self.inverted_bottleneck = None
        self.depth_conv = ConvBNAct(spec.mid_channels, spec.mid_channels, spec.kernel, spec.stride,
                                    act=spec.act, groups=spec.mid_channels)
        self.se = SqueezeExcite(spec.mid_channels, spec.se_channels) if spec.se_channels else None
        self.point_linear = ConvBNAct(spec.mid_channels, spec.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inverted_bottleneck(x) if self.inverted_bottleneck is not None else x
        y = self.depth_conv(y)
        if self.se is not None:
            y = self.se(y)
        y = self.point_linear(y)
        return y + x if self.spec.residual else y


class Head(nn.Module):
    """Final 1x1 expand + BN + act, global pool, feature-mix 1x1 (no BN) + act, classifier.

    MobileNetV3 uses h-swish and both convs; ProxylessNAS (``feature_width`` 0) has only the
    pre-pool conv (ReLU6), which once-for-all calls its feature-mix layer.
    """

    def __init__(self, in_channels: int, expand_width: int, feature_width: int, num_classes: int,
                 dropout: float, act: str = "hswish") -> None:
        super().__init__()
        self.final_expand_layer = ConvBNAct(in_channels, expand_width, 1, act=act)
        if feature_width:
            self.feature_mix_layer = ConvBNAct(expand_width, feature_width, 1, act=act, use_bn=False)
        else:
            self.feature_mix_layer = None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(feature_width or expand_width, num_classes)

    @classmethod
    def for_space(cls, space) -> "Head":
        """The head of a subnet of ``space`` (its input is the last stage's output)."""
        return cls(space.stages[-1].width, space.final_expand_width, space.feature_width,
                   space.num_classes, space.dropout, space.head_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_layer(x)
        x = x.mean(dim=(2, 3), keepdim=True)
        if self.feature_mix_layer is not None:
            x = self.feature_mix_layer(x)
        x = torch.flatten(x, 1)
        return self.classifier(self.dropout(x))


class SubnetMobileNetV3(nn.Module):
    """A standalone subnet: stem, blocks (first fixed block included), head."""

    def __init__(self, stem: ConvBNAct, blocks: list[MBConvBlock], head: Head) -> None:
        super().__init__()
        self.first_conv = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def split_shared(self) -> tuple[nn.Module, nn.Module]:
        """(the layers every subnet of the space shares at a resolution, the rest), sharing this
        subnet's modules: the stem and the fixed first block have no elastic choice, so accuracy
        collection computes their outputs and BN statistics once per resolution."""
        return nn.Sequential(self.first_conv, self.blocks[0]), nn.Sequential(*self.blocks[1:], self.head)
