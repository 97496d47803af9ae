"""Exact MACs and parameter counts of ``resnet``-family gene matrices, vectorised.

The same convention and the same per-part formulas as :func:`hwnas.resnet_arch.resnet_macs_and_params`
(they are that function's parts), precomputed once per space as the stem / block / head tables of
:meth:`hwnas.resnet_encoding.ResNetGeneLayout.additive_sum`, so a population costs a few gathers and
a masked sum (search scores a batch at a time).
"""

from __future__ import annotations

import numpy as np

from hwnas.resnet_arch import bottleneck_cost, head_cost, stem_cost
from hwnas.resnet_encoding import ResNetGeneLayout
from hwnas.space import ResNetSpace, get_space


class ResNetComplexityCounter:
    """Vectorised MACs / params for one ``resnet`` space: ``macs(genes)``, ``params(genes)``."""

    def __init__(self, space: ResNetSpace | str) -> None:
        self.space = space = get_space(space)
        self.layout = ResNetGeneLayout(space)
        tables = self.layout.part_tables(lambda mid, out, skip, size: stem_cost(space, mid, out, skip, size),
                                         bottleneck_cost, lambda features, _size: head_cost(space, features))
        self._macs = [_as_int(t, 0) for t in tables]
        self._params = [_as_int(t, 1) for t in tables]

    def macs(self, genes: np.ndarray) -> np.ndarray:
        return self.layout.additive_sum(self.layout.check(genes), *self._macs)

    def params(self, genes: np.ndarray) -> np.ndarray:
        return self.layout.additive_sum(self.layout.check(genes), *self._params)


def _as_int(table: np.ndarray, which: int) -> np.ndarray:
    """Element ``which`` of each (MACs, params) entry as int64 (0 where no subnet reaches the entry)."""
    return np.vectorize(lambda cost: 0 if cost is None else cost[which], otypes=[np.int64])(table)
