"""Exact hypervolume of a front, the standard single-number quality measure of a Pareto front.

All functions take *minimisation* objectives ``F`` of shape ``(n, m)`` and a reference point ``ref``
of shape ``(m,)``; the hypervolume is the measure of the region dominated by ``F`` and bounded by
``ref``. Points not strictly better than ``ref`` in every objective contribute nothing.

Reference point choice (see :func:`normalise`): when comparing searches, normalise every front
with the *same* bounds (the ideal and nadir of the union of the fronts being compared, or fixed
bounds such as ``accuracy in [0, 1]`` and ``latency in [0, budget]``) and use
``ref = 1 + margin`` in each objective (default margin 0.1, as in pymoo's and Ishibuchi et al.'s
practice), so that the extreme points of a front still add volume.
"""

from __future__ import annotations

import numpy as np

from hwnas.errors import ConfigError


def _as_front(F: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    F = np.asarray(F, dtype=np.float64)
    if F.ndim == 1:
        F = F[None, :] if F.size else F.reshape(0, len(np.atleast_1d(ref)))
    ref = np.asarray(ref, dtype=np.float64).ravel()
    if F.shape[1] != ref.shape[0]:
        raise ConfigError(f"front has {F.shape[1]} objectives but the reference point has {ref.shape[0]} "
                          f"values; pass one reference value per objective")
    if not np.isfinite(ref).all() or not np.isfinite(F).all():
        raise ConfigError("hypervolume needs finite objective values and a finite reference point; "
                          "drop NaN/inf rows before computing it")
    return F[(F < ref).all(axis=1)], ref


def hypervolume_2d(F: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-objective hypervolume by sort and sweep, O(n log n)."""
    F, ref = _as_front(F, ref)
    if F.shape[1] != 2:
        raise ConfigError(f"hypervolume_2d needs 2 objectives, got {F.shape[1]}; use hypervolume()")
    if len(F) == 0:
        return 0.0
    F = F[np.lexsort((F[:, 1], F[:, 0]))]
    # Sweep in f1 order: only points improving the best f2 so far are on the front.
    best = np.minimum.accumulate(F[:, 1])
    keep = np.ones(len(F), dtype=bool)
    keep[1:] = F[1:, 1] < best[:-1]
    F = F[keep]
    widths = np.diff(np.append(F[:, 0], ref[0]))
    return float(np.sum(widths * (ref[1] - F[:, 1])))


def _hso(F: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume by slicing objectives (HSO): slabs along the last objective, recursing down."""
    if len(F) == 0:
        return 0.0
    if F.shape[1] == 1:
        return float(ref[0] - F[:, 0].min())
    if F.shape[1] == 2:
        return hypervolume_2d(F, ref)
    F = F[np.argsort(F[:, -1], kind="stable")]
    bounds = np.append(F[1:, -1], ref[-1])
    volume = 0.0
    for i in range(len(F)):
        depth = bounds[i] - F[i, -1]
        if depth > 0:
            volume += depth * _hso(F[: i + 1, :-1], ref[:-1])
    return volume


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume for any number of objectives.

    2 objectives use the O(n log n) sweep; more use HSO slicing, which is exact but grows as
    O(n^(m-1)), so keep general-m fronts small (a few hundred points for m = 3).
    """
    F, ref = _as_front(F, ref)
    if F.shape[1] == 2:
        return hypervolume_2d(F, ref)
    from hwnas.search.nsga2 import pareto_mask  # local: nsga2 imports nothing from here

    return _hso(F[pareto_mask(F)], ref)


def normalise(F: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Scale minimisation objectives so ``lower`` maps to 0 and ``upper`` to 1 in each column.

    Use the same ``lower``/``upper`` for every front being compared (for instance the ideal and
    nadir of their union) and then :func:`reference_point` as the reference; a column with
    ``upper == lower`` is only shifted.
    """
    F = np.asarray(F, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    span = upper - lower
    span = np.where(span > 0, span, 1.0)
    return (F - lower) / span


def reference_point(num_objectives: int, margin: float = 0.1) -> np.ndarray:
    """The reference point ``1 + margin`` per objective, for fronts scaled by :func:`normalise`."""
    return np.full(num_objectives, 1.0 + margin)
