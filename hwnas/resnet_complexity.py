"""Exact MACs and parameter counts of ``resnet``-family gene matrices, vectorised.

The same convention and the same per-part formulas as :func:`hwnas.resnet_arch.resnet_macs_and_params`
(they are that function's parts), precomputed once per space as the stem / block / head tables of
:meth:`hwnas.resnet_encoding.ResNetGeneLayout.additive_sum`, so a population costs a few gathers and
a masked sum (search scores a batch at a time).
"""

from __future__ import annotations

from hwnas.part_costs import PartCostCounter
from hwnas.resnet_arch import bottleneck_cost, head_cost, stem_cost, stem_sizes
from hwnas.resnet_encoding import ResNetGeneLayout
from hwnas.space import ResNetSpace, get_space


class ResNetComplexityCounter(PartCostCounter):
    """Vectorised MACs / params for one ``resnet`` space: ``macs(genes)``, ``params(genes)``."""

    def __init__(self, space: ResNetSpace | str) -> None:
        self.space = space = get_space(space)
        layout = ResNetGeneLayout(space)
        tables = layout.part_tables(lambda mid, out, skip, r: stem_cost(space, mid, out, skip, stem_sizes(r)[0]),
                                    bottleneck_cost, lambda features, _size: head_cost(space, features))
        super().__init__(layout, tables, 1, ("block_in", "block_out", "expand"), layout.block_stage)
