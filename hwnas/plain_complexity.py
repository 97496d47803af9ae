"""Exact MACs and parameter counts of ``plain``-family gene matrices, vectorised.

The same convention and the same per-part formulas as :func:`hwnas.plain_arch.plain_macs_and_params`
(:func:`~hwnas.plain_arch.conv_layer_cost` and :func:`~hwnas.plain_arch.plain_head_cost` are its
parts), precomputed once per space as the layer / head tables of
:meth:`hwnas.plain_encoding.PlainGeneLayout.additive_sum`, so a population costs a few gathers and
a masked sum (search scores a batch at a time).
"""

from __future__ import annotations

from hwnas.part_costs import PartCostCounter
from hwnas.plain_arch import conv_layer_cost, plain_head_cost, plain_space
from hwnas.plain_encoding import PlainGeneLayout
from hwnas.space import PlainSpace


class PlainComplexityCounter(PartCostCounter):
    """Vectorised MACs / params for one ``plain`` space: ``macs(genes)``, ``params(genes)``."""

    def __init__(self, space: PlainSpace | str) -> None:
        self.space = space = plain_space(space)
        layout = PlainGeneLayout(space)
        tables = layout.part_tables(conv_layer_cost, lambda features, size: plain_head_cost(space, features, size))
        super().__init__(layout, tables, 0, ("layer_in", "layer_out", "kernel"), layout.layer_stage)
