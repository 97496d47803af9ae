"""Exact MACs and parameter counts of ``resnet``-family gene matrices, vectorised.

The same convention and the same per-part formulas as :func:`hwnas.resnet_arch.resnet_macs_and_params`
(they are that function's parts), precomputed once per space as the stem / block / head tables of
:meth:`hwnas.resnet_encoding.ResNetGeneLayout.additive_sum`, so a population costs a few gathers and
a masked sum (search scores a batch at a time).
"""

from __future__ import annotations

import numpy as np

from hwnas.resnet_arch import bottleneck_cost, head_cost, stem_cost, stem_sizes
from hwnas.resnet_encoding import ResNetGeneLayout
from hwnas.space import ResNetSpace, get_space


class ResNetComplexityCounter:
    """Vectorised MACs / params for one ``resnet`` space: ``macs(genes)``, ``params(genes)``."""

    def __init__(self, space: ResNetSpace | str) -> None:
        self.space = space = get_space(space)
        self.layout = ResNetGeneLayout(space)
        tables = self.layout.part_tables(lambda mid, out, skip, r: stem_cost(space, mid, out, skip, stem_sizes(r)[0]),
                                         bottleneck_cost, lambda features, _size: head_cost(space, features))
        self._macs = [_as_int(t, 0) for t in tables]
        self._params = [_as_int(t, 1) for t in tables]

    def macs(self, genes: np.ndarray) -> np.ndarray:
        return self.layout.additive_sum(self.layout.check(genes), *self._macs)

    def params(self, genes: np.ndarray) -> np.ndarray:
        return self.layout.additive_sum(self.layout.check(genes), *self._params)

    def stage_macs_params(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MACs and parameters of each stage's active blocks, ``(n, stages)`` each (stem and head excluded)."""
        lay = self.layout
        i = lay.part_indices(lay.check(genes))
        where = (np.arange(lay.num_blocks)[None, :], i["block_in"], i["block_out"], i["expand"], i["resolution"][:, None])
        out = []
        for table in (self._macs[1], self._params[1]):
            per_block = table[where] * i["active"]
            out.append(np.stack([per_block[:, lay.block_stage == s].sum(axis=1) for s in range(lay.num_stages)], axis=1))
        return out[0], out[1]


def _as_int(table: np.ndarray, which: int) -> np.ndarray:
    """Element ``which`` of each (MACs, params) entry as int64 (0 where no subnet reaches the entry)."""
    return np.vectorize(lambda cost: 0 if cost is None else cost[which], otypes=[np.int64])(table)
