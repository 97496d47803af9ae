"""The concrete layer plan of an architecture: which blocks run, with what shapes.

This is the one place that turns (space, architecture) into block specifications and input
sizes. The supernet, the static subnet, the FLOPs counter and the latency table all read it,
so they agree on what a subnet computes. No torch here: the latency table and the edge agent
use it without a deep-learning framework.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwnas.arch import Architecture
from hwnas.space import SearchSpace, get_space


@dataclass(frozen=True)
class BlockSpec:
    """Everything that determines one MBConv block's computation (and its latency-table key)."""

    in_channels: int
    out_channels: int
    mid_channels: int
    kernel: int
    stride: int
    act: str
    se_channels: int  # 0 = no SE
    expand_conv: bool  # False only for the expand-1 first block

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class PlannedBlock:
    spec: BlockSpec
    input_size: int  # spatial size (H = W) entering the block
    stage: int  # -1 for the fixed first block
    index: int  # position within the stage
    slot: int  # elastic slot, -1 for the fixed first block


def conv_out(size: int, stride: int) -> int:
    """Output size of a 'same'-padded conv: ceil(size / stride)."""
    return (size - 1) // stride + 1


def stem_output_size(space: SearchSpace, resolution: int) -> int:
    return conv_out(resolution, space.stem_stride)


def first_block_spec(space: SearchSpace) -> BlockSpec:
    return BlockSpec(space.stem_width, space.first_block_width, space.stem_width, 3, 1,
                     space.first_block_act, 0, expand_conv=False)


def elastic_block_spec(space: SearchSpace, stage: int, index: int, kernel: int, expand: int) -> BlockSpec:
    st = space.stages[stage]
    in_ch = space.stage_in_width(stage) if index == 0 else st.width
    mid = space.mid_channels(in_ch, expand)
    return BlockSpec(in_ch, st.width, mid, kernel, st.stride if index == 0 else 1, st.act,
                     space.se_channels(mid) if st.se else 0, expand_conv=True)


def stage_input_sizes(space: SearchSpace, resolution: int) -> list[int]:
    """Spatial size entering each stage (independent of depth: only the first block strides)."""
    size = stem_output_size(space, resolution)  # first block has stride 1
    sizes = []
    for st in space.stages:
        sizes.append(size)
        size = conv_out(size, st.stride)
    return sizes


def final_size(space: SearchSpace, resolution: int) -> int:
    size = stem_output_size(space, resolution)
    for st in space.stages:
        size = conv_out(size, st.stride)
    return size


def block_plan(space: SearchSpace | str, arch: Architecture) -> list[PlannedBlock]:
    """Every block the architecture runs, the fixed first block included, in order."""
    space = get_space(space)
    arch.validate(space)
    stem_size = stem_output_size(space, arch.resolution)
    plan = [PlannedBlock(first_block_spec(space), stem_size, -1, 0, -1)]
    stage_sizes = stage_input_sizes(space, arch.resolution)
    for stage, index, slot in arch.active_blocks():
        spec = elastic_block_spec(space, stage, index, arch.kernel[slot], arch.expand[slot])
        size = stage_sizes[stage] if index == 0 else conv_out(stage_sizes[stage], space.stages[stage].stride)
        plan.append(PlannedBlock(spec, size, stage, index, slot))
    return plan
