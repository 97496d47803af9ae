"""Exact MACs and parameter counts, analytic and vectorised over gene matrices.

A subnet's cost is a fixed part (stem, first block, head; the spatial parts depend on the
resolution) plus one entry per active block, and each block's entry depends only on its slot,
kernel, expand ratio and the resolution. So the counter precomputes a dense table
``[slot, kernel, expand, resolution]`` once and a population costs one gather and a masked sum
(the same structure as the latency lookup table).

Convention: MACs of convolutions and the classifier (multiply-accumulates, not FLOPs = 2*MACs);
parameters = every learnable tensor (BN affine included, running statistics excluded).
Checked against hooks on the built module in the tests.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hwnas.additive import slot_sum
from hwnas.arch import Architecture
from hwnas.encoding import GeneLayout
from hwnas.plan import BlockSpec, conv_out, elastic_block_spec, final_size, first_block_spec, stage_input_sizes, \
    stem_output_size
from hwnas.space import SearchSpace, get_space


def block_cost(spec: BlockSpec, input_size: int) -> tuple[int, int]:
    """(MACs, params) of one MBConv block at a given input size."""
    out_size = conv_out(input_size, spec.stride)
    macs = params = 0
    if spec.expand_conv:
        macs += input_size * input_size * spec.in_channels * spec.mid_channels
        params += spec.in_channels * spec.mid_channels + 2 * spec.mid_channels
    macs += out_size * out_size * spec.mid_channels * spec.kernel * spec.kernel
    params += spec.mid_channels * spec.kernel * spec.kernel + 2 * spec.mid_channels
    if spec.se_channels:
        macs += 2 * spec.mid_channels * spec.se_channels
        params += 2 * spec.mid_channels * spec.se_channels + spec.mid_channels + spec.se_channels
    macs += out_size * out_size * spec.mid_channels * spec.out_channels
    params += spec.mid_channels * spec.out_channels + 2 * spec.out_channels
    return macs, params


def fixed_cost(space: SearchSpace, resolution: int) -> tuple[int, int]:
    """(MACs, params) of the stem, the fixed first block and the head at ``resolution``."""
    stem_size = stem_output_size(space, resolution)
    macs = stem_size * stem_size * space.in_channels * space.stem_width * 9
    params = space.in_channels * space.stem_width * 9 + 2 * space.stem_width
    m, p = block_cost(first_block_spec(space), stem_size)
    macs, params = macs + m, params + p
    last, size = space.stages[-1].width, final_size(space, resolution)
    macs += size * size * last * space.final_expand_width
    params += last * space.final_expand_width + 2 * space.final_expand_width
    macs += space.final_expand_width * space.feature_width  # 0 without a feature-mix conv
    params += space.final_expand_width * space.feature_width
    features = space.feature_width or space.final_expand_width
    macs += features * space.num_classes
    params += features * space.num_classes + space.num_classes
    return macs, params


class ComplexityCounter:
    """Vectorised MACs / params for one space: ``macs(genes)``, ``params(genes)``."""

    def __init__(self, space: SearchSpace | str) -> None:
        self.space = space = get_space(space)
        self.layout = GeneLayout(space)
        nk, ne, nr = len(space.kernel_sizes), len(space.expand_ratios), len(space.resolutions)
        self.block_macs = np.zeros((space.num_block_slots, nk, ne, nr), dtype=np.int64)
        self.block_params = np.zeros((space.num_block_slots, nk, ne), dtype=np.int64)
        for r_idx, res in enumerate(space.resolutions):
            sizes = stage_input_sizes(space, res)
            for stage in range(space.num_stages):
                for index in range(max(space.stage_depths(stage))):  # slots never active cost 0
                    slot = stage * space.max_depth + index
                    size = sizes[stage] if index == 0 else conv_out(sizes[stage], space.stages[stage].stride)
                    for k_idx, k in enumerate(space.kernel_sizes):
                        for e_idx, e in enumerate(space.expand_ratios):
                            m, p = block_cost(elastic_block_spec(space, stage, index, k, e), size)
                            self.block_macs[slot, k_idx, e_idx, r_idx] = m
                            self.block_params[slot, k_idx, e_idx] = p
        fixed = [fixed_cost(space, r) for r in space.resolutions]
        self.fixed_macs = np.array([m for m, _ in fixed], dtype=np.int64)
        self.fixed_params = int(fixed[0][1])
        # params do not depend on the resolution: repeated along R for the slot sum
        self._params_by_res = np.repeat(self.block_params[..., None], nr, axis=3)
        self._params_fixed = np.full(nr, self.fixed_params, dtype=np.int64)

    def macs(self, genes: np.ndarray) -> np.ndarray:
        return slot_sum(self.layout, self.layout.check(genes), self.block_macs, self.fixed_macs)

    def params(self, genes: np.ndarray) -> np.ndarray:
        return slot_sum(self.layout, self.layout.check(genes), self._params_by_res, self._params_fixed)


@lru_cache(maxsize=8)
def counter_for(space_name: str) -> ComplexityCounter:
    return ComplexityCounter(space_name)


def macs_and_params(space: SearchSpace | str, arch: Architecture) -> tuple[int, int]:
    """MACs and parameter count of one architecture."""
    space = get_space(space)
    counter = counter_for(space.name) if get_space(space.name) is space else ComplexityCounter(space)
    genes = counter.layout.encode(arch)
    return int(counter.macs(genes)[0]), int(counter.params(genes)[0])
