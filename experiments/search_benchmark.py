"""Fair search benchmark: hwnas NSGA-II against pymoo, Optuna, once-for-all's finder and random search.

Every method optimises the same problem (maximise predicted accuracy, minimise predicted latency on
one device, latency <= the loosest budget) with the same scoring functions. What is held equal:

* **initial population** - per seed one start sequence of gene rows; a method with population P
  starts from its first P rows, random search scores its first N rows. Two modes, both reported:
  ``seeded`` (the sequence opens with the all-smallest and all-largest subnets, as ``hwnas search``
  does by default) and ``unseeded`` (random rows only);
* **evaluation counting** - every accuracy-predictor call counts, repeats included (hwnas never
  repeats a network because it de-duplicates before scoring; peers that repeat one pay for it).
  Methods that run generation after generation are run once to the largest budget and scored on
  their first N calls (a run to budget N would make the same calls); once-for-all's finder is
  single-objective with one latency budget per run, so at each N it runs once per latency budget
  with a third of the calls each (``N // 3``, whole generations only, so slightly fewer than N);
* **tuning** - each method gets the same small grid: population {32, 64, 128} x one per-gene
  mutation rate (hwnas, pymoo, Optuna: {1, 2, 4} / number of genes, which includes each one's
  default; once-for-all: {0.05, 0.1, 0.2}, its default 0.1), chosen per mode by the mean
  hypervolume over the budgets on tuning seeds 100-101 (for time: Optuna and AGE-MOEA on seed 100
  only, Optuna on its first 1k calls) and reported on seeds 0-9;
* **hypervolume scale** - fixed from the space, table and predictor alone, never from results:
  latency from the smallest subnet's (0) to the loosest budget (1), accuracy from the largest
  subnet's prediction (0) to the smallest subnet's (1), both minimised, reference point 1.1.

Reported per mode, method and budget N in {1k, 3k, 10k}: median and interquartile range of the
hypervolume of the feasible front of the first N calls over the seeds, the best predicted accuracy
under three latency budgets, distinct networks scored, and wall time (measured on a shared machine:
the load average is recorded; hypervolume does not depend on machine speed).

Peers: random search; pymoo 0.6 ``NSGA2``, ``AGEMOEA`` and ``UNSGA3`` (Das-Dennis reference
directions for 2 objectives, one per population member; DyNAS-T's recommended algorithm), each with
pymoo's integer recipe (SBX + PM with rounding, duplicate elimination); Optuna ``NSGAIISampler``
through ask/tell with the initial population enqueued (slow: run to 3k calls only, and tuned on the
first 1k); once-for-all ``EvolutionFinder`` with the initial rows that meet its budget as its first
population. DyNAS-T itself is not installed (see ``SKIPPED``).

Also recorded (hwnas only): end-to-end throughput and the accuracy predictor's speed per batch size.

Run: ``python experiments/search_benchmark.py [--quick]``; writes
``experiments/results/search_benchmark.json`` (``--quick``: tiny budgets, written under /tmp).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import io
import multiprocessing
import os
import platform
import random
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hwnas.atomic_io import atomic_write_json
from hwnas.complexity import ComplexityCounter
from hwnas.encoding import GeneLayout
from hwnas.search import NSGA2, NSGA2Config, hypervolume, normalise, pareto_mask, reference_point
from hwnas.search import runner
from hwnas.space import SearchSpace, get_space

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
SPACE = "fmnist-mbv3"
REAL_PREDICTOR = REPO / "predictors" / SPACE / "accuracy_xgb.json"
REAL_TABLE = REPO / "latency_tables" / "cpu-1thread" / f"{SPACE}.json"
POPULATION = 64  # hwnas's default, used for the throughput section
BUDGET_QUANTILES = (0.02, 0.15, 0.5)
EVALUATIONS = (1_000, 3_000, 10_000)
OPTUNA_MAX_EVALS = 3_000  # Optuna's ask/tell costs milliseconds per trial, growing with the study
OPTUNA_TUNING_EVALS = 1_000
SLOW_TUNING_SEEDS = 1  # of TUNING_SEEDS, for Optuna and AGE-MOEA: seconds per run, 9 grid points, 2 modes
POPULATIONS = (32, 64, 128)
RATE_MULTIPLES = (1, 2, 4)  # per-gene mutation rate = multiple / number of genes
OFA_MUTATION_RATES = (0.05, 0.1, 0.2)
TUNING_SEEDS = (100, 101)
REPORT_SEEDS = tuple(range(10))
MODES = ("seeded", "unseeded")
SLOWEST_FIRST = ("Optuna NSGAIISampler", "pymoo AGE-MOEA", "once-for-all EvolutionFinder")  # for --jobs
SKIPPED = {"dynast": "not installed: `pip install dynast` pulls fairseq and torchvision, and torchvision "
                     "would replace the pinned torch build; its recommended search (U-NSGA-III) drives pymoo, "
                     "whose UNSGA3 is benchmarked directly"}


# --------------------------------------------------------------------------------- the problem
class SyntheticPredictor:
    """Stand-in accuracy predictor: saturating in per-block capacity (random per slot/choice) and resolution."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.layout = GeneLayout(space)
        rng = np.random.default_rng(seed)
        s = space
        self.gain = rng.uniform(0.2, 1.0, (s.num_block_slots, len(s.kernel_sizes), len(s.expand_ratios)))
        self.gain = np.sort(self.gain, axis=1)  # bigger kernels/expansions help, by varying amounts
        self.gain = np.sort(self.gain, axis=2)
        self.res_gain = np.linspace(0.0, 2.5, len(s.resolutions)) ** 0.7
        self._slots = np.arange(s.num_block_slots)

    def predict(self, genes: np.ndarray) -> np.ndarray:
        g = self.layout.check(genes).astype(np.intp)
        L = self.layout
        active = L.values(g).active
        per_block = self.gain[self._slots, g[:, L.kernel_genes], g[:, L.expand_genes]] * active
        score = per_block.sum(1) + self.res_gain[g[:, L.resolution_gene]]
        return 0.935 - 0.42 * np.exp(-score / 5.0)


class SyntheticTable:
    """Stand-in latency table: per-block cost linear in the block's MACs plus a per-block overhead."""

    def __init__(self, space: SearchSpace) -> None:
        counter = ComplexityCounter(space)
        self.counter = counter
        self.resolutions = space.resolutions
        self.block_ms = 0.02 + counter.block_macs / 2.0e6  # (slot, k, e, r)
        self.fixed_ms = 0.08 + counter.fixed_macs / 2.0e6
        self._slots = np.arange(space.num_block_slots)

    def predict_genes(self, genes: np.ndarray) -> np.ndarray:
        L = self.counter.layout
        g = L.check(genes).astype(np.intp)
        r = g[:, L.resolution_gene]
        active = L.values(g).active
        per_block = self.block_ms[self._slots, g[:, L.kernel_genes], g[:, L.expand_genes], r[:, None]]
        return self.fixed_ms[r] + (per_block * active).sum(1)


@dataclass
class Bench:
    """Scoring functions on search genes, the budgets and the hypervolume bounds."""

    kind: str
    layout: GeneLayout
    scorers: runner.Scorers
    device: str
    budgets: list[float]
    lat_min: float
    info: dict[str, Any] = field(default_factory=dict)
    info_cache: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, genes: np.ndarray) -> np.ndarray:
        return self.scorers.accuracy.fn(genes)

    def latency(self, genes: np.ndarray) -> np.ndarray:
        return self.scorers.latency[self.device].fn(genes)

    def scalar_latency(self) -> "ScalarLatency":
        if "scalar" not in self.info_cache:
            self.info_cache["scalar"] = ScalarLatency(self.layout, self.latency)
        return self.info_cache["scalar"]


def make_bench() -> Bench:
    space = get_space(SPACE)
    if REAL_PREDICTOR.is_file() and REAL_TABLE.is_file():
        kind = "real"
        predictor = runner.load_accuracy_predictor(REAL_PREDICTOR, space)
        table = runner.load_latency_table(REAL_TABLE, space)
        info = {"predictor": str(REAL_PREDICTOR.relative_to(REPO)), "table": str(REAL_TABLE.relative_to(REPO))}
    else:
        kind = "synthetic"
        predictor, table = SyntheticPredictor(space), SyntheticTable(space)
        info = {"predictor": "SyntheticPredictor (analytic stand-in)", "table": "SyntheticTable (MACs-based stand-in)"}
    source = runner.LatencySource("cpu-1thread", REAL_TABLE, table)
    resolutions = runner.profiled_resolutions(space, [source])
    scorers = runner.Scorers.build(space, predictor, [source], resolutions)
    layout = scorers.mapper.restricted
    lat = scorers.latency["cpu-1thread"].fn
    smallest = runner.SearchProblem(layout, [runner.Objective("x", lambda g: np.zeros(len(g)))]).smallest_genes()
    lat_min = float(lat(smallest).min())
    random_lat = lat(layout.canonicalize(layout.random(20_000, 123)))
    # Budgets met by 2%, 15% and 50% of random subnets: tight, medium, loose.
    budgets = [round(float(np.quantile(random_lat, q)), 4) for q in BUDGET_QUANTILES]
    info.update(resolutions=list(resolutions), latency_min_ms=lat_min,
                budget_quantiles_of_random_subnets=list(BUDGET_QUANTILES))
    return Bench(kind, layout, scorers, "cpu-1thread", budgets, lat_min, info)


# --------------------------------------------------------------------------------- start populations
def start_sequence(bench: Bench, mode: str, seed: int, n: int) -> np.ndarray:
    """The ``n`` gene rows every method of one seed starts from (canonical, distinct)."""
    L = bench.layout
    rng = np.random.default_rng(10_000 + seed)
    head = np.empty((0, L.num_genes), np.int8)
    if mode == "seeded":
        head = L.canonicalize(np.stack([np.zeros(L.num_genes, np.int8), (L.cardinalities - 1).astype(np.int8)]))
    rows = np.concatenate([head, L.canonicalize(L.random(2 * n, rng))])
    _, first = np.unique(rows, axis=0, return_index=True)
    return rows[np.sort(first)][:n]


# --------------------------------------------------------------------------------- recording
@dataclass
class Trace:
    """Every accuracy-predictor call of one run, in order, with the wall time of each batch."""

    genes: list[np.ndarray] = field(default_factory=list)
    acc: list[np.ndarray] = field(default_factory=list)
    done_at: list[tuple[int, float]] = field(default_factory=list)  # (cumulative calls, seconds)
    start: float = field(default_factory=time.perf_counter)

    @property
    def calls(self) -> int:
        return self.done_at[-1][0] if self.done_at else 0

    def add(self, genes: np.ndarray, acc: np.ndarray) -> None:
        self.genes.append(np.asarray(genes, dtype=np.int8))
        self.acc.append(np.asarray(acc, dtype=np.float64))
        self.done_at.append((self.calls + len(genes), time.perf_counter() - self.start))

    def scored(self, bench: Bench) -> Callable[[np.ndarray], np.ndarray]:
        """The accuracy predictor, recording every row it is asked for."""
        def accuracy(genes: np.ndarray) -> np.ndarray:
            acc = bench.accuracy(genes)
            self.add(genes, acc)
            return acc
        return accuracy


@dataclass(frozen=True)
class Run:
    """The first calls of one run, with their latency (from the table, after the run)."""

    genes: np.ndarray
    acc: np.ndarray
    lat: np.ndarray
    wall_s: float
    note: str = ""

    @classmethod
    def of(cls, trace: Trace, bench: Bench, wall_s: float | None = None, note: str = "") -> "Run":
        genes = np.concatenate(trace.genes)
        wall = trace.done_at[-1][1] if wall_s is None else wall_s
        return cls(genes, np.concatenate(trace.acc), bench.latency(genes), wall, note)

    def first(self, n: int) -> "Run":
        return Run(self.genes[:n], self.acc[:n], self.lat[:n], self.wall_s, self.note)


# --------------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    """One search method: how to run it, its tuning grid and its largest budget."""

    name: str
    run: Callable[..., Run]  # (bench, n, seed, params, initial) -> Run
    grid: tuple[dict[str, Any], ...]
    max_evaluations: int | None = None
    per_budget: bool = False  # True: one run per evaluation budget (not one run read at prefixes)
    tuning_evaluations: int | None = None
    tuning_seed_count: int | None = None  # fewer tuning seeds for slow methods


def rate_grid(bench: Bench) -> tuple[dict[str, Any], ...]:
    g = bench.layout.num_genes
    return tuple({"population": p, "mutation_per_gene": round(m / g, 5)} for p in POPULATIONS for m in RATE_MULTIPLES)


def run_hwnas(bench: Bench, n: int, seed: int, params: dict[str, Any], initial: np.ndarray) -> Run:
    problem = runner.build_problem(bench.scorers, ["accuracy", "latency"], {bench.device: [max(bench.budgets)]})
    cfg = NSGA2Config(pop_size=params["population"], mutation_prob=params["mutation_per_gene"],
                      n_evaluations=n, seed=seed)
    res = NSGA2(problem, cfg).run(initial=initial[:params["population"]])
    values = res.objective_values()
    return Run(res.genes, values[:, 0], values[:, 1], res.wall_time_s)


def run_random(bench: Bench, n: int, seed: int, params: dict[str, Any], initial: np.ndarray) -> Run:
    trace = Trace()
    trace.scored(bench)(initial[:n])
    return Run.of(trace, bench)


def run_optuna(bench: Bench, n: int, seed: int, params: dict[str, Any], initial: np.ndarray) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget, pop = max(bench.budgets), params["population"]
    sampler = optuna.samplers.NSGAIISampler(population_size=pop, mutation_prob=params["mutation_per_gene"],
                                            seed=seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    cards = [int(c) for c in bench.layout.cardinalities]
    for row in initial[:pop]:
        study.enqueue_trial({f"g{j}": int(v) for j, v in enumerate(row)})
    trace = Trace()
    accuracy = trace.scored(bench)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        while trace.calls < n:
            batch = [study.ask() for _ in range(min(pop, n - trace.calls))]
            genes = np.array([[t.suggest_int(f"g{j}", 0, c - 1) for j, c in enumerate(cards)] for t in batch],
                             dtype=np.int8)
            acc, lat = accuracy(genes), bench.latency(genes)
            for t, a, l in zip(batch, acc, lat):
                t.set_constraint("latency", float(l) - budget)  # feasible when <= 0
                study.tell(t, [float(a), float(l)])
    return Run.of(trace, bench)


def _pymoo_run(algorithm_cls: Any, bench: Bench, n: int, seed: int, params: dict[str, Any],
               initial: np.ndarray, **extra: Any) -> Run:
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.optimize import minimize

    budget, pop = max(bench.budgets), params["population"]
    trace = Trace()
    accuracy = trace.scored(bench)

    class NasProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=bench.layout.num_genes, n_obj=2, n_ieq_constr=1, xl=0,
                             xu=bench.layout.cardinalities - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            genes = np.rint(X).astype(np.int8)
            acc, lat = accuracy(genes), bench.latency(genes)
            out["F"] = np.column_stack([-acc, lat])
            out["G"] = (lat - budget)[:, None]

    algorithm = algorithm_cls(pop_size=pop, sampling=initial[:pop].astype(float),
                              crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                              mutation=PM(prob=1.0, prob_var=params["mutation_per_gene"], eta=3.0, vtype=float,
                                          repair=RoundingRepair()),
                              eliminate_duplicates=True, **extra)
    trace.start = time.perf_counter()
    minimize(NasProblem(), algorithm, ("n_evals", n), seed=seed, verbose=False)
    return Run.of(trace, bench)


def run_pymoo_nsga2(bench: Bench, n: int, seed: int, params: dict[str, Any], initial: np.ndarray) -> Run:
    from pymoo.algorithms.moo.nsga2 import NSGA2 as PymooNSGA2

    return _pymoo_run(PymooNSGA2, bench, n, seed, params, initial)


def run_pymoo_agemoea(bench: Bench, n: int, seed: int, params: dict[str, Any], initial: np.ndarray) -> Run:
    from pymoo.algorithms.moo.age import AGEMOEA

    return _pymoo_run(AGEMOEA, bench, n, seed, params, initial)


def run_pymoo_unsga3(bench: Bench, n: int, seed: int, params: dict[str, Any], initial: np.ndarray) -> Run:
    from pymoo.algorithms.moo.unsga3 import UNSGA3
    from pymoo.util.ref_dirs import get_reference_directions

    ref_dirs = get_reference_directions("das-dennis", 2, n_partitions=params["population"] - 1)
    return _pymoo_run(UNSGA3, bench, n, seed, params, initial, ref_dirs=ref_dirs)


def _import_ofa():
    """once-for-all's finder and arch encoder; ``torchvision`` (data loaders only) stubbed if absent."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.meta_path.insert(0, _TorchvisionStub())
    from ofa.nas.accuracy_predictor.arch_encoder import MobileNetArchEncoder
    from ofa.nas.search_algorithm.evolution import EvolutionFinder

    return EvolutionFinder, MobileNetArchEncoder


class _TorchvisionStub:
    """Meta-path finder answering every ``torchvision[.x]`` import with an empty stand-in module."""

    def find_spec(self, name, path=None, target=None):
        import importlib.machinery

        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: type(attr, (), {"__init__": lambda self, *a, **k: None})
        return module

    def exec_module(self, module):
        pass


class ScalarLatency:
    """A per-architecture latency lookup in plain Python, as once-for-all's own LatencyEstimator is.

    EvolutionFinder asks for one architecture at a time (and resamples until the budget is met, so
    tens of thousands of calls), which a numpy batch function answers slowly. Latency tables are
    additive (a constant per resolution plus one entry per active block), so the table is
    recovered exactly by probing the batch function once, checked on random subnets, and looked up
    with list indexing afterwards.
    """

    def __init__(self, layout: GeneLayout, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.layout = L = layout
        S, nk, ne, nr = L.num_slots, len(L.kernel_values), len(L.expand_values), len(L.resolution_values)
        full_depth = len(L.depth_values) - 1
        base = np.zeros((nr, L.num_genes), dtype=np.int8)
        base[:, L.depth_genes] = full_depth
        base[:, L.resolution_gene] = np.arange(nr)
        base_lat = fn(base)
        # Single-slot changes from the all-smallest, all-deep network: T[s, k, e, r] - T[s, 0, 0, r].
        probes = np.repeat(base, S * nk * ne, axis=0).reshape(nr, S, nk, ne, -1)
        for slot in range(S):
            probes[:, slot, :, :, slot] = np.arange(nk)[:, None]
            probes[:, slot, :, :, S + slot] = np.arange(ne)[None, :]
        delta = fn(probes.reshape(-1, L.num_genes)).reshape(nr, S, nk, ne) - base_lat[:, None, None, None]
        # Depth cuts give the smallest-choice cost of the optional slots: tail sums per stage.
        table = np.transpose(delta, (1, 2, 3, 0)).copy()  # (S, k, e, r)
        constant = base_lat.copy()
        for stage in range(L.num_stages):
            slots = np.flatnonzero(L.slot_stage == stage)

            def tail(di: int) -> np.ndarray:  # smallest-choice cost of the slots a depth cut removes
                return np.zeros(nr) if di == full_depth else base_lat - fn(_with_depth(base, L, stage, di))

            for di in range(full_depth):
                # slots d_i .. d_{i+1}-1 switch on together: their cost rides on the first of them
                table[slots[L.depth_values[di]]] += (tail(di) - tail(di + 1))[None, None, :]
            optional = slots[L.depth_values.min():]
            constant -= table[optional, 0, 0, :].sum(axis=0)
        self.table = table.tolist()
        self.constant = constant.tolist()
        self.max_depth = L.space.max_depth
        check = L.canonicalize(L.random(500, 0))
        err = np.abs(self.batch(check) - fn(check)).max()
        if err > 1e-6 * max(1.0, float(np.abs(fn(check)).max())):
            raise RuntimeError(f"latency function is not additive over blocks (error {err:.3g} ms)")

    def batch(self, genes: np.ndarray) -> np.ndarray:
        return np.array([self.one(row) for row in genes.tolist()])

    def one(self, g: list[int]) -> float:
        L, S, md = self.layout, self.layout.num_slots, self.max_depth
        r = g[-1]
        total = self.constant[r]
        depths = [int(L.depth_values[i]) for i in g[2 * S:2 * S + L.num_stages]]
        for stage, d in enumerate(depths):
            for slot in range(stage * md, stage * md + d):
                total += self.table[slot][g[slot]][g[S + slot]][r]
        return total


def _with_depth(base: np.ndarray, layout: GeneLayout, stage: int, depth_index: int) -> np.ndarray:
    out = base.copy()
    out[:, layout.depth_genes.start + stage] = depth_index
    return out


class _OfaAdapter:
    """What EvolutionFinder calls: ``get_efficiency(arch)``, ``predict_acc(archs)``, ``arch_encoder``."""

    def __init__(self, bench: Bench, encoder: Any, trace: Trace, scalar: ScalarLatency) -> None:
        self.bench, self.arch_encoder, self.trace, self.scalar = bench, encoder, trace, scalar
        L = bench.layout
        self.lookup = [{int(v): i for i, v in enumerate(vals)} for vals in
                       (L.kernel_values, L.expand_values, L.depth_values, L.resolution_values)]
        self.efficiency_calls = 0

    def gene_row(self, a: dict) -> list[int]:
        k, e, d, r = self.lookup
        return [k[x] for x in a["ks"]] + [e[x] for x in a["e"]] + [d[x] for x in a["d"]] + [r[a["image_size"]]]

    def arch_dict(self, row: np.ndarray) -> dict:
        """The inverse of :meth:`gene_row`: once-for-all's ``{"ks", "e", "d", "image_size"}``."""
        L = self.bench.layout
        return {"ks": [int(v) for v in L.kernel_values[row[L.kernel_genes]]],
                "e": [int(v) for v in L.expand_values[row[L.expand_genes]]],
                "d": [int(v) for v in L.depth_values[row[L.depth_genes]]],
                "image_size": int(L.resolution_values[row[L.resolution_gene]])}

    def get_efficiency(self, arch: dict) -> float:
        self.efficiency_calls += 1
        return self.scalar.one(self.gene_row(arch))

    def predict_acc(self, archs: list[dict]) -> np.ndarray:
        genes = np.array([self.gene_row(a) for a in archs], dtype=np.int8)
        acc = self.bench.accuracy(genes)
        self.trace.add(genes, acc)
        return acc



def _seeded_finder(EvolutionFinder: type, adapter: _OfaAdapter, initial: np.ndarray, **kwargs: Any) -> Any:
    """An EvolutionFinder whose first population takes the ``initial`` rows that meet its budget."""

    class SeededFinder(EvolutionFinder):
        def run_evolution_search(self, constraint, verbose=False, **kw):
            self._queue = [adapter.arch_dict(row) for row in initial]
            return super().run_evolution_search(constraint, verbose, **kw)

        def random_valid_sample(self, constraint):
            while self._queue:
                sample = self._queue.pop(0)
                efficiency = adapter.get_efficiency(sample)
                if efficiency <= constraint:
                    return sample, efficiency
            return super().random_valid_sample(constraint)

    return SeededFinder(adapter, adapter, **kwargs)


def run_ofa(bench: Bench, n: int, seed: int, params: dict[str, Any], initial: np.ndarray) -> Run:
    """One EvolutionFinder run per latency budget, ``n // 3`` accuracy calls each (whole generations)."""
    EvolutionFinder, MobileNetArchEncoder = _import_ofa()
    space = bench.layout.space
    encoder = MobileNetArchEncoder(image_size_list=list(space.resolutions), ks_list=list(space.kernel_sizes),
                                   expand_list=list(space.expand_ratios), depth_list=list(space.depths),
                                   n_stage=space.num_stages)
    trace = Trace()
    adapter = _OfaAdapter(bench, encoder, trace, bench.scalar_latency())
    pop = params["population"]
    generations = max(1, (n // len(bench.budgets)) // pop) - 1  # after the first population
    random.seed(seed)
    np.random.seed(seed)
    trace.start = time.perf_counter()
    for budget in bench.budgets:
        finder = _seeded_finder(EvolutionFinder, adapter, initial[:pop], population_size=pop,
                                max_time_budget=generations, arch_mutate_prob=params["mutation_per_gene"])
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every 100 iterations
            finder.run_evolution_search(budget, verbose=False)
    wall = time.perf_counter() - trace.start
    return Run.of(trace, bench, wall, note=f"{len(bench.budgets)} runs x {pop} x {generations + 1} generations; "
                                           f"{adapter.efficiency_calls} latency calls")


def methods(bench: Bench) -> list[Method]:
    grid = rate_grid(bench)
    ofa_grid = tuple({"population": p, "mutation_per_gene": m} for p in POPULATIONS for m in OFA_MUTATION_RATES)
    return [
        Method("hwnas NSGA-II", run_hwnas, grid),
        Method("pymoo NSGA-II", run_pymoo_nsga2, grid),
        Method("pymoo AGE-MOEA", run_pymoo_agemoea, grid, tuning_seed_count=SLOW_TUNING_SEEDS),
        Method("pymoo U-NSGA-III", run_pymoo_unsga3, grid),
        Method("Optuna NSGAIISampler", run_optuna, grid, max_evaluations=OPTUNA_MAX_EVALS,
               tuning_evaluations=OPTUNA_TUNING_EVALS, tuning_seed_count=SLOW_TUNING_SEEDS),
        Method("once-for-all EvolutionFinder", run_ofa, ofa_grid, per_budget=True),
        Method("random search", run_random, ({},)),
    ]


# --------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Scale:
    """Hypervolume normalisation fixed from the space, table and predictor (see the module docstring)."""

    lower: np.ndarray  # (-accuracy of the largest subnet, latency of the smallest)
    upper: np.ndarray  # (-accuracy of the smallest subnet, loosest budget)

    @classmethod
    def of(cls, bench: Bench) -> "Scale":
        L = bench.layout
        smallest = runner.SearchProblem(L, [runner.Objective("x", lambda g: np.zeros(len(g)))]).smallest_genes()
        smallest = smallest[[int(np.argmin(bench.latency(smallest)))]]
        largest = L.canonicalize((L.cardinalities - 1)[None].astype(np.int8))
        return cls(np.array([-float(bench.accuracy(largest)[0]), float(bench.latency(smallest)[0])]),
                   np.array([-float(bench.accuracy(smallest)[0]), max(bench.budgets)]))

    def to_dict(self) -> dict[str, Any]:
        return {"objectives": ["-accuracy", "latency_ms"], "lower": self.lower.tolist(), "upper": self.upper.tolist(),
                "reference": reference_point(2).tolist(),
                "lower_is": "(-predicted accuracy of the largest subnet, latency of the smallest subnet)",
                "upper_is": "(-predicted accuracy of the smallest subnet, loosest latency budget)"}


def metrics(run: Run, bench: Bench, scale: Scale) -> dict[str, Any]:
    budget = max(bench.budgets)
    ok = run.lat <= budget
    F = np.column_stack([-run.acc[ok], run.lat[ok]])
    front = F[pareto_mask(F)] if len(F) else F
    hv = hypervolume(normalise(front, scale.lower, scale.upper), reference_point(2)) if len(front) else 0.0
    best = {f"{b:g}": (float(run.acc[run.lat <= b].max()) if (run.lat <= b).any() else None) for b in bench.budgets}
    return {"evaluations": len(run.genes), "hypervolume": hv, "front_size": len(front), "best_accuracy": best,
            "distinct": int(len(np.unique(bench.layout.canonicalize(run.genes), axis=0)))}


def score_runs(method: Method, bench: Bench, scale: Scale, params: dict[str, Any], mode: str,
               seeds: tuple[int, ...], budgets: tuple[int, ...]) -> list[dict[str, Any]]:
    """One row per (seed, budget): a run per budget, or one run to the largest read at prefixes."""
    rows = []
    for seed in seeds:
        initial = start_sequence(bench, mode, seed, max(budgets))
        if method.per_budget:
            runs = {n: method.run(bench, n, seed, params, initial) for n in budgets}
        else:
            full = method.run(bench, max(budgets), seed, params, initial)
            runs = {n: full.first(n) for n in budgets}
        for n, run in runs.items():
            rows.append({"mode": mode, "method": method.name, "params": params, "seed": seed, "n_budget": n,
                         **metrics(run, bench, scale), "run_wall_s": run.wall_s, "note": run.note})
    return rows


def budgets_for(method: Method, budgets: tuple[int, ...], tuning: bool = False) -> tuple[int, ...]:
    cap = method.tuning_evaluations if tuning and method.tuning_evaluations else method.max_evaluations
    return tuple(n for n in budgets if cap is None or n <= cap) or (min(budgets),)


def tune(method: Method, bench: Bench, scale: Scale, mode: str, seeds: tuple[int, ...],
         budgets: tuple[int, ...]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The grid setting with the highest mean hypervolume over ``seeds`` and budgets, and every score."""
    if len(method.grid) == 1:
        return method.grid[0], []
    seeds = seeds[:method.tuning_seed_count] if method.tuning_seed_count else seeds
    scores = []
    for params in method.grid:
        rows = score_runs(method, bench, scale, params, mode, seeds, budgets_for(method, budgets, tuning=True))
        scores.append({"params": params, "mean_hypervolume": float(np.mean([r["hypervolume"] for r in rows]))})
    best = max(scores, key=lambda s: s["mean_hypervolume"])
    return best["params"], scores


def _quartiles(xs: list[float]) -> dict[str, float]:
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3)}


def summarise(rows: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["mode"], r["method"], r["n_budget"]) for r in rows},
                  key=lambda k: (MODES.index(k[0]), k[2], order.index(k[1])))
    for mode, method, n in keys:
        sel = [r for r in rows if (r["mode"], r["method"], r["n_budget"]) == (mode, method, n)]
        accs = {b: [r["best_accuracy"][b] for r in sel if r["best_accuracy"][b] is not None]
                for b in sel[0]["best_accuracy"]}
        out.append({"mode": mode, "method": method, "n_budget": n, "seeds": len(sel), "params": sel[0]["params"],
                    "evaluations": float(np.median([r["evaluations"] for r in sel])),
                    "distinct": float(np.median([r["distinct"] for r in sel])),
                    "hypervolume": _quartiles([r["hypervolume"] for r in sel]),
                    "best_accuracy": {b: float(np.median(v)) if v else None for b, v in accs.items()},
                    "run_wall_s": float(np.median([r["run_wall_s"] for r in sel]))})
    return out


def verdicts(summary: list[dict[str, Any]], ours: str = "hwnas NSGA-II") -> list[dict[str, Any]]:
    """Per mode and budget: the method with the highest median hypervolume and hwnas's place."""
    out = []
    for mode, n in sorted({(s["mode"], s["n_budget"]) for s in summary}, key=lambda k: (MODES.index(k[0]), k[1])):
        sel = sorted([s for s in summary if (s["mode"], s["n_budget"]) == (mode, n)],
                     key=lambda s: -s["hypervolume"]["median"])
        rank = next(i for i, s in enumerate(sel) if s["method"] == ours)
        out.append({"mode": mode, "n_budget": n, "best": sel[0]["method"], "best_hv": sel[0]["hypervolume"]["median"],
                    "hwnas_rank": rank + 1, "hwnas_hv": sel[rank]["hypervolume"]["median"],
                    "of": len(sel), "hwnas_wins": rank == 0})
    return out


def format_table(summary: list[dict[str, Any]], budgets: list[float]) -> str:
    head = (f"{'mode':<9} {'N':>6}  {'method':<29} {'HV median [IQR]':>24} "
            + " ".join(f"{'acc@' + format(b, '.3g') + 'ms':>12}" for b in budgets) + f" {'distinct':>8} {'run s':>7}")
    lines = [head, "-" * len(head)]
    for s in summary:
        hv = s["hypervolume"]
        accs = " ".join(f"{100 * v:>11.2f}%" if v is not None else f"{'-':>12}" for v in s["best_accuracy"].values())
        lines.append(f"{s['mode']:<9} {s['n_budget']:>6}  {s['method']:<29} "
                     f"{hv['median']:>8.4f} [{hv['q1']:.4f}, {hv['q3']:.4f}] {accs} {s['distinct']:>8.0f} "
                     f"{s['run_wall_s']:>7.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- throughput
THROUGHPUT_REPEATS = 5


def warm_up(bench: Bench) -> float:
    """Seconds of the first search in this process: numba loads its compiled kernels (or compiles
    them, on a machine's first run). Every later run, and every number below, is after this."""
    problem = runner.build_problem(bench.scorers, ["accuracy", "latency"], {bench.device: [max(bench.budgets)]})
    started = time.perf_counter()
    NSGA2(problem, NSGA2Config(pop_size=POPULATION, n_evaluations=4 * POPULATION, seed=0)).run()
    bench.accuracy(bench.layout.random(4096, 0))  # the threaded predictor kernel
    return time.perf_counter() - started


def throughput(bench: Bench, evaluations: tuple[int, ...] = (10_000, 100_000),
               populations: tuple[int, ...] = (POPULATION, 256, 1024)) -> list[dict[str, Any]]:
    """hwnas end to end (feasibility check + every predictor/table call), median of repeats."""
    problem = runner.build_problem(bench.scorers, ["accuracy", "latency"], {bench.device: [max(bench.budgets)]})
    out = []
    for n in evaluations:
        for pop in populations:
            walls, gens = [], 0
            for rep in range(THROUGHPUT_REPEATS):
                res = NSGA2(problem, NSGA2Config(pop_size=pop, n_evaluations=n, seed=rep)).run()
                walls.append(res.wall_time_s)
                gens = res.generations
            wall = float(np.median(walls))
            out.append({"evaluations": n, "population": pop, "repeats": THROUGHPUT_REPEATS, "wall_s": wall,
                        "evals_per_s": n / wall, "best_evals_per_s": n / min(walls),
                        "worst_evals_per_s": n / max(walls), "generations": gens})
    return out


def predictor_speed(bench: Bench, batches: tuple[int, ...] = (64, 1024, 16384)) -> list[dict[str, Any]]:
    """Rows/s of the accuracy predictor per batch size: the compiled kernel beside XGBoost's own
    predictor (one thread, all threads) on the same model and features, median of repeats."""
    if bench.kind != "real":
        return []
    from hwnas.accuracy.predictor import AccuracyPredictor

    est = AccuracyPredictor.load(REAL_PREDICTOR, get_space(SPACE))
    enc, booster, compiled = est.encoder_, est.booster_, est.compiled_
    rows = []
    for n in batches:
        X = enc.transform(bench.layout.canonicalize(bench.layout.random(n, 1)))
        reps = max(3, 20_000 // n)
        methods: list[tuple[str, int | None]] = [("compiled (hwnas)", None)]
        methods += [(f"xgboost inplace_predict, {t} thread(s)", t) for t in sorted({1, os.cpu_count() or 1})]
        for name, threads in methods:
            if threads is None:
                fn: Callable[[], Any] = lambda: compiled.ensemble.predict(X)
            else:
                booster.set_param({"nthread": threads})  # once, outside the timed loop
                fn = lambda: booster.inplace_predict(X, validate_features=False)
            times = []
            for _ in range(7):
                started = time.perf_counter()
                for _ in range(reps):
                    fn()
                times.append((time.perf_counter() - started) / reps)
            rows.append({"batch": n, "method": name, "rows_per_s": n / float(np.median(times))})
    return rows


# --------------------------------------------------------------------------------- main
_WORKER: dict[str, Any] = {}


def tune_and_score(task: tuple) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One (mode, method): tune on the tuning seeds, then score the chosen setting on the seeds.
    Runs in a worker process, which builds the problem once (numba kernels, predictor, table)."""
    mode, name, quick, seeds, tuning_seeds, budgets = task
    if "bench" not in _WORKER:
        _WORKER["bench"] = bench = make_bench()
        warm_up(bench)
        _WORKER["scale"] = Scale.of(bench)
    bench, scale = _WORKER["bench"], _WORKER["scale"]
    method = next(m for m in methods(bench) if m.name == name)
    if quick:
        method = dataclasses.replace(method, grid=method.grid[:2])
    params, scores = tune(method, bench, scale, mode, tuning_seeds, budgets)
    entry = {"mode": mode, "method": name, "chosen": params, "grid": scores,
             "seeds": list(tuning_seeds[:method.tuning_seed_count or None]),
             "budgets": list(budgets_for(method, budgets, tuning=True))}
    return entry, score_runs(method, bench, scale, params, mode, seeds, budgets_for(method, budgets))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="development smoke run: budgets 300/600, 2 seeds, 2 grid points, written under /tmp")
    ap.add_argument("--jobs", type=int, default=2,
                    help="worker processes, one (mode, method) pair each at a time (default 2: this machine's cores)")
    ap.add_argument("--out", type=Path, default=None, help="result file (default experiments/results/search_benchmark.json)")
    args = ap.parse_args(argv)
    out = args.out or (Path("/tmp/hwnas-search-benchmark.json") if args.quick else RESULTS / "search_benchmark.json")
    budgets = (300, 600) if args.quick else EVALUATIONS
    seeds = (0, 1) if args.quick else REPORT_SEEDS
    tuning_seeds = TUNING_SEEDS[:1] if args.quick else TUNING_SEEDS
    started = time.time()
    load_before = os.getloadavg()
    bench = make_bench()
    first_search_s = warm_up(bench)
    scale = Scale.of(bench)
    label = "REAL predictor + table" if bench.kind == "real" else "SYNTHETIC stand-in (no real predictor/table found)"
    print(f"problem: {label}; latency budgets {bench.budgets} ms; seeds {list(seeds)}, tuning seeds {list(tuning_seeds)}")

    order = [m.name for m in methods(bench)]
    slowest_first = sorted(order, key=lambda name: SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(order))
    tasks = [(mode, name, args.quick, seeds, tuning_seeds, budgets) for name in slowest_first for mode in MODES]
    tuning, rows = [], []
    spawn = multiprocessing.get_context("spawn")  # the parent's OpenMP (XGBoost) makes fork unsafe
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
        for task, (entry, scored) in zip(tasks, pool.map(tune_and_score, tasks)):
            tuning.append(entry)
            rows += scored
            print(f"{task[0]:<9} {task[1]:<29} {entry['chosen']} ({time.time() - started:.0f} s)", flush=True)
    summary = summarise(rows, order)
    verdict = verdicts(summary)
    print(format_table(summary, bench.budgets))
    for v in verdict:
        if not v["hwnas_wins"]:
            print(f"hwnas does not win: {v['mode']}, N = {v['n_budget']}: {v['best']} {v['best_hv']:.4f} > "
                  f"hwnas {v['hwnas_hv']:.4f} (rank {v['hwnas_rank']} of {v['of']})")

    tp = throughput(bench, (10_000,) if args.quick else (10_000, 100_000))
    for t in tp:
        print(f"hwnas throughput: {t['evaluations']:,} evaluations, population {t['population']}: "
              f"{t['wall_s']:.3f} s, {t['evals_per_s']:,.0f} candidates/s (median of {t['repeats']})")
    speed = predictor_speed(bench, (64, 1024) if args.quick else (64, 1024, 16384))
    for row in speed:
        print(f"accuracy predictor, batch {row['batch']:>6,}: {row['method']:<38} {row['rows_per_s']:>12,.0f} rows/s")
    for name, why in SKIPPED.items():
        print(f"skipped {name}: {why}")

    report = {"problem": {"kind": bench.kind, **bench.info, "device": bench.device, "budgets_ms": bench.budgets,
                          "space": SPACE, "num_genes": bench.layout.num_genes},
              "protocol": {
                  "evaluation_budgets": list(budgets), "seeds": list(seeds), "tuning_seeds": list(tuning_seeds),
                  "modes": {"seeded": "start sequence opens with the all-smallest and all-largest subnets",
                            "unseeded": "start sequence is random rows only"},
                  "counting": "every accuracy-predictor call counts, repeats included; methods run once to the "
                              "largest budget are scored on their first N calls",
                  "tuning": "grid population x per-gene mutation rate per method and mode, chosen by mean "
                            "hypervolume over budgets and tuning seeds, reported on the seeds; for time, "
                            f"Optuna and AGE-MOEA are tuned on the first {SLOW_TUNING_SEEDS} tuning seed(s) only "
                            f"and Optuna on its first {OPTUNA_TUNING_EVALS} calls",
                  "optuna_max_evaluations": OPTUNA_MAX_EVALS,
                  "once_for_all": "single objective: at each N one run per latency budget with N // 3 calls each "
                                  "(whole generations); hypervolume of everything the runs scored",
                  "hypervolume": {**scale.to_dict(), "feasible": f"latency <= {max(bench.budgets)} ms"}},
              "summary": summary, "verdicts": verdict, "tuning": tuning, "runs": rows,
              "throughput": tp, "predictor_speed": speed, "first_search_s": round(first_search_s, 3),
              "skipped": SKIPPED,
              "host": {"worker_processes": args.jobs, "cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
                       "shared": "wall times were measured on a shared machine; see loadavg",
                       "loadavg_start": list(load_before), "loadavg_end": list(os.getloadavg())},
              "quick": args.quick, "total_wall_s": round(time.time() - started, 1)}
    atomic_write_json(out, report)
    print(f"wrote {out} ({report['total_wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
