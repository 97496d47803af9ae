"""Elastic layers of the once-for-all supernet.

Parameter names mirror once-for-all's flat layout (``depth_conv.conv.weight``,
``depth_conv.conv.7to5_matrix``, ``depth_conv.se.fc.reduce.weight``, ...) so a published OFA
checkpoint maps onto these modules by a key normalisation alone.

* Elastic kernel: the largest depthwise kernel is stored; a smaller kernel is the centre crop
  transformed by a learned ``k×k`` matrix per step (7→5, then 5→3), as in OFA.
* Elastic width: hidden channels are the leading slice of the stored tensors; channels are sorted
  by importance (:meth:`DynamicMBConv.sort_channels`) so the slice keeps the most useful ones.
* Elastic depth lives in the network: a stage runs its first ``d`` blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.plan import BlockSpec
from hwnas.space import SearchSpace
from hwnas.supernet.static import ConvBNAct, MBConvBlock, SqueezeExcite, activation


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the leading ``C`` channels of its stored statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        if c == self.num_features:
            return super().forward(x)
        use_batch_stats = self.training or self.running_mean is None
        if self.training and self.momentum is None:
            self.num_batches_tracked += 1
            momentum = 1.0 / float(self.num_batches_tracked)
        else:
            momentum = 0.0 if self.momentum is None else self.momentum
        return F.batch_norm(
            x,
            None if self.running_mean is None else self.running_mean[:c],
            None if self.running_var is None else self.running_var[:c],
            self.weight[:c], self.bias[:c], use_batch_stats, momentum, self.eps)

    def export(self, c: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum).to(self.weight)
        with torch.no_grad():
            bn.weight.copy_(self.weight[:c])
            bn.bias.copy_(self.bias[:c])
            bn.running_mean.copy_(self.running_mean[:c])
            bn.running_var.copy_(self.running_var[:c])
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn


class ElasticClassifier(nn.Module):
    """Dropout + a linear layer over the leading ``features`` inputs, stored under ``linear`` (once-for-all's
    naming): the classifier of supernets whose last width is elastic (``resnet``, ``plain``)."""

    def __init__(self, features: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.dropout(x), self.linear.weight[:, :x.size(1)], self.linear.bias)


@torch.no_grad()
def leading_linear(linear: nn.Linear, inputs: int) -> nn.Linear:
    """A static copy of ``linear`` over its leading ``inputs`` inputs (an elastic classifier's export)."""
    out = nn.Linear(inputs, linear.out_features).to(linear.weight)
    out.weight.copy_(linear.weight[:, :inputs])
    out.bias.copy_(linear.bias)
    return out


class DynamicPointwiseConv(nn.Module):
    """1x1 conv whose input and output channels are leading slices of the stored weight."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def active_weight(self, out_channels: int, in_channels: int) -> torch.Tensor:
        return self.weight[:out_channels, :in_channels]

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(out_channels, x.size(1)))


def trim_kernel_to_input(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The centre of a stride-1 "same" kernel that can touch an ``height x width`` input.

    With padding ``k // 2``, a stride-1 output pixel reaches at most ``size - 1`` pixels to either
    side, so only the central ``2 * size - 1`` taps of a larger kernel ever multiply data; the rest
    multiply zero padding. The supernet's last stages run 7x7 depthwise kernels on 2x2 maps (the
    ``fmnist-mbv3`` space at every resolution), where 40 of 49 taps are wasted in the forward and
    both backward convolutions. Cropping gives the same output (and the cropped-away taps get the
    zero gradient they would get anyway); what it saves is measured by experiments/train_speed.py.
    """
    kh, kw = min(weight.size(2), 2 * height - 1), min(weight.size(3), 2 * width - 1)
    if (kh, kw) == tuple(weight.shape[2:]):
        return weight
    top, left = (weight.size(2) - kh) // 2, (weight.size(3) - kw) // 2
    return weight[:, :, top:top + kh, left:left + kw]


class DynamicDepthwiseConv(nn.Module):
    """Depthwise conv with elastic kernel size via OFA's kernel transformation matrices."""

    def __init__(self, max_channels: int, kernel_sizes: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.stride = stride
        self.trim_kernel = True  # False only to measure what trimming saves (experiments/train_speed.py)
        k = self.kernel_sizes[-1]
        self.weight = nn.Parameter(torch.empty(max_channels, 1, k, k))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        for larger, smaller in zip(self.kernel_sizes[1:], self.kernel_sizes[:-1]):
            self.register_parameter(f"{larger}to{smaller}_matrix", nn.Parameter(torch.eye(smaller * smaller)))

    def active_weight(self, channels: int, kernel: int) -> torch.Tensor:
        weight = self.weight[:channels]
        for larger, smaller in zip(self.kernel_sizes[::-1], self.kernel_sizes[-2::-1]):
            if larger <= kernel:
                break
            start = (larger - smaller) // 2
            crop = weight[:, :, start:start + smaller, start:start + smaller].reshape(-1, smaller * smaller)
            matrix = getattr(self, f"{larger}to{smaller}_matrix")
            weight = F.linear(crop, matrix).reshape(channels, 1, smaller, smaller)
        return weight

    def forward(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        c = x.size(1)
        weight = self.active_weight(c, kernel)
        if self.stride == 1 and self.trim_kernel:
            weight = trim_kernel_to_input(weight, x.shape[-2], x.shape[-1])
        return F.conv2d(x, weight, None, self.stride, (weight.size(2) // 2, weight.size(3) // 2), 1, c)


class DynamicSE(nn.Module):
    """Squeeze-excite over a leading slice of channels; hidden width follows the active channels."""

    def __init__(self, max_channels: int, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        max_mid = space.se_channels(max_channels)
        self.fc = nn.ModuleDict({
            "reduce": nn.Conv2d(max_channels, max_mid, 1, bias=True),
            "expand": nn.Conv2d(max_mid, max_channels, 1, bias=True),
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        mid = self.space.se_channels(c)
        y = x.mean(dim=(2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, self.fc["reduce"].weight[:mid, :c], self.fc["reduce"].bias[:mid]))
        y = F.hardsigmoid(F.conv2d(y, self.fc["expand"].weight[:c, :mid], self.fc["expand"].bias[:c]))
        return x * y

    def export(self, c: int) -> SqueezeExcite:
        mid = self.space.se_channels(c)
        se = SqueezeExcite(c, mid).to(self.fc["reduce"].weight)
        with torch.no_grad():
            se.fc["reduce"].weight.copy_(self.fc["reduce"].weight[:mid, :c])
            se.fc["reduce"].bias.copy_(self.fc["reduce"].bias[:mid])
            se.fc["expand"].weight.copy_(self.fc["expand"].weight[:c, :mid])
            se.fc["expand"].bias.copy_(self.fc["expand"].bias[:c])
        return se


class DynamicMBConv(nn.Module):
    """An elastic inverted-residual block (kernel and expand ratio chosen per forward)."""

    def __init__(self, space: SearchSpace, in_channels: int, out_channels: int, stride: int,
                 act: str, use_se: bool) -> None:
        super().__init__()
        self.space = space
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.act_name, self.use_se = act, use_se
        max_mid = space.mid_channels(in_channels, max(space.expand_ratios))
        self.inverted_bottleneck = nn.ModuleDict({
            "conv": DynamicPointwiseConv(in_channels, max_mid),
            "bn": DynamicBatchNorm2d(max_mid, eps=space.bn_eps, momentum=space.bn_momentum),
        })
        self.depth_conv = nn.ModuleDict({
            "conv": DynamicDepthwiseConv(max_mid, space.kernel_sizes, stride),
            "bn": DynamicBatchNorm2d(max_mid, eps=space.bn_eps, momentum=space.bn_momentum),
        })
        if use_se:
            self.depth_conv["se"] = DynamicSE(max_mid, space)
        self.point_linear = nn.ModuleDict({
            "conv": DynamicPointwiseConv(max_mid, out_channels),
            "bn": DynamicBatchNorm2d(out_channels, eps=space.bn_eps, momentum=space.bn_momentum),
        })
        self.act = activation(act)
        self.active_kernel = max(space.kernel_sizes)
        self.active_expand = max(space.expand_ratios)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    def spec(self, kernel: int, expand: int) -> BlockSpec:
        mid = self.space.mid_channels(self.in_channels, expand)
        return BlockSpec(self.in_channels, self.out_channels, mid, kernel, self.stride, self.act_name,
                         self.space.se_channels(mid) if self.use_se else 0, expand_conv=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.space.mid_channels(x.size(1), self.active_expand)
        y = self.act(self.inverted_bottleneck["bn"](self.inverted_bottleneck["conv"](x, mid)))
        y = self.act(self.depth_conv["bn"](self.depth_conv["conv"](y, self.active_kernel)))
        if self.use_se:
            y = self.depth_conv["se"](y)
        y = self.point_linear["bn"](self.point_linear["conv"](y, self.out_channels))
        return y + x if self.residual else y

    def export(self, kernel: int, expand: int) -> MBConvBlock:
        """A static block with this block's weights sliced for ``(kernel, expand)``."""
        spec = self.spec(kernel, expand)
        mid = spec.mid_channels
        block = MBConvBlock(spec).to(self.point_linear["conv"].weight)  # supernet's dtype and device
        with torch.no_grad():
            block.inverted_bottleneck.conv.weight.copy_(self.inverted_bottleneck["conv"].active_weight(mid, self.in_channels))
            block.inverted_bottleneck.bn = self.inverted_bottleneck["bn"].export(mid)
            block.depth_conv.conv.weight.copy_(self.depth_conv["conv"].active_weight(mid, kernel))
            block.depth_conv.bn = self.depth_conv["bn"].export(mid)
            if self.use_se:
                block.se = self.depth_conv["se"].export(mid)
            block.point_linear.conv.weight.copy_(self.point_linear["conv"].active_weight(self.out_channels, mid))
            block.point_linear.bn = self.point_linear["bn"].export(self.out_channels)
        return block

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Reorder hidden channels by importance (L1 of the projection weights), as OFA does.

        After sorting, any leading slice of hidden channels keeps the most important ones, so a
        smaller expand ratio loses as little as possible. The network's function is unchanged.
        """
        importance = self.point_linear["conv"].weight.abs().sum(dim=(0, 2, 3))
        order = torch.argsort(importance, descending=True)
        if self.use_se:
            se = self.depth_conv["se"].fc
            se.reduce.weight.copy_(se.reduce.weight[:, order])
            se.expand.weight.copy_(se.expand.weight[order])
            se.expand.bias.copy_(se.expand.bias[order])
            se_order = torch.argsort(se.expand.weight.abs().sum(dim=(0, 2, 3)), descending=True)
            se.reduce.weight.copy_(se.reduce.weight[se_order])
            se.reduce.bias.copy_(se.reduce.bias[se_order])
            se.expand.weight.copy_(se.expand.weight[:, se_order])
        pl = self.point_linear["conv"].weight
        pl.copy_(pl[:, order])
        dw = self.depth_conv["conv"].weight
        dw.copy_(dw[order])
        ib = self.inverted_bottleneck["conv"].weight
        ib.copy_(ib[order])
        for bn in (self.depth_conv["bn"], self.inverted_bottleneck["bn"]):
            for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                tensor.copy_(tensor[order])


def first_block(space: SearchSpace) -> MBConvBlock:
    from hwnas.plan import first_block_spec

    return MBConvBlock(first_block_spec(space))


def stem(space: SearchSpace) -> ConvBNAct:
    return ConvBNAct(space.in_channels, space.stem_width, 3, space.stem_stride, act=space.stem_act)
