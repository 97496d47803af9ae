"""Exact MACs and parameters of gene matrices from per-part cost tables, for families whose costs
add up over parts whose shapes the genes choose (``resnet``: stem, blocks, head; ``plain``: layers,
head). The family's gene layout builds the tables (``part_tables``) and sums them (``additive_sum``);
this class holds the MACs and parameter columns once per space, so a population costs a few gathers
and a masked sum. No torch here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def cost_column(table: np.ndarray, which: int) -> np.ndarray:
    """Element ``which`` of each (MACs, params) entry as int64 (0 where no subnet reaches the entry)."""
    return np.vectorize(lambda cost: 0 if cost is None else cost[which], otypes=[np.int64])(table)


class PartCostCounter:
    """``macs(genes)``, ``params(genes)`` and per-stage sums over the repeated parts (blocks or layers).

    ``tables`` are the layout's ``part_tables`` of (MACs, params) pairs; ``part`` is the position of the
    repeated parts' table among them; ``keys`` the ``part_indices`` entries that index it (input width,
    output width, the part's own choice) and ``part_stage`` each part's stage.
    """

    def __init__(self, layout: Any, tables: Sequence[np.ndarray], part: int, keys: tuple[str, str, str],
                 part_stage: np.ndarray) -> None:
        self.layout = layout
        self._macs = [cost_column(t, 0) for t in tables]
        self._params = [cost_column(t, 1) for t in tables]
        self._part, self._keys, self._part_stage = part, keys, part_stage

    def macs(self, genes: np.ndarray) -> np.ndarray:
        return self.layout.additive_sum(self.layout.check(genes), *self._macs)

    def params(self, genes: np.ndarray) -> np.ndarray:
        return self.layout.additive_sum(self.layout.check(genes), *self._params)

    def stage_macs_params(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MACs and parameters of each stage's active parts, ``(n, stages)`` each (stem and head excluded)."""
        lay = self.layout
        i = lay.part_indices(lay.check(genes))
        n_parts = len(self._part_stage)
        where = (np.arange(n_parts)[None, :], *(i[k] for k in self._keys), i["resolution"][:, None])
        out = []
        for table in (self._macs[self._part], self._params[self._part]):
            per_part = table[where] * i["active"]
            out.append(np.stack([per_part[:, self._part_stage == s].sum(axis=1) for s in range(lay.num_stages)],
                                axis=1))
        return out[0], out[1]
