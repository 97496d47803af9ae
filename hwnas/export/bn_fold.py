"""Fold BatchNorm into the preceding convolution of a static subnet.

At inference a BN layer is a fixed per-channel affine map, so ``BN(conv(x))`` equals one
convolution with scaled weights and a bias. Folding before export removes every BN node from the
ONNX graph (fewer kernels, no runtime-dependent fusion) and is what INT8 quantisation expects:
weights are quantised once with their BN scale already applied. The fold is computed in float64
so the folded model matches the unfolded one to float32 rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hwnas.supernet.static import ConvBNAct


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv (with bias) computing ``bn(conv(x))`` with ``bn`` in eval mode (running statistics)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    fused = fused.to(device=conv.weight.device, dtype=conv.weight.dtype)
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
    fused.weight.copy_(weight.to(conv.weight.dtype))
    fused.bias.copy_((bn.bias.double() + (bias - bn.running_mean.double()) * scale).to(conv.weight.dtype))
    return fused


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with every :class:`ConvBNAct`'s BN folded into its conv.

    The input is left untouched, so the caller can still compare the two (parity checks).
    Raises ``ValueError`` if a BatchNorm remains outside a ConvBNAct: it would silently stay in
    the exported graph, which means the model was not built from :mod:`hwnas.supernet.static`.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, ConvBNAct) and module.bn is not None:
            module.conv = fold_conv_bn(module.conv, module.bn)
            module.bn = None
    leftover = [name for name, m in folded.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if leftover:
        raise ValueError(f"BatchNorm layers outside a conv block cannot be folded: {leftover[:5]}")
    return folded
