"""Exact MACs and parameter counts of ``plain``-family gene matrices, vectorised.

The same convention and the same per-part formulas as :func:`hwnas.plain_arch.plain_macs_and_params`
(:func:`~hwnas.plain_arch.conv_layer_cost` and :func:`~hwnas.plain_arch.plain_head_cost` are its
parts), precomputed once per space as the layer / head tables of
:meth:`hwnas.plain_encoding.PlainGeneLayout.additive_sum`, so a population costs a few gathers and
a masked sum (search scores a batch at a time).
"""

from __future__ import annotations

import numpy as np

from hwnas.plain_arch import conv_layer_cost, plain_head_cost, plain_space
from hwnas.plain_encoding import PlainGeneLayout
from hwnas.space import PlainSpace


class PlainComplexityCounter:
    """Vectorised MACs / params for one ``plain`` space: ``macs(genes)``, ``params(genes)``."""

    def __init__(self, space: PlainSpace | str) -> None:
        self.space = space = plain_space(space)
        self.layout = PlainGeneLayout(space)
        tables = self.layout.part_tables(conv_layer_cost, lambda features, _size: plain_head_cost(space, features))
        self._macs = [_as_int(t, 0) for t in tables]
        self._params = [_as_int(t, 1) for t in tables]

    def macs(self, genes: np.ndarray) -> np.ndarray:
        return self.layout.additive_sum(self.layout.check(genes), *self._macs)

    def params(self, genes: np.ndarray) -> np.ndarray:
        return self.layout.additive_sum(self.layout.check(genes), *self._params)

    def stage_macs_params(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MACs and parameters of each stage's active layers, ``(n, stages)`` each (head excluded)."""
        lay = self.layout
        i = lay.part_indices(lay.check(genes))
        where = (np.arange(lay.num_layers)[None, :], i["layer_in"], i["layer_out"], i["kernel"], i["resolution"][:, None])
        out = []
        for table in (self._macs[0], self._params[0]):
            per_layer = table[where] * i["active"]
            out.append(np.stack([per_layer[:, lay.layer_stage == s].sum(axis=1) for s in range(lay.num_stages)], axis=1))
        return out[0], out[1]


def _as_int(table: np.ndarray, which: int) -> np.ndarray:
    """Element ``which`` of each (MACs, params) entry as int64 (0 where no subnet reaches the entry)."""
    return np.vectorize(lambda cost: 0 if cost is None else cost[which], otypes=[np.int64])(table)
