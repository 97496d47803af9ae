"""Subnets of a ``resnet``-family space (once-for-all's elastic ResNet): value object, plan, exact cost.

once-for-all describes a ResNet subnet by three lists, kept here as they are: ``d`` (the stem's
depth, then one extra depth per stage), ``e`` (one expand ratio per block the supernet holds,
inactive blocks included) and ``w`` (width-multiplier *indices*: the first two stem convs, the last
stem conv, then one per stage), plus the input resolution. The stem's middle conv (the one with an
identity shortcut) runs only when ``d[0]`` is the largest depth, as in once-for-all.

:func:`resnet_plan` is the one place that turns (space, architecture) into layer shapes; the
supernet, the static subnet and :func:`resnet_macs_and_params` read it. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.errors import ArchitectureError
from hwnas.plan import conv_out
from hwnas.space import ResNetSpace, get_space, require_family


@dataclass(frozen=True)
class ResNetArchitecture:
    """A ResNet subnet: ``depth`` (stem + per stage), per-block ``expand``, ``width`` indices, resolution."""

    depth: tuple[int, ...]
    expand: tuple[float, ...]
    width: tuple[int, ...]
    resolution: int

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "depth", tuple(int(d) for d in self.depth))
            object.__setattr__(self, "expand", tuple(float(e) for e in self.expand))
            object.__setattr__(self, "width", tuple(int(w) for w in self.width))
            object.__setattr__(self, "resolution", int(self.resolution))
        except (TypeError, ValueError) as exc:
            raise ArchitectureError(f"ResNet architecture values must be numbers: {exc}") from None

    def validate(self, space: ResNetSpace | str) -> "ResNetArchitecture":
        """Raise :class:`ArchitectureError` naming the first value outside ``space``; return self."""
        space = _resnet_space(space)
        for name, values, n in (("depth", self.depth, 1 + space.num_stages), ("expand", self.expand, space.num_blocks),
                                ("width", self.width, space.num_width_choices)):
            if len(values) != n:
                raise ArchitectureError(f"{name} list has {len(values)} entries; space {space.name!r} needs {n}")
        stem_depths = (min(space.depths), max(space.depths))
        if self.depth[0] not in stem_depths:
            raise ArchitectureError(f"depth[0] (the stem) = {self.depth[0]} is not allowed; choose from {stem_depths}")
        for i, d in enumerate(self.depth[1:], start=1):
            if d not in space.depths:
                raise ArchitectureError(f"depth[{i}] = {d} is not allowed; choose from {space.depths}")
        for i, e in enumerate(self.expand):
            if e not in space.expand_ratios:
                raise ArchitectureError(f"expand[{i}] = {e} is not allowed; choose from {space.expand_ratios}")
        for i, w in enumerate(self.width):
            if not 0 <= w < len(space.width_mults):
                raise ArchitectureError(f"width[{i}] = {w} is not a width-multiplier index; choose from "
                                        f"0..{len(space.width_mults) - 1} (multipliers {space.width_mults})")
        if self.resolution not in space.resolutions:
            raise ArchitectureError(f"resolution {self.resolution} is not allowed; choose from {space.resolutions}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"depth": list(self.depth), "expand": list(self.expand), "width": list(self.width),
                "resolution": self.resolution}

    def to_ofa_dict(self) -> dict[str, Any]:
        """once-for-all's form, as ``OFAResNets.set_active_subnet`` takes it."""
        return {"d": list(self.depth), "e": list(self.expand), "w": list(self.width), "r": [self.resolution]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], space: ResNetSpace | str | None = None) -> "ResNetArchitecture":
        """Parse hwnas's form or once-for-all's (``d``/``e``/``w``/``r`` or ``image_size``)."""
        if not isinstance(data, dict):
            raise ArchitectureError(f"an architecture must be a JSON object, got {type(data).__name__}")
        names = ("depth", "expand", "width", "resolution") if "depth" in data else \
            ("d", "e", "w", "r" if "r" in data else "image_size")
        missing = [n for n in names if n not in data]
        if missing:
            raise ArchitectureError(f"a ResNet architecture needs depth/expand/width/resolution (hwnas) or d/e/w/r "
                                    f"(once-for-all); missing {missing}")
        resolution = data[names[3]]
        if isinstance(resolution, (list, tuple)):
            if len(resolution) != 1:
                raise ArchitectureError(f"resolution must be one value, got {resolution}")
            resolution = resolution[0]
        arch = cls(tuple(data[names[0]]), tuple(data[names[1]]), tuple(data[names[2]]), resolution)
        return arch.validate(space) if space is not None else arch


def _resnet_space(space: ResNetSpace | str) -> ResNetSpace:
    space = get_space(space)
    require_family(space, "resnet", "a ResNet architecture")
    return space  # type: ignore[return-value]


# --------------------------------------------------------------------------------- sampling
def sample_resnet_architecture(space: ResNetSpace | str, rng: np.random.Generator | int | None = None,
                               resolution: int | None = None) -> ResNetArchitecture:
    """Uniformly random subnet (the stem's depth from {min, max}, as once-for-all samples it)."""
    space = _resnet_space(space)
    rng = np.random.default_rng(rng)
    stem = int(rng.choice([min(space.depths), max(space.depths)]))
    return ResNetArchitecture(
        depth=(stem, *(int(d) for d in rng.choice(space.depths, space.num_stages))),
        expand=tuple(float(e) for e in rng.choice(space.expand_ratios, space.num_blocks)),
        width=tuple(int(w) for w in rng.integers(0, len(space.width_mults), space.num_width_choices)),
        resolution=int(rng.choice(space.resolutions)) if resolution is None else int(resolution))


def largest_resnet_architecture(space: ResNetSpace | str, resolution: int | None = None) -> ResNetArchitecture:
    space = _resnet_space(space)
    return ResNetArchitecture((max(space.depths),) * (1 + space.num_stages), (max(space.expand_ratios),) * space.num_blocks,
                              (len(space.width_mults) - 1,) * space.num_width_choices,
                              max(space.resolutions) if resolution is None else resolution)


def smallest_resnet_architecture(space: ResNetSpace | str, resolution: int | None = None) -> ResNetArchitecture:
    space = _resnet_space(space)
    return ResNetArchitecture((min(space.depths),) * (1 + space.num_stages), (min(space.expand_ratios),) * space.num_blocks,
                              (0,) * space.num_width_choices, min(space.resolutions) if resolution is None else resolution)


# --------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class BottleneckSpec:
    """One bottleneck block: 1x1 in->mid, 3x3 mid->mid (stride), 1x1 mid->out, shortcut, ReLU."""

    in_channels: int
    mid_channels: int
    out_channels: int
    stride: int
    downsample: bool  # avg-pool (stride > 1) + 1x1 conv + BN on the shortcut; else identity
    input_size: int
    block: int  # index among the supernet's blocks (once-for-all's ``e`` position)


@dataclass(frozen=True)
class ResNetPlan:
    """The layers a ResNet subnet runs, with their channel counts and spatial sizes."""

    stem_mid: int  # width of the first stem conv (and the skippable middle one)
    stem_out: int  # width of the last stem conv
    stem_skip: bool  # the middle stem conv (identity shortcut) is skipped
    stem_size: int  # spatial size after the stride-2 stem conv
    pooled_size: int  # after the 3x3 stride-2 max pooling
    blocks: tuple[BottleneckSpec, ...]
    features: int  # width entering the classifier


@dataclass(frozen=True)
class BlockPosition:
    """Where one of the supernet's blocks sits; what about it does not depend on the subnet."""

    block: int  # index among the supernet's blocks (once-for-all's ``e`` position)
    stage: int
    position: int  # within the stage; the block runs when ``position < base_depths[stage] + depth``
    stride: int
    downsample: bool  # see BottleneckSpec


def block_positions(space: ResNetSpace | str) -> tuple[BlockPosition, ...]:
    """Every block the supernet holds, in order (the same for every subnet)."""
    space = _resnet_space(space)
    out = []
    for stage, (n, stride) in enumerate(zip(space.stage_max_blocks, space.stage_strides)):
        for i in range(n):
            s = stride if i == 0 else 1
            # once-for-all keeps a block's identity shortcut only where the *lists* of input and
            # output widths are equal, whatever widths are active: within a stage, never at its first
            # block (ResNetSpace rejects a stride-1 stage as wide as its input)
            identity = s == 1 and i > 0
            out.append(BlockPosition(len(out), stage, i, s, not identity))
    return tuple(out)


def stem_sizes(resolution: int) -> tuple[int, int]:
    """(size after the stride-2 stem convs, size after the 3x3 stride-2 max pooling)."""
    stem_size = conv_out(resolution, 2)
    return stem_size, (stem_size - 1) // 2 + 1  # max pooling, kernel 3, stride 2, padding 1


def block_input_size(space: ResNetSpace, resolution: int, where: BlockPosition) -> int:
    """Spatial size entering a block at ``resolution`` (blocks after a stage's first keep its output size)."""
    size = stem_sizes(resolution)[1]
    for stage in range(where.stage):
        size = conv_out(size, space.stage_strides[stage])
    return size if where.position == 0 else conv_out(size, space.stage_strides[where.stage])


def bottleneck_spec(space: ResNetSpace, where: BlockPosition, in_channels: int, out_channels: int, expand: float,
                    resolution: int) -> BottleneckSpec:
    """The block at ``where`` with these widths and expand ratio, at input ``resolution``."""
    return BottleneckSpec(in_channels, space.mid_channels(out_channels, expand), out_channels, where.stride,
                          where.downsample, block_input_size(space, resolution, where), where.block)


def resnet_plan(space: ResNetSpace | str, arch: ResNetArchitecture) -> ResNetPlan:
    """Every layer ``arch`` runs, in order (validates ``arch``)."""
    space = _resnet_space(space)
    arch.validate(space)
    stem_mid, stem_out = space.stem_widths(arch.width[0], arch.width[1])
    stem_size, pooled = stem_sizes(arch.resolution)
    in_ch, blocks = stem_out, []
    for where in block_positions(space):
        if where.position < space.base_depths[where.stage] + arch.depth[1 + where.stage]:
            out_ch = space.stage_width(where.stage, arch.width[2 + where.stage])
            blocks.append(bottleneck_spec(space, where, in_ch, out_ch, arch.expand[where.block], arch.resolution))
            in_ch = out_ch
    return ResNetPlan(stem_mid, stem_out, arch.depth[0] != max(space.depths), stem_size, pooled, tuple(blocks), in_ch)


def conv_cost(c_in: int, c_out: int, k: int, out_size: int) -> tuple[int, int]:
    """(MACs, params) of a bias-free conv followed by BN (weight and bias counted)."""
    return out_size * out_size * c_in * c_out * k * k, c_in * c_out * k * k + 2 * c_out


def stem_cost(space: ResNetSpace, stem_mid: int, stem_out: int, skip: bool, stem_size: int) -> tuple[int, int]:
    """(MACs, params) of the input stem (its middle conv only when not ``skip``)."""
    convs = [conv_cost(space.in_channels, stem_mid, 3, stem_size), conv_cost(stem_mid, stem_out, 3, stem_size)]
    if not skip:
        convs.append(conv_cost(stem_mid, stem_mid, 3, stem_size))
    return sum(m for m, _ in convs), sum(p for _, p in convs)


def bottleneck_cost(b: BottleneckSpec) -> tuple[int, int]:
    """(MACs, params) of one bottleneck block, its downsampling shortcut included."""
    out_size = conv_out(b.input_size, b.stride)
    convs = [conv_cost(b.in_channels, b.mid_channels, 1, b.input_size),
             conv_cost(b.mid_channels, b.mid_channels, 3, out_size),
             conv_cost(b.mid_channels, b.out_channels, 1, out_size)]
    if b.downsample:
        convs.append(conv_cost(b.in_channels, b.out_channels, 1, out_size))
    return sum(m for m, _ in convs), sum(p for _, p in convs)


def head_cost(space: ResNetSpace, features: int) -> tuple[int, int]:
    """(MACs, params) of the classifier on ``features`` pooled channels."""
    return features * space.num_classes, features * space.num_classes + space.num_classes


def resnet_macs_and_params(space: ResNetSpace | str, arch: ResNetArchitecture) -> tuple[int, int]:
    """Exact MACs (convs and classifier) and parameters (BN affine included), as :mod:`hwnas.complexity`."""
    space = _resnet_space(space)
    plan = resnet_plan(space, arch)
    parts = [stem_cost(space, plan.stem_mid, plan.stem_out, plan.stem_skip, plan.stem_size),
             *(bottleneck_cost(b) for b in plan.blocks), head_cost(space, plan.features)]
    return sum(m for m, _ in parts), sum(p for _, p in parts)
