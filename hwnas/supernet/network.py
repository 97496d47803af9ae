"""The once-for-all supernets of the ``mbconv`` family (MobileNetV3, ProxylessNAS) and subnet extraction.

The ``resnet`` family's supernet is :class:`hwnas.supernet.resnet.ElasticResNet`, the ``plain``
family's :class:`hwnas.supernet.plain.ElasticPlainCNN`.

:func:`build_supernet` is the one place that maps a space's ``family`` to its network class.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from hwnas.arch import Architecture, largest_architecture, sample_architecture, smallest_architecture
from hwnas.space import SearchSpace, get_space
from hwnas.supernet.elastic import DynamicMBConv, first_block, stem
from hwnas.supernet.plain import ElasticPlainCNN
from hwnas.supernet.resnet import ElasticResNet
from hwnas.supernet.static import Head, SubnetMobileNetV3


class ElasticMobileNetV3(nn.Module):
    """A supernet over a :class:`~hwnas.space.SearchSpace`.

    ``set_active(arch)`` selects a subnet; ``forward`` then runs exactly that subnet's path.
    ``extract(arch)`` returns a standalone static module with the sliced weights. Module names
    follow once-for-all (``first_conv``, ``blocks.N``, ``final_expand_layer``, ``feature_mix_layer``,
    ``classifier``) so its checkpoints load with a key normalisation.
    """

    def __init__(self, space: SearchSpace | str) -> None:
        super().__init__()
        self.space = space = get_space(space)
        self.first_conv = stem(space)
        blocks: list[nn.Module] = [_Residual(first_block(space))]
        self.stage_blocks: list[list[int]] = []
        in_ch = space.first_block_width
        for stage, st in enumerate(space.stages):
            ids = []
            for i in range(max(space.stage_depths(stage))):
                ids.append(len(blocks))
                blocks.append(_Residual(DynamicMBConv(space, in_ch, st.width, st.stride if i == 0 else 1,
                                                      st.act, st.se)))
                in_ch = st.width
            self.stage_blocks.append(ids)
        self.blocks = nn.ModuleList(blocks)
        head = Head.for_space(space)
        self.final_expand_layer = head.final_expand_layer
        self.feature_mix_layer = head.feature_mix_layer
        self.classifier = nn.Sequential()
        self.classifier.add_module("dropout", head.dropout)
        self.classifier.add_module("linear", head.classifier)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = space.bn_eps, space.bn_momentum
        self._init_weights()
        self.active = largest_architecture(space)
        self.set_active(self.active)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    # ----------------------------------------------------------------------------- selection
    def set_active(self, arch: Architecture) -> Architecture:
        arch.validate(self.space)
        self.active = arch
        for stage, ids in enumerate(self.stage_blocks):
            for i, block_id in enumerate(ids):
                slot = stage * self.space.max_depth + i
                layer = self.blocks[block_id].conv
                layer.active_kernel = arch.kernel[slot]
                layer.active_expand = arch.expand[slot]
        return arch

    def sample_active(self, rng: np.random.Generator | int | None = None) -> Architecture:
        return self.set_active(sample_architecture(self.space, rng))

    def set_largest(self) -> Architecture:
        return self.set_active(largest_architecture(self.space))

    def set_smallest(self) -> Architecture:
        return self.set_active(smallest_architecture(self.space))

    # ----------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        x = self.blocks[0](x)
        for stage, ids in enumerate(self.stage_blocks):
            for block_id in ids[: self.active.depth[stage]]:
                x = self.blocks[block_id](x)
        x = self.final_expand_layer(x)
        x = x.mean(dim=(2, 3), keepdim=True)
        if self.feature_mix_layer is not None:
            x = self.feature_mix_layer(x)
        return self.classifier(torch.flatten(x, 1))

    # ----------------------------------------------------------------------------- extraction
    @torch.no_grad()
    def extract(self, arch: Architecture | None = None) -> SubnetMobileNetV3:
        """A standalone static subnet (sliced, transformed weights; BN statistics copied)."""
        arch = self.active if arch is None else arch.validate(self.space)
        blocks = [copy.deepcopy(self.blocks[0].conv)]
        for stage, index, slot in arch.active_blocks():
            layer: DynamicMBConv = self.blocks[self.stage_blocks[stage][index]].conv
            blocks.append(layer.export(arch.kernel[slot], arch.expand[slot]))
        head = Head.for_space(self.space)
        head.final_expand_layer = copy.deepcopy(self.final_expand_layer)
        head.feature_mix_layer = copy.deepcopy(self.feature_mix_layer)
        head.classifier = copy.deepcopy(self.classifier.linear)
        subnet = SubnetMobileNetV3(copy.deepcopy(self.first_conv), blocks, head)
        subnet.arch = arch
        return subnet.train(self.training)

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Importance-sort every elastic block's hidden channels (before width-elastic training)."""
        for ids in self.stage_blocks:
            for block_id in ids:
                self.blocks[block_id].conv.sort_channels()


class _Residual(nn.Module):
    """Holds a block under the attribute ``conv`` (OFA's ResidualBlock naming)."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


# family -> supernet class; a new family adds its builder here (see README, "Adding a search space")
SUPERNET_CLASSES: dict[str, type[nn.Module]] = {"mbconv": ElasticMobileNetV3, "resnet": ElasticResNet,
                                                 "plain": ElasticPlainCNN}


def build_supernet(space: SearchSpace | str) -> nn.Module:
    """The elastic supernet of ``space``, built by its family's network class."""
    space = get_space(space)
    return SUPERNET_CLASSES[space.family](space)
