"""NSGA-II on integer gene matrices, vectorised so that engine overhead stays below scoring.

A generation is a few calls on ``(n, num_genes)`` int8 arrays: one block of uniform draws feeds
a compiled breeding pass (binary tournaments, uniform crossover, per-gene mutation within each
gene's cardinality, canonicalisation - inactive block slots zeroed, so equal networks have equal
genes); de-duplication against everything evaluated so far spends the evaluation budget on
distinct networks only; survival is constrained non-dominated sorting (Deb et al. 2002; feasible
beats infeasible, lower violation beats higher) plus crowding distance; for two objectives the
whole survival step (front sweep, crowding, ordering) is one compiled pass. The Pareto front reported is over *all*
evaluated candidates.

Why compiled pieces: at the default population of 64 a generation is ~64 candidates, and a numpy
call on arrays that small costs microseconds of overhead, so a generation made of hundreds of them
spent more time in the engine than in scoring. experiments/search_benchmark.py records the
throughput (``throughput`` in experiments/results/search_benchmark.json).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numba
import numpy as np

from hwnas.errors import ConfigError
from hwnas.search.problem import SearchProblem

# Dominance blocks are limited to about this many (i, j, objective) comparisons at once.
_BLOCK_ELEMENTS = 1 << 22
# Above this many points the general-m sort peels fronts one at a time instead of holding the
# full (n, n) dominance matrix.
_FULL_MATRIX_MAX = 4096
# Above this many rows the 2-objective front is sought among the rows a cheap test leaves.
_PREFILTER_MIN = 4096


# --------------------------------------------------------------------------------- dominance
def _dominates(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``D[i, j]``: ``A[i]`` Pareto-dominates ``B[j]`` (minimisation), computed in row blocks."""
    D = np.empty((len(A), len(B)), dtype=bool)
    step = max(1, _BLOCK_ELEMENTS // max(1, len(B) * A.shape[1]))
    for s in range(0, len(A), step):
        a = A[s:s + step, None, :]
        D[s:s + step] = (a <= B[None]).all(-1) & (a < B[None]).any(-1)
    return D


def _pareto_mask_2d(F: np.ndarray) -> np.ndarray:
    if len(F) > _PREFILTER_MIN and np.isfinite(F).all():
        rows = _not_beaten_by_an_earlier_bin(F)
        mask = np.zeros(len(F), dtype=bool)
        mask[rows[_pareto_mask_2d_sorted(F[rows])]] = True
        return mask
    return _pareto_mask_2d_sorted(F)


def _not_beaten_by_an_earlier_bin(F: np.ndarray, bins: int = 256) -> np.ndarray:
    """Indices of the rows that may be on the front: an exact, cheap pre-filter.

    Why: the front over a search's whole archive (100k rows, a few hundred on the front) took a
    sort of every row, a share of the command's marginal time. Rows are binned by the first
    objective; a row whose second objective is no lower than the best one of any earlier bin
    is dominated by that bin's best row (smaller first objective, no larger second), so it is off
    the front. The survivors, a few percent, go through the exact sort.
    """
    f0, f1 = F[:, 0], F[:, 1]
    lo, span = f0.min(), f0.max() - f0.min()
    if not span > 0:
        return np.arange(len(F))
    b = np.minimum((f0 - lo) * (bins / span), bins - 1).astype(np.int64)
    best = np.full(bins + 1, np.inf)
    np.minimum.at(best[1:], b, f1)  # best[c + 1]: lowest f1 in bin c
    before = np.minimum.accumulate(best)[:-1]  # before[c]: lowest f1 in the bins below c
    return np.flatnonzero(f1 < before[b])


def _pareto_mask_2d_sorted(F: np.ndarray) -> np.ndarray:
    order = np.lexsort((F[:, 1], F[:, 0]))
    f = F[order]
    best_before = np.minimum.accumulate(f[:, 1])
    keep = np.ones(len(f), dtype=bool)
    keep[1:] = f[1:, 1] < best_before[:-1]
    # Exact duplicates of a front point are not dominated by it.
    same = np.zeros(len(f), dtype=bool)
    same[1:] = (f[1:] == f[:-1]).all(1)
    for i in np.flatnonzero(same):  # rare; usually empty
        keep[i] = keep[i - 1]
    mask = np.zeros(len(F), dtype=bool)
    mask[order[keep]] = True
    return mask


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of minimisation matrix ``F`` (n, m).

    2 objectives: one sort and a running minimum. More: rows are taken in order of their sum (a
    dominator always has a smaller sum) and checked in blocks against the front found so far,
    which stays fast for large ``n`` because fronts are small.
    """
    F = np.asarray(F, dtype=np.float64)
    n = len(F)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if F.shape[1] == 1:
        return F[:, 0] == F[:, 0].min()
    if F.shape[1] == 2:
        return _pareto_mask_2d(F)
    order = np.lexsort(F.T[::-1])
    order = order[np.argsort(F[order].sum(1), kind="stable")]
    front: list[np.ndarray] = []
    front_f = np.empty((0, F.shape[1]))
    for s in range(0, n, 1024):
        idx = order[s:s + 1024]
        X = F[idx]
        dominated = _dominates(X, X).any(0)
        if len(front_f):
            dominated |= _dominates(front_f, X).any(0)
        front.append(idx[~dominated])
        front_f = np.concatenate([front_f, X[~dominated]])
    mask = np.zeros(n, dtype=bool)
    mask[np.concatenate(front)] = True
    return mask


def _ranks_2d(F: np.ndarray) -> np.ndarray:
    """Front index per row in O(n log n): sweep in (f1, f2) order keeping each front's lowest f2."""
    order = np.lexsort((F[:, 1], F[:, 0]))
    f = F[order]
    ranks = np.empty(len(f), dtype=np.int64)
    ranks[order] = _sweep_fronts(f[:, 0], f[:, 1])
    return ranks


@numba.njit(cache=True, nogil=True)
def _sweep_fronts(f1: np.ndarray, f2: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Fronts of points sorted by (f1, f2). Every earlier point has f1 no larger, so it dominates a
    point iff its f2 is no larger: a point joins the first front whose lowest f2 exceeds its own
    (binary search: the fronts' lowest f2 never decrease). Identical points do not dominate each
    other, so a copy shares the front of its first occurrence."""
    n = len(f1)
    ranks = np.empty(n, dtype=np.int64)
    lowest = np.empty(n, dtype=np.float64)
    fronts = 0
    for i in range(n):
        if i > 0 and f1[i] == f1[i - 1] and f2[i] == f2[i - 1]:
            ranks[i] = ranks[i - 1]
            continue
        v = f2[i]
        lo, hi = 0, fronts
        while lo < hi:  # first front whose lowest f2 is > v (bisect_right)
            mid = (lo + hi) // 2
            if lowest[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        lowest[lo] = v
        if lo == fronts:
            fronts += 1
        ranks[i] = lo
    return ranks


def _ranks_matrix(F: np.ndarray, n_stop: int) -> np.ndarray:
    D = _dominates(F, F)
    count = D.sum(0)
    ranks = np.full(len(F), len(F), dtype=np.int64)
    remaining = np.ones(len(F), dtype=bool)
    assigned, r = 0, 0
    while assigned < n_stop:
        front = remaining & (count == 0)
        ranks[front] = r
        remaining &= ~front
        assigned += int(front.sum())
        count -= D[front].sum(0)
        r += 1
    return ranks


def _ranks_peeling(F: np.ndarray, n_stop: int) -> np.ndarray:
    ranks = np.full(len(F), len(F), dtype=np.int64)
    remaining = np.arange(len(F))
    assigned, r = 0, 0
    while assigned < n_stop:
        mask = pareto_mask(F[remaining])
        ranks[remaining[mask]] = r
        assigned += int(mask.sum())
        remaining = remaining[~mask]
        r += 1
    return ranks


def non_dominated_ranks(F: np.ndarray, n_stop: int | None = None) -> np.ndarray:
    """Pareto front index (0 = non-dominated) of every row of minimisation matrix ``F`` (n, m).

    2 objectives use an O(n log n) sweep; more use a blocked dominance matrix (or front peeling
    for very large ``n``). With ``n_stop``, sorting may stop once that many rows have a front;
    the rest get rank ``n`` (NSGA-II survival only needs the best ``pop_size``).
    """
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ConfigError(f"objective matrix must be 2-D (n, m), got shape {F.shape}")
    n = len(F)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if F.shape[1] == 1:
        return np.unique(F[:, 0], return_inverse=True)[1].astype(np.int64).ravel()
    if F.shape[1] == 2:
        return _ranks_2d(F)
    n_stop = n if n_stop is None else min(n, n_stop)
    return _ranks_matrix(F, n_stop) if n <= _FULL_MATRIX_MAX else _ranks_peeling(F, n_stop)


def crowding_distance(F: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within each front; each front's extreme points get ``inf``.

    Each objective's gaps are normalised by that front's range, so objectives in different
    units (accuracy, milliseconds) weigh equally. Fronts of one or two points are all ``inf``.
    """
    F = np.asarray(F, dtype=np.float64)
    n, m = F.shape
    if n == 0:
        return np.zeros(0)
    ranks = np.asarray(ranks, dtype=np.int64)
    orders = np.stack([np.lexsort((F[:, k], ranks)) for k in range(m)])
    return _crowding_sorted(F, ranks, orders)


@numba.njit(cache=True, nogil=True)
def _crowding_sorted(F: np.ndarray, ranks: np.ndarray, orders: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Crowding distance given, per objective, the rows sorted by (front, objective value)."""
    n, m = F.shape
    dist = np.zeros(n)
    for k in range(m):
        order = orders[k]
        start = 0
        while start < n:
            end = start  # the front is order[start:end + 1]
            while end + 1 < n and ranks[order[end + 1]] == ranks[order[start]]:
                end += 1
            dist[order[start]] = np.inf
            dist[order[end]] = np.inf
            span = F[order[end], k] - F[order[start], k]
            if span > 0:
                for i in range(start + 1, end):
                    dist[order[i]] += (F[order[i + 1], k] - F[order[i - 1], k]) / span
            start = end + 1
    return dist


def constrained_ranks(F: np.ndarray, violation: np.ndarray, n_stop: int | None = None) -> np.ndarray:
    """Deb's constrained domination as fronts: feasible rows by Pareto rank, then infeasible
    rows after all feasible fronts, one front per distinct violation value (lower first)."""
    feasible = violation <= 0
    ranks = np.empty(len(F), dtype=np.int64)
    n_feasible = int(feasible.sum())
    if n_feasible:
        ranks[feasible] = non_dominated_ranks(F[feasible], n_stop)
    offset = int(ranks[feasible].max()) + 1 if n_feasible else 0
    if n_feasible < len(F):
        ranks[~feasible] = offset + np.unique(violation[~feasible], return_inverse=True)[1].ravel()
    return ranks


def survival_order(F: np.ndarray, violation: np.ndarray,
                   n_stop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ranks, crowding, order)``: constrained ranks, crowding distance (0 for infeasible rows,
    which are ordered by violation alone) and every row sorted best first by (rank, -crowding),
    ties by row index. NSGA-II survival keeps the first ``pop_size`` of ``order``."""
    ranks = constrained_ranks(F, violation, n_stop=n_stop)
    crowd = crowding_distance(F, ranks)
    crowd[violation > 0] = 0.0
    return ranks, crowd, np.lexsort((-crowd, ranks))


@numba.njit(cache=True, nogil=True)
def _survival_2d(F: np.ndarray, violation: np.ndarray):  # pragma: no cover - compiled
    """:func:`survival_order` for two objectives in one compiled pass, with identical results.

    Why: survival runs once per generation on ~128 rows, where the dozen numpy calls of the general
    path (lexsorts, masks, ``np.unique``) cost about as much as scoring the 64 children.
    :func:`_lexsort2` reproduces ``np.lexsort``'s order, ties included (row index).
    """
    n = F.shape[0]
    ranks = np.empty(n, dtype=np.int64)
    feasible = np.flatnonzero(violation <= 0)
    infeasible = np.flatnonzero(violation > 0)
    offset = 0
    if len(feasible):
        Ff = F[feasible]
        order = _lexsort2(Ff[:, 0], Ff[:, 1])
        fronts = _sweep_fronts(Ff[order, 0], Ff[order, 1])
        for i in range(len(order)):
            ranks[feasible[order[i]]] = fronts[i]
        offset = fronts.max() + 1
    if len(infeasible):
        vi = violation[infeasible]
        by_v = _lexsort2(vi, vi)
        level = offset
        for i in range(len(by_v)):
            if i > 0 and vi[by_v[i]] != vi[by_v[i - 1]]:
                level += 1
            ranks[infeasible[by_v[i]]] = level
    rank_f = ranks.astype(np.float64)
    orders = np.empty((2, n), dtype=np.int64)
    for k in range(2):
        orders[k] = _lexsort2(rank_f, F[:, k])
    crowd = _crowding_sorted(F, ranks, orders)
    for i in range(n):
        if violation[i] > 0:
            crowd[i] = 0.0
    return ranks, crowd, _lexsort2(rank_f, -crowd)


@numba.njit(cache=True, nogil=True)
def _lexsort2(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Row indices sorted by (primary, secondary, index): ``np.lexsort((secondary, primary))``.

    A bottom-up merge sort (stable: on equal keys the left run goes first); numba's own stable
    ``argsort`` allocates per call and took most of the survival time on 128 rows."""
    n = len(primary)
    idx = np.arange(n)
    tmp = np.empty(n, dtype=np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                a, b = idx[i], idx[j]
                if primary[b] < primary[a] or (primary[b] == primary[a] and secondary[b] < secondary[a]):
                    tmp[k] = b
                    j += 1
                else:
                    tmp[k] = a
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = idx[j]
                j += 1
                k += 1
        idx, tmp = tmp, idx
        width *= 2
    return idx


@numba.njit(cache=True, nogil=True)
def _breed(parents, entrants, cross, swap, mutate, crossover_prob, swap_prob, mutation_prob, cards,
           controller, active_when):  # pragma: no cover - compiled
    """Children from uniform draws (all in [0, 1)); ``parents`` sorted best first.

    Tournament: the entrant at the lowest position wins (survival order = rank, then crowding).
    Pair ``i`` crosses with probability ``crossover_prob``, swapping each gene with probability
    ``swap_prob``, into children ``2i`` and ``2i + 1``. Each gene then mutates with probability
    ``mutation_prob`` to a *different* index: when ``u < p``, ``u / p`` is itself uniform and
    picks the step ``1 .. cardinality - 1``. Last, canonicalisation zeroes the genes their controller
    gene puts out of use (inactive blocks' genes; as :meth:`GeneLayoutBase.canonicalize`).
    """
    n, G = mutate.shape
    n_pop = parents.shape[0]
    out = np.empty((n, G), dtype=np.int8)
    for pair in range((n + 1) // 2):
        a = n_pop
        b = n_pop
        for j in range(entrants.shape[1]):
            a = min(a, int(entrants[pair, j] * n_pop))
            b = min(b, int(entrants[pair + (n + 1) // 2, j] * n_pop))
        crossing = cross[pair] < crossover_prob
        for g in range(G):
            x, y = parents[a, g], parents[b, g]
            if crossing and swap[pair, g] < swap_prob:
                x, y = y, x
            out[2 * pair, g] = x
            if 2 * pair + 1 < n:
                out[2 * pair + 1, g] = y
    for child in range(n):
        for g in range(G):
            u = mutate[child, g]
            if u < mutation_prob:
                step = 1 + min(int(u / mutation_prob * (cards[g] - 1)), cards[g] - 2)
                out[child, g] = (out[child, g] + step) % cards[g]
        for g in range(G):
            c = controller[g]
            if c >= 0 and not active_when[g, out[child, c]]:
                out[child, g] = 0
    return out


# --------------------------------------------------------------------------------- config/result
@dataclass
class NSGA2Config:
    """NSGA-II settings. ``mutation_prob`` is per gene; ``None`` means ``2 / num_genes``.

    The population and mutation rate are compared with a small grid on tuning seeds in
    experiments/search_benchmark.py (``tuning`` in experiments/results/search_benchmark.json); the
    per-gene crossover swap of 0.25 was chosen on that benchmark's problem before the grid existed
    and is not re-tuned there.
    """

    pop_size: int = 64
    n_evaluations: int = 10_000
    crossover_prob: float = 0.9
    crossover_swap: float = 0.25  # per-gene swap probability of uniform crossover
    mutation_prob: float | None = None
    seed: int = 0
    tournament_size: int = 2
    check_feasible: bool = True
    max_redraws: int = 50

    def validate(self) -> None:
        if self.pop_size < 4:
            raise ConfigError(f"pop_size must be at least 4, got {self.pop_size}; use e.g. --population 64")
        if self.n_evaluations < self.pop_size:
            raise ConfigError(f"n_evaluations ({self.n_evaluations}) is below pop_size ({self.pop_size}); "
                              f"raise the evaluation budget or shrink the population")
        for name in ("crossover_prob", "mutation_prob", "crossover_swap"):
            p = getattr(self, name)
            if p is not None and not 0.0 <= p <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {p}")
        if self.tournament_size < 2:
            raise ConfigError(f"tournament_size must be at least 2, got {self.tournament_size}")


@dataclass
class SearchResult:
    """Everything a search evaluated, in evaluation order, plus its final population and front.

    ``F`` holds minimisation values (``'max'`` objectives negated); :meth:`objective_values` gives
    natural units (run folders hold :class:`hwnas.search.front.FrontRecord`). ``population`` and
    ``front`` index the rows of ``genes``.
    """

    problem: SearchProblem
    config: NSGA2Config
    genes: np.ndarray              # (N, num_genes) int8, canonical, all distinct
    F: np.ndarray                  # (N, m) minimisation values
    constraint_values: np.ndarray  # (N, c) natural units
    violation: np.ndarray          # (N,) total normalised violation, 0 = feasible
    population: np.ndarray         # indices of the final population
    front: np.ndarray              # indices of the feasible non-dominated set of ALL rows, by objective 0
    wall_time_s: float
    generations: int
    exhausted: bool = False        # True if the space ran out of new networks before the budget
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_evaluations(self) -> int:
        return len(self.genes)

    @property
    def evaluations_per_s(self) -> float:
        return self.n_evaluations / self.wall_time_s if self.wall_time_s > 0 else float("inf")

    @property
    def front_genes(self) -> np.ndarray:
        return self.genes[self.front]

    @property
    def front_F(self) -> np.ndarray:
        return self.F[self.front]

    def objective_values(self, index: np.ndarray | None = None) -> np.ndarray:
        """Objective values in natural units for rows ``index`` (all rows if ``None``)."""
        F = self.F if index is None else self.F[index]
        return self.problem.natural(F)


# --------------------------------------------------------------------------------- engine
class _Archive:
    """Every evaluated row, with byte keys of canonical genes for O(1) duplicate checks."""

    def __init__(self, num_genes: int) -> None:
        self.num_genes = num_genes
        self.seen: set[bytes] = set()
        self.chunks: dict[str, list[np.ndarray]] = {"genes": [], "F": [], "G": [], "v": []}
        self.size = 0

    def fresh(self, genes: np.ndarray, limit: int) -> np.ndarray:
        """Indices of up to ``limit`` rows never seen before (first occurrence), marking them seen."""
        # each row as one bytes object, made by numpy in one call (a void view), not sliced in Python
        keys = np.ascontiguousarray(genes).view(np.dtype((np.void, self.num_genes))).ravel().tolist()
        seen = self.seen
        # one comprehension marks as it goes (set.add returns None), so repeats within the batch drop too
        keep = [i for i, key in enumerate(keys) if not (key in seen or seen.add(key))]
        for i in keep[limit:]:  # over the limit: not used, so not seen
            seen.discard(keys[i])
        return np.asarray(keep[:limit], dtype=np.int64)

    def add(self, genes: np.ndarray, F: np.ndarray, G: np.ndarray, v: np.ndarray) -> np.ndarray:
        for key, value in zip(("genes", "F", "G", "v"), (genes, F, G, v)):
            self.chunks[key].append(value)
        idx = np.arange(self.size, self.size + len(genes))
        self.size += len(genes)
        return idx

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate(self.chunks[k]) for k in ("genes", "F", "G", "v"))


@dataclass(frozen=True)
class _Population:
    """The current parents: archive indices, genes, objectives, violation, rank and crowding."""

    idx: np.ndarray
    genes: np.ndarray
    F: np.ndarray
    v: np.ndarray
    ranks: np.ndarray
    crowd: np.ndarray


class NSGA2:
    """NSGA-II over a :class:`SearchProblem`; ``run()`` is deterministic for a given seed."""

    def __init__(self, problem: SearchProblem, config: NSGA2Config | None = None) -> None:
        self.problem = problem
        self.config = config or NSGA2Config()
        self.config.validate()
        self.layout = problem.layout
        self.mutation_prob = (self.config.mutation_prob if self.config.mutation_prob is not None
                              else min(1.0, 2.0 / self.layout.num_genes))
        self._cards_i8 = self.layout.cardinalities.astype(np.int8)
        self._fresh_rate = 1.0  # share of drawn children that were new networks, last round

    # ----------------------------------------------------------------------------- variation
    def _variation(self, rng: np.random.Generator, parents: np.ndarray, n: int) -> np.ndarray:
        """``n`` canonical children of ``parents`` (kept in survival order): tournaments, uniform
        crossover of pairs, per-gene mutation - one uniform draw per decision, one compiled pass."""
        cfg, G = self.config, self.layout.num_genes
        n_pairs = (n + 1) // 2
        sizes = (2 * n_pairs * cfg.tournament_size, n_pairs, n_pairs * G, n * G)
        u = rng.random(sum(sizes))
        a, b, c = sizes[0], sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2]
        entrants, cross, swap, mutate = u[:a], u[a:b], u[b:c], u[c:]
        lay = self.layout
        return _breed(parents, entrants.reshape(2 * n_pairs, cfg.tournament_size), cross,
                      swap.reshape(n_pairs, G), mutate.reshape(n, G), cfg.crossover_prob, cfg.crossover_swap,
                      self.mutation_prob, self._cards_i8, lay.controller, lay.active_when)

    def _fresh_offspring(self, rng: np.random.Generator, archive: _Archive,
                         make: Callable[[int], np.ndarray], n: int) -> np.ndarray:
        """``n`` rows never evaluated before from ``make`` (which returns canonical rows),
        re-drawing duplicates; fewer if the space seems exhausted (random rows are tried last)."""
        out, have = [], 0
        for attempt in range(self.config.max_redraws + 1):
            # Over-draw by the fresh fraction seen last time (late in a search a third or more of
            # the children repeat earlier networks), so a second round is rarely needed.
            missing = n - have
            want = min(int(missing / self._fresh_rate * 1.15) + 8, 20 * missing + 8)
            if attempt < self.config.max_redraws:
                batch = make(want)
            else:
                batch = self.layout.canonicalize(self.layout.random(want * 4, rng))
            keep = archive.fresh(batch, missing)
            out.append(batch[keep])
            have += len(keep)
            examined = keep[-1] + 1 if len(keep) == missing else len(batch)
            self._fresh_rate = max(0.05, len(keep) / examined)
            if have == n:
                break
        return np.concatenate(out) if out else np.empty((0, self.layout.num_genes), np.int8)

    def _initial(self, rng: np.random.Generator, archive: _Archive, given: np.ndarray | None) -> np.ndarray:
        """The first population: ``given`` rows (default: the all-smallest and all-largest subnets),
        de-duplicated, then fresh random rows up to ``pop_size``."""
        if given is None:
            given = np.stack([np.zeros(self.layout.num_genes, np.int8),
                              (self.layout.cardinalities - 1).astype(np.int8)])
        seeds = self.layout.canonicalize(self.layout.check(np.asarray(given)).astype(np.int8))
        keep = archive.fresh(seeds, self.config.pop_size)
        missing = self.config.pop_size - len(keep)
        if missing == 0:
            return seeds[keep]
        rest = self._fresh_offspring(rng, archive, lambda k: self.layout.canonicalize(self.layout.random(k, rng)),
                                     missing)
        return np.concatenate([seeds[keep], rest])

    # ----------------------------------------------------------------------------- survival
    def _survive(self, idx: np.ndarray, genes: np.ndarray, F: np.ndarray, v: np.ndarray) -> _Population:
        """The ``pop_size`` best rows by (constrained rank, -crowding distance): elitist survival."""
        if F.shape[1] == 2:
            ranks, crowd, order = _survival_2d(F, v)
        else:
            ranks, crowd, order = survival_order(F, v, self.config.pop_size)
        order = order[: self.config.pop_size]
        return _Population(idx[order], genes[order], F[order], v[order], ranks[order], crowd[order])

    # ----------------------------------------------------------------------------- main loop
    def run(self, progress: bool = False, initial: np.ndarray | None = None) -> SearchResult:
        """Search until ``n_evaluations`` distinct networks are scored; see :class:`SearchResult`.

        ``initial`` (gene rows) replaces the default seeds of the first population, the all-smallest
        and all-largest subnets, so that a benchmark can start every algorithm from the same
        population; an empty array seeds nothing. The wall time includes the feasibility check and
        every objective evaluation.
        """
        cfg, problem = self.config, self.problem
        start = time.perf_counter()
        if cfg.check_feasible:
            problem.check_feasible(seed=cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        archive = _Archive(self.layout.num_genes)
        self._fresh_rate = 1.0
        bar = _progress_bar(progress, cfg.n_evaluations)

        genes = self._initial(rng, archive, initial)
        F, G, v = problem.evaluate_full(genes)
        pop = self._survive(archive.add(genes, F, G, v), genes, F, v)
        bar.update(len(genes))
        generations, exhausted = 0, len(genes) < cfg.pop_size

        while archive.size < cfg.n_evaluations and not exhausted:
            n = min(cfg.pop_size, cfg.n_evaluations - archive.size)
            parents = pop
            kids = self._fresh_offspring(rng, archive, lambda k: self._variation(rng, parents.genes, k), n)
            exhausted = len(kids) < n
            if len(kids) == 0:
                break
            kF, kG, kv = problem.evaluate_full(kids)
            pop = self._survive(np.concatenate([pop.idx, archive.add(kids, kF, kG, kv)]),
                                np.concatenate([pop.genes, kids]),
                                np.concatenate([pop.F, kF]), np.concatenate([pop.v, kv]))
            generations += 1
            bar.update(len(kids))
        bar.close()
        return self._result(archive, pop, time.perf_counter() - start, generations, exhausted)

    def _result(self, archive: _Archive, pop: _Population, wall: float, generations: int,
                exhausted: bool) -> SearchResult:
        genes, F, G, v = archive.arrays()
        feasible = np.flatnonzero(v <= 0)
        front = feasible[pareto_mask(F[feasible])]
        front = front[np.lexsort(F[front].T[::-1])] if len(front) else front
        return SearchResult(problem=self.problem, config=self.config, genes=genes, F=F, constraint_values=G,
                            violation=v, population=pop.idx, front=front, wall_time_s=wall,
                            generations=generations, exhausted=exhausted)


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="NSGA-II", unit="eval", unit_scale=True)
