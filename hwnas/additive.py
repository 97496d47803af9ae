"""Costs additive over block slots, summed for a whole gene matrix in one compiled pass.

A latency lookup table, MACs and parameter counts all share one shape: a per-resolution constant
plus, for every *active* block slot, a table entry chosen by the slot's (kernel, expand) genes
and the resolution. In a search this sum runs once per generation on ~64 rows, where numpy's
gather-mask-sum takes a dozen calls, each with microseconds of overhead; the compiled loop is one.
"""

from __future__ import annotations

import numba
import numpy as np

from hwnas.encoding import GeneLayout


def slot_sum(layout: GeneLayout, genes: np.ndarray, slot_table: np.ndarray, per_resolution: np.ndarray) -> np.ndarray:
    """``per_resolution[r] + sum over active slots s of slot_table[s, kernel, expand, r]`` per row.

    ``genes`` must be checked (:meth:`GeneLayout.check`); ``slot_table`` is ``(slots, K, E, R)``,
    float64 or int64, and the result has its dtype.
    """
    out = np.empty(len(genes), dtype=slot_table.dtype)
    _slot_sum(genes, slot_table, per_resolution.astype(slot_table.dtype, copy=False), layout.active_by_depth,
              layout.num_slots, layout.num_stages, out)
    return out


@numba.njit(cache=True, nogil=True)
def _slot_sum(genes, slot_table, per_resolution, active_by_depth, n_slots, n_stages, out):  # pragma: no cover
    max_depth = active_by_depth.shape[2]
    for row in range(genes.shape[0]):
        g = genes[row]
        r = g[2 * n_slots + n_stages]
        total = per_resolution[r]
        for stage in range(n_stages):
            depth = g[2 * n_slots + stage]
            for pos in range(max_depth):
                if active_by_depth[stage, depth, pos]:
                    slot = stage * max_depth + pos
                    total += slot_table[slot, g[slot], g[n_slots + slot], r]
        out[row] = total
