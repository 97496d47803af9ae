"""NSGA-II engine, problem and hypervolume on a synthetic but structured accuracy/latency problem.

Run ``python tests/test_search_engine.py`` to print throughput (not asserted here).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from hwnas.encoding import GeneLayout
from hwnas.errors import ConfigError
from hwnas.search import (NSGA2, Constraint, NSGA2Config, Objective, SearchProblem, constrained_ranks,
                          crowding_distance, hypervolume, hypervolume_2d, non_dominated_ranks, normalise,
                          pareto_mask, reference_point)
from hwnas.search import nsga2 as nsga2_module

LAYOUT = GeneLayout("fmnist-mbv3")


# --------------------------------------------------------------------------------- synthetic problem
def _accuracy_fn(layout: GeneLayout, seed: int = 0):
    rng = np.random.default_rng(seed)
    wk = rng.uniform(0.2, 1.5, layout.num_slots)
    we = rng.uniform(0.2, 1.5, layout.num_slots)

    def accuracy(genes: np.ndarray) -> np.ndarray:
        v = layout.values(genes)
        score = ((wk * (v.kernel - 3) / 4 + we * (v.expand - 3) / 3 + 0.6) * v.active).sum(1)
        score += 4.0 * (v.resolution - 20) / 12
        return 0.95 - 0.6 * np.exp(-score / 8.0)  # saturating in capacity

    return accuracy


def _latency_fn(layout: GeneLayout, seed: int = 1):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 2.0, layout.num_slots)  # differs from the accuracy weights

    def latency(genes: np.ndarray) -> np.ndarray:
        v = layout.values(genes)
        blocks = (w * v.kernel ** 2 * v.expand * v.active).sum(1)
        return 0.05 + blocks * (v.resolution / 28.0) ** 2 / 1000.0

    return latency


def make_problem(budget_ms: float | None = None, seed: int = 0) -> SearchProblem:
    latency = _latency_fn(LAYOUT, seed + 1)
    constraints = [] if budget_ms is None else [
        Constraint("latency", latency, budget_ms, unit="ms", context="on cpu-1thread", option="--budget-ms")]
    return SearchProblem(LAYOUT, [Objective("accuracy", _accuracy_fn(LAYOUT, seed), "max"),
                                  Objective("latency_ms", latency, "min", unit="ms")], constraints)


def median_latency() -> float:
    problem = make_problem()
    F, _ = problem.evaluate(LAYOUT.canonicalize(LAYOUT.random(2000, 5)))
    return float(np.median(F[:, 1]))


# --------------------------------------------------------------------------------- brute-force references
def brute_dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def brute_ranks(F: np.ndarray) -> np.ndarray:
    n = len(F)
    ranks = np.full(n, -1)
    remaining = set(range(n))
    r = 0
    while remaining:
        front = [i for i in remaining if not any(brute_dominates(F[j], F[i]) for j in remaining if j != i)]
        for i in front:
            ranks[i] = r
        remaining -= set(front)
        r += 1
    return ranks


def random_objectives(n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 12, size=(n, m)).astype(float)  # small range: many ties and duplicates


# --------------------------------------------------------------------------------- sorting
@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_non_dominated_ranks_match_brute_force(m, seed):
    F = random_objectives(150, m, seed)
    np.testing.assert_array_equal(non_dominated_ranks(F), brute_ranks(F))
    continuous = np.random.default_rng(seed).random((120, m))
    np.testing.assert_array_equal(non_dominated_ranks(continuous), brute_ranks(continuous))


def test_rank_peeling_path_matches_matrix_path(monkeypatch):
    F = random_objectives(300, 3, 7)
    expected = non_dominated_ranks(F)
    monkeypatch.setattr(nsga2_module, "_FULL_MATRIX_MAX", 10)
    np.testing.assert_array_equal(non_dominated_ranks(F), expected)


@pytest.mark.parametrize("m", [2, 3])
def test_pareto_mask_matches_brute_force_over_blocks(m):
    F = random_objectives(2500, m, 11)  # > 1 block of 1024 for the general path
    expected = brute_ranks(F[:250]) == 0
    np.testing.assert_array_equal(pareto_mask(F[:250]), expected)
    np.testing.assert_array_equal(pareto_mask(F), non_dominated_ranks(F) == 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_large_two_objective_front_matches_brute_force(seed):
    """Above ``_PREFILTER_MIN`` rows the 2-objective front is sought among pre-filtered rows; on a
    trade-off cloud with ties and duplicates it must still equal a brute-force dominance check."""
    from hwnas.search.nsga2 import _PREFILTER_MIN, _not_beaten_by_an_earlier_bin

    rng = np.random.default_rng(seed)
    x = rng.random(_PREFILTER_MIN + 1000)
    F = np.round(np.stack([x, 1 / (0.1 + x) + rng.exponential(0.5, len(x))], axis=1), 2)
    F[-50:] = F[:50]  # exact duplicates, some of them on the front
    dominated = np.zeros(len(F), dtype=bool)
    for s in range(0, len(F), 500):
        a = F[s:s + 500, None, :]
        dominated[s:s + 500] = ((F[None] <= a).all(-1) & (F[None] < a).any(-1)).any(1)
    assert len(_not_beaten_by_an_earlier_bin(F)) < len(F) // 4  # the pre-filter is used and prunes
    np.testing.assert_array_equal(pareto_mask(F), ~dominated)


def test_crowding_distance_edges_are_inf_and_interior_is_normalised():
    F = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0], [5.0, 5.0], [6.0, 6.0]])
    ranks = non_dominated_ranks(F)
    np.testing.assert_array_equal(ranks, [0, 0, 0, 0, 1, 2])
    d = crowding_distance(F, ranks)
    assert np.isinf(d[[0, 3, 4, 5]]).all()
    # point 1: f1 gap (3-0)/4 + f2 gap (4-1)/4 = 1.5; point 2 the same by symmetry
    np.testing.assert_allclose(d[[1, 2]], [1.5, 1.5])


def test_constrained_ranks_put_feasible_first_then_lower_violation():
    F = np.array([[5.0, 5.0], [0.0, 0.0], [1.0, 1.0], [9.0, 9.0], [0.0, 9.0]])
    v = np.array([0.0, 0.3, 0.1, 0.0, 0.3])
    ranks = constrained_ranks(F, v)
    # feasible: row 0 (front 0) dominates row 3 (front 1); then violation 0.1, then both 0.3
    np.testing.assert_array_equal(ranks, [0, 3, 2, 1, 3])


@pytest.mark.parametrize("seed", range(20))
def test_compiled_two_objective_survival_matches_the_general_path(seed):
    """The per-generation fast path must keep exactly the rows (and order) the numpy path keeps:
    ties in objectives, in violation, duplicate rows and all-infeasible batches included."""
    from hwnas.search.nsga2 import _survival_2d, survival_order

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 140))
    F = rng.integers(0, 6, size=(n, 2)).astype(np.float64) / 4  # coarse values: many ties
    v = np.where(rng.random(n) < [0.3, 0.0, 1.0, 0.5][seed % 4], rng.integers(1, 4, n) / 8, 0.0)
    for got, want in zip(_survival_2d(F, v), survival_order(F, v)):
        np.testing.assert_array_equal(got, want)


def test_archive_fresh_keeps_first_occurrences_up_to_the_limit_and_forgets_the_rest():
    """Rows past the limit are not evaluated, so they must stay fresh for a later batch."""
    from hwnas.search.nsga2 import _Archive

    rows = np.array([[0, 1], [0, 1], [1, 1], [2, 0], [1, 1], [0, 2]], dtype=np.int8)
    archive = _Archive(num_genes=2)
    np.testing.assert_array_equal(archive.fresh(rows, limit=2), [0, 2])  # row 1 repeats row 0
    np.testing.assert_array_equal(archive.fresh(rows, limit=10), [3, 5])  # 0, 1, 2 and 4 are seen
    assert archive.fresh(rows, limit=10).size == 0


# --------------------------------------------------------------------------------- hypervolume
def test_hypervolume_hand_computed():
    F2 = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.5, 3.5], [5.0, 0.0]])  # last two add nothing
    assert hypervolume_2d(F2, [4.0, 4.0]) == pytest.approx(6.0)
    assert hypervolume(F2, [4.0, 4.0]) == pytest.approx(6.0)
    assert hypervolume(np.array([[1.0, 1.0, 1.0]]), [2.0, 3.0, 4.0]) == pytest.approx(6.0)
    # two boxes 2*2*1 and 1*1*2 overlapping in a unit cube
    F3 = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.5, 1.5, 1.5]])
    assert hypervolume(F3, [2.0, 2.0, 2.0]) == pytest.approx(5.0)
    assert hypervolume(np.empty((0, 3)), [1.0, 1.0, 1.0]) == 0.0


def test_hypervolume_3d_slab_equals_2d_times_depth():
    rng = np.random.default_rng(3)
    F2 = rng.random((40, 2))
    F3 = np.column_stack([F2, np.full(40, 0.25)])
    assert hypervolume(F3, [1.0, 1.0, 1.0]) == pytest.approx(0.75 * hypervolume_2d(F2, [1.0, 1.0]))


def test_normalise_maps_bounds_to_unit_box():
    F = np.array([[2.0, 10.0], [4.0, 30.0]])
    np.testing.assert_allclose(normalise(F, [2.0, 10.0], [4.0, 30.0]), [[0, 0], [1, 1]])
    np.testing.assert_allclose(reference_point(2), [1.1, 1.1])
    with pytest.raises(ConfigError, match="reference point"):
        hypervolume(F, [1.0, 1.0, 1.0])


# --------------------------------------------------------------------------------- problem
def test_problem_rejects_bad_objective_output():
    bad = SearchProblem(LAYOUT, [Objective("acc", lambda g: np.zeros((len(g), 2)), "max")])
    with pytest.raises(ConfigError, match="one value per gene row"):
        bad.evaluate(LAYOUT.random(4, 0))
    nan = SearchProblem(LAYOUT, [Objective("acc", lambda g: np.full(len(g), np.nan), "max")])
    with pytest.raises(ConfigError, match="NaN"):
        nan.evaluate(LAYOUT.random(4, 0))
    with pytest.raises(ConfigError, match="direction"):
        Objective("acc", lambda g: g[:, 0], "up")


def test_a_function_that_is_objective_and_constraint_runs_once_per_batch():
    """A device's latency is an objective and its budget's constraint: one call per batch, same values
    in both places, and a max objective's sign flip does not leak into the constraint."""
    calls = []

    def latency(g):
        calls.append(len(g))
        return g[:, 0].astype(float) + 1.0

    problem = SearchProblem(LAYOUT, [Objective("lat", latency, "max"), Objective("k1", lambda g: g[:, 1] * 1.0)],
                            [Constraint("lat", latency, 2.0)])
    genes = np.zeros((3, LAYOUT.num_genes), dtype=np.int8)
    genes[:, 0] = [0, 1, 2]
    F, G, v = problem.evaluate_full(genes)
    assert calls == [3]
    np.testing.assert_allclose(F[:, 0], [-1.0, -2.0, -3.0])
    np.testing.assert_allclose(G[:, 0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(v, [0.0, 0.0, 0.5])
    problem.evaluate_full(genes)
    assert calls == [3, 3]  # nothing is kept between batches


def test_violation_is_normalised_and_zero_when_feasible():
    problem = SearchProblem(LAYOUT, [Objective("k0", lambda g: g[:, 0].astype(float))],
                            [Constraint("c", lambda g: g[:, 0].astype(float), 1.0)])
    genes = np.zeros((3, LAYOUT.num_genes), dtype=np.int8)
    genes[:, 0] = [0, 1, 2]
    F, v = problem.evaluate(genes)
    np.testing.assert_allclose(v, [0.0, 0.0, 1.0])


def test_infeasible_budget_raises_quickly_with_the_minimum():
    problem = make_problem(budget_ms=0.01)
    smallest = problem.smallest_genes()
    lowest = float(problem.constraints[0].fn(smallest).min())
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        NSGA2(problem, NSGA2Config(pop_size=32, n_evaluations=64)).run()
    assert time.perf_counter() - start < 2.0
    msg = str(info.value)
    assert "latency budget 0.01 ms on cpu-1thread is infeasible" in msg
    assert f"{lowest:.2f} ms" in msg and "resolution 20" in msg and "--budget-ms" in msg
    # the suggested budget is feasible
    suggested = float(msg.rsplit("at least ", 1)[1].rstrip("."))
    assert suggested >= lowest
    make_problem(budget_ms=suggested).check_feasible()


def test_feasibility_check_probes_random_subnets_for_non_monotone_constraints():
    stages = LAYOUT.num_stages
    neg_depth = lambda g: -LAYOUT.values(g).depth.sum(1).astype(float)  # noqa: E731
    objective = [Objective("acc", _accuracy_fn(LAYOUT), "max")]
    # the smallest subnet fails "depth >= 3 per stage on average", random subnets meet it
    SearchProblem(LAYOUT, objective, [Constraint("neg_depth", neg_depth, -3.0 * stages)]).check_feasible()
    impossible = SearchProblem(LAYOUT, objective, [Constraint("neg_depth", neg_depth, -4.0 * stages - 1)])
    with pytest.raises(ConfigError, match="best of 20,000 random subnets") as info:
        impossible.check_feasible()
    assert "Raise the neg_depth limit to at least" in str(info.value)


def test_all_infeasible_search_returns_empty_front():
    problem = make_problem(budget_ms=0.01)
    res = NSGA2(problem, NSGA2Config(pop_size=16, n_evaluations=64, check_feasible=False)).run()
    assert res.n_evaluations == 64 and (res.violation > 0).all()
    assert len(res.front) == 0 and res.objective_values(res.front).shape == (0, problem.num_objectives)
    # survival kept the least-violating candidates
    assert res.violation[res.population].max() <= np.sort(res.violation)[15]


def test_config_validation():
    with pytest.raises(ConfigError, match="pop_size"):
        NSGA2Config(pop_size=2).validate()
    with pytest.raises(ConfigError, match="n_evaluations"):
        NSGA2(make_problem(), NSGA2Config(pop_size=64, n_evaluations=10))
    with pytest.raises(ConfigError, match="mutation_prob"):
        NSGA2Config(mutation_prob=1.5).validate()


# --------------------------------------------------------------------------------- engine
@pytest.fixture(scope="module")
def budget() -> float:
    return median_latency()


@pytest.fixture(scope="module")
def constrained_result(budget):
    return NSGA2(make_problem(budget), NSGA2Config(pop_size=64, n_evaluations=1500, seed=3)).run()


def test_front_is_non_dominated_feasible_and_complete(constrained_result, budget):
    res = constrained_result
    assert res.n_evaluations == 1500
    front = res.front_F
    assert len(front) >= 5
    for i in range(len(front)):
        for j in range(len(front)):
            assert not brute_dominates(front[j], front[i])
    assert (res.violation[res.front] == 0).all()
    assert (res.constraint_values[res.front, 0] <= budget).all()
    # nothing evaluated and feasible dominates a front point (front over ALL evaluated rows)
    feasible = res.F[res.violation == 0]
    for f in front:
        assert not ((feasible <= f).all(1) & (feasible < f).any(1)).any()
    # sorted by the first minimisation objective (accuracy descending)
    assert (np.diff(front[:, 0]) >= 0).all()


def test_objective_values_use_natural_units(constrained_result, budget):
    res = constrained_result
    values = res.objective_values(res.front)
    assert values.shape == (len(res.front), 2)
    assert (0.3 < values[:, 0]).all() and (values[:, 0] < 0.95).all()  # sign undone for the 'max' objective
    assert (0 < values[:, 1]).all() and (values[:, 1] <= budget).all()
    np.testing.assert_allclose(res.constraint_values[res.front, 0], values[:, 1])


def test_evaluated_rows_are_canonical_distinct_and_include_extremes(constrained_result):
    genes = constrained_result.genes
    np.testing.assert_array_equal(LAYOUT.canonicalize(genes), genes)
    assert len(np.unique(genes, axis=0)) == len(genes)
    assert (genes[0] == 0).all()
    np.testing.assert_array_equal(genes[1], LAYOUT.canonicalize((LAYOUT.cardinalities - 1)[None])[0])
    assert len(constrained_result.population) == 64


def test_given_initial_rows_replace_the_extreme_seeds(budget):
    """A benchmark starts every algorithm from the same rows: they open the first population (canonical,
    de-duplicated, filled up with random rows) and the all-smallest/all-largest seeds are not added."""
    given = LAYOUT.random(10, 7)
    given = np.concatenate([given, given[:3]])  # repeats are scored once
    res = NSGA2(make_problem(budget), NSGA2Config(pop_size=32, n_evaluations=200, seed=1)).run(initial=given)
    np.testing.assert_array_equal(res.genes[:10], LAYOUT.canonicalize(given[:10]))
    assert not (res.genes[:32] == 0).all(1).any()  # the all-smallest subnet was not put in
    none = NSGA2(make_problem(budget), NSGA2Config(pop_size=32, n_evaluations=200, seed=1)).run(
        initial=np.empty((0, LAYOUT.num_genes), np.int8))
    assert not (none.genes[:32] == 0).all(1).any() and len(np.unique(none.genes, axis=0)) == 200


def test_same_seed_same_result_and_other_seed_differs(budget):
    cfg = dict(pop_size=32, n_evaluations=400)
    a = NSGA2(make_problem(budget), NSGA2Config(seed=5, **cfg)).run()
    b = NSGA2(make_problem(budget), NSGA2Config(seed=5, **cfg)).run()
    c = NSGA2(make_problem(budget), NSGA2Config(seed=6, **cfg)).run()
    np.testing.assert_array_equal(a.genes, b.genes)
    np.testing.assert_array_equal(a.F, b.F)
    np.testing.assert_array_equal(a.front, b.front)
    np.testing.assert_array_equal(a.population, b.population)
    assert not np.array_equal(a.genes, c.genes)


def test_three_objectives_run(budget):
    problem = make_problem(budget)
    problem.objectives.append(Objective("depth", lambda g: LAYOUT.values(g).depth.sum(1).astype(float), "min"))
    res = NSGA2(problem, NSGA2Config(pop_size=32, n_evaluations=300, seed=1, tournament_size=3)).run()
    assert res.F.shape == (300, 3)
    assert (pareto_mask(res.front_F)).all()


def _random_search_front(problem: SearchProblem, n: int, seed: int) -> np.ndarray:
    genes = np.unique(LAYOUT.canonicalize(LAYOUT.random(n * 2, seed)), axis=0)
    genes = genes[np.random.default_rng(seed).permutation(len(genes))[:n]]
    F, v = problem.evaluate(genes)
    F = F[v <= 0]
    return F[pareto_mask(F)]


def test_nsga2_beats_random_search_in_hypervolume(budget):
    problem = make_problem(budget)
    gains = []
    for seed in range(3):
        ns = NSGA2(problem, NSGA2Config(pop_size=64, n_evaluations=1500, seed=seed)).run().front_F
        rs = _random_search_front(problem, 1500, seed)
        both = np.concatenate([ns, rs])
        lower, upper = both.min(0), both.max(0)
        ref = reference_point(2)
        gains.append(hypervolume(normalise(ns, lower, upper), ref) - hypervolume(normalise(rs, lower, upper), ref))
    assert np.mean(gains) > 0.05, gains
    assert min(gains) > 0, gains


def test_tiny_space_is_exhausted_without_duplicates():
    space = dataclasses.replace(LAYOUT.space, name="tiny", stages=LAYOUT.space.stages[:1], kernel_sizes=(3, 5),
                                expand_ratios=(3,), depths=(1, 2), resolutions=(20, 24))
    layout = GeneLayout(space)  # distinct networks: (2 + 2*2 kernel choices) x 2 resolutions = 12
    problem = SearchProblem(layout, [Objective("res", lambda g: g[:, -1].astype(float), "max"),
                                     Objective("k", lambda g: g[:, 0].astype(float), "min")])
    res = NSGA2(problem, NSGA2Config(pop_size=4, n_evaluations=40, seed=0, max_redraws=5)).run()
    assert res.exhausted and res.n_evaluations == 12
    assert len(np.unique(res.genes, axis=0)) == 12


def test_progress_bar_runs(capsys):
    NSGA2(make_problem(), NSGA2Config(pop_size=16, n_evaluations=48)).run(progress=True)
    assert "NSGA-II" in capsys.readouterr().err


# --------------------------------------------------------------------------------- throughput
def _throughput() -> None:
    budget = median_latency()
    problem = make_problem(budget)
    genes = LAYOUT.canonicalize(LAYOUT.random(100_000, 0))
    start = time.perf_counter()
    problem.evaluate(genes)
    print(f"problem.evaluate on 100k rows: {1e5 / (time.perf_counter() - start):,.0f} candidates/s")
    for pop, n in [(256, 10_000), (1024, 100_000)]:
        res = NSGA2(problem, NSGA2Config(pop_size=pop, n_evaluations=n, seed=0)).run()
        print(f"NSGA-II pop {pop}, {n:,} evaluations: {res.wall_time_s:.2f} s, "
              f"{res.evaluations_per_s:,.0f} candidates/s end to end, front {len(res.front)}")


if __name__ == "__main__":
    _throughput()

