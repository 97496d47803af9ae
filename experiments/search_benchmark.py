"""Search benchmark: hwnas NSGA-II against random search, Optuna, pymoo and once-for-all's finder.

Every method optimises the same problem (maximise predicted accuracy, minimise predicted latency
on one device, latency <= the largest budget) with the same scoring functions and the same number
of scored candidates, over several seeds. Reported per method and evaluation budget (medians over
seeds):

* hypervolume of the feasible front of the first N scored candidates, with accuracy and latency
  normalised by the same bounds for every method (latency: [fastest subnet, largest budget];
  accuracy: the extremes of the union of all fronts) and reference point 1.1;
* best predicted accuracy under each of three latency budgets;
* wall time (scoring included) and candidates scored per second.

Inputs: the real predictor and table when ``predictors/fmnist-mbv3/accuracy_xgb.json`` and
``latency_tables/cpu-1thread/fmnist-mbv3.json`` exist, otherwise an analytic stand-in with the same
structure (additive per-block latency from MACs, saturating accuracy), labelled as such.

Peers and how they are driven:

* random search: uniform random subnets;
* Optuna 5 ``NSGAIISampler`` through ask/tell, a population asked and scored as one batch. It costs
  ~5 ms per trial, so it runs once per seed at the largest budget and smaller budgets read the
  first N trials (a generational sampler's first N trials are exactly a run of budget N);
* pymoo ``NSGA2`` with its integer recipe (IntegerRandomSampling, SBX and PM with RoundingRepair,
  duplicate elimination), vectorised evaluation;
* once-for-all ``EvolutionFinder`` (single-objective, one budget per run): one run per budget with a
  third of the evaluations each; its hypervolume is that of everything the three runs scored;
* DyNAS-T: not installed, see ``SKIPPED``.

Run: ``python experiments/search_benchmark.py [--quick]``; writes
``experiments/results/search_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import math
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
POPULATION = 64  # the same for every population-based method (hwnas's default)
BUDGET_QUANTILES = (0.02, 0.15, 0.5)
OPTUNA_MAX_EVALS = 3_000  # Optuna's ask/tell costs 10-100 ms per trial, growing with the study
SKIPPED = {"dynast": "not installed: `pip install dynast` pulls fairseq and torchvision, and torchvision "
                     "would replace the pinned torch build; its search drives pymoo's NSGA-II, which is "
                     "benchmarked directly"}


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


# --------------------------------------------------------------------------------- recording
@dataclass
class Trace:
    """Everything a method scored, in order, with the wall time at which each batch was done."""

    genes: list[np.ndarray] = field(default_factory=list)
    acc: list[np.ndarray] = field(default_factory=list)
    lat: list[np.ndarray] = field(default_factory=list)
    done_at: list[tuple[int, float]] = field(default_factory=list)  # (cumulative count, seconds)
    start: float = field(default_factory=time.perf_counter)

    def add(self, genes: np.ndarray, acc: np.ndarray, lat: np.ndarray | None = None) -> None:
        self.genes.append(np.asarray(genes, dtype=np.int8))
        self.acc.append(np.asarray(acc, dtype=np.float64))
        if lat is not None:
            self.lat.append(np.asarray(lat, dtype=np.float64))
        count = (self.done_at[-1][0] if self.done_at else 0) + len(genes)
        self.done_at.append((count, time.perf_counter() - self.start))

    def arrays(self, bench: Bench, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first ``n`` scored (genes, accuracy, latency); latency filled in afterwards if not traced."""
        genes = np.concatenate(self.genes)[:n]
        acc = np.concatenate(self.acc)[:n]
        lat = np.concatenate(self.lat)[:n] if self.lat else bench.latency(genes)
        return genes, acc, lat

    def seconds_at(self, n: int) -> float:
        return next((t for c, t in self.done_at if c >= n), self.done_at[-1][1])


@dataclass
class RunResult:
    method: str
    n: int
    seed: int
    genes: np.ndarray
    acc: np.ndarray
    lat: np.ndarray
    wall_s: float
    note: str = ""


def _result(method: str, n: int, seed: int, bench: Bench, trace: Trace, wall: float | None = None,
            note: str = "") -> RunResult:
    genes, acc, lat = trace.arrays(bench, n)
    return RunResult(method, len(genes), seed, genes, acc, lat, trace.seconds_at(n) if wall is None else wall, note)


# --------------------------------------------------------------------------------- methods
def run_hwnas(bench: Bench, n: int, seed: int) -> RunResult:
    problem = runner.build_problem(bench.scorers, ["accuracy", "latency"], {bench.device: [max(bench.budgets)]})
    res = NSGA2(problem, NSGA2Config(pop_size=POPULATION, n_evaluations=n, seed=seed)).run()
    values = res.objective_values()
    return RunResult("hwnas NSGA-II", n, seed, res.genes, values[:, 0], values[:, 1], res.wall_time_s)


def run_random(bench: Bench, n: int, seed: int) -> RunResult:
    trace = Trace()
    genes = bench.layout.random(n, np.random.default_rng(seed))
    trace.add(genes, bench.accuracy(genes), bench.latency(genes))
    return _result("random search", n, seed, bench, trace)


def run_optuna(bench: Bench, n: int, seed: int) -> Trace:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = max(bench.budgets)
    sampler = optuna.samplers.NSGAIISampler(population_size=POPULATION, seed=seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    cards = [int(c) for c in bench.layout.cardinalities]
    trace = Trace()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        while (trace.done_at[-1][0] if trace.done_at else 0) < n:
            batch = [study.ask() for _ in range(POPULATION)]
            genes = np.array([[t.suggest_int(f"g{j}", 0, c - 1) for j, c in enumerate(cards)] for t in batch],
                             dtype=np.int8)
            acc, lat = bench.accuracy(genes), bench.latency(genes)
            for t, a, l in zip(batch, acc, lat):
                t.set_constraint("latency", float(l) - budget)  # feasible when <= 0
                study.tell(t, [float(a), float(l)])
            trace.add(genes, acc, lat)
    return trace


def run_pymoo(bench: Bench, n: int, seed: int) -> RunResult:
    from pymoo.algorithms.moo.nsga2 import NSGA2 as PymooNSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    budget = max(bench.budgets)
    trace = Trace()

    class NasProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=bench.layout.num_genes, n_obj=2, n_ieq_constr=1, xl=0,
                             xu=bench.layout.cardinalities - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            genes = np.rint(X).astype(np.int8)
            acc, lat = bench.accuracy(genes), bench.latency(genes)
            trace.add(genes, acc, lat)
            out["F"] = np.column_stack([-acc, lat])
            out["G"] = (lat - budget)[:, None]

    algorithm = PymooNSGA2(pop_size=POPULATION, sampling=IntegerRandomSampling(),
                           crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                           mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                           eliminate_duplicates=True)
    trace.start = time.perf_counter()
    minimize(NasProblem(), algorithm, ("n_evals", n), seed=seed, verbose=False)
    return _result("pymoo NSGA-II", n, seed, bench, trace)


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

    def get_efficiency(self, arch: dict) -> float:
        self.efficiency_calls += 1
        return self.scalar.one(self.gene_row(arch))

    def predict_acc(self, archs: list[dict]) -> np.ndarray:
        genes = np.array([self.gene_row(a) for a in archs], dtype=np.int8)
        acc = self.bench.accuracy(genes)
        self.trace.add(genes, acc)
        return acc


def run_ofa(bench: Bench, n: int, seed: int) -> RunResult:
    EvolutionFinder, MobileNetArchEncoder = _import_ofa()
    space = bench.layout.space
    encoder = MobileNetArchEncoder(image_size_list=list(space.resolutions), ks_list=list(space.kernel_sizes),
                                   expand_list=list(space.expand_ratios), depth_list=list(space.depths),
                                   n_stage=space.num_stages)
    trace = Trace()
    adapter = _OfaAdapter(bench, encoder, trace, bench.scalar_latency())
    per_budget = n // len(bench.budgets)
    rounds = math.ceil(per_budget / 100)  # OFA's default population is 100
    population = per_budget // rounds
    random.seed(seed)
    np.random.seed(seed)
    trace.start = time.perf_counter()
    import contextlib
    import io

    for budget in bench.budgets:
        finder = EvolutionFinder(adapter, adapter, population_size=population, max_time_budget=rounds - 1)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every 100 iterations
            finder.run_evolution_search(budget, verbose=False)
    wall = time.perf_counter() - trace.start
    total = trace.done_at[-1][0]
    return _result("once-for-all EvolutionFinder", total, seed, bench, trace, wall,
                   note=f"{len(bench.budgets)} runs x {population} x {rounds}; "
                        f"{adapter.efficiency_calls} get_efficiency calls")


# --------------------------------------------------------------------------------- metrics
def feasible_front(r: RunResult, budget: float) -> np.ndarray:
    ok = r.lat <= budget
    F = np.column_stack([-r.acc[ok], r.lat[ok]])
    return F[pareto_mask(F)] if len(F) else F


def hv_bounds(results: list[RunResult], bench: Bench) -> tuple[np.ndarray, np.ndarray]:
    budget = max(bench.budgets)
    fronts = [f for f in (feasible_front(r, budget) for r in results) if len(f)]
    union = np.concatenate(fronts)
    lower = np.array([union[:, 0].min(), bench.lat_min])
    upper = np.array([union[:, 0].max(), budget])
    return lower, upper


def metrics(r: RunResult, bench: Bench, lower: np.ndarray, upper: np.ndarray) -> dict[str, Any]:
    front = feasible_front(r, max(bench.budgets))
    hv = hypervolume(normalise(front, lower, upper), reference_point(2)) if len(front) else 0.0
    best = {}
    for b in bench.budgets:
        ok = r.lat <= b
        best[f"{b:g}"] = float(r.acc[ok].max()) if ok.any() else None
    return {"method": r.method, "n": r.n, "seed": r.seed, "hypervolume": hv, "front_size": len(front),
            "best_accuracy": best, "wall_s": r.wall_s, "evals_per_s": r.n / r.wall_s if r.wall_s > 0 else None,
            "distinct": int(len(np.unique(bench.layout.canonicalize(r.genes), axis=0))), "note": r.note}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["method"], r["n_budget"]) for r in rows}, key=lambda k: (k[1], METHOD_ORDER.index(k[0])))
    for method, n in keys:
        sel = [r for r in rows if r["method"] == method and r["n_budget"] == n]
        med = lambda xs: float(np.median([x for x in xs if x is not None])) if any(x is not None for x in xs) else None  # noqa: E731
        out.append({"method": method, "n_budget": n, "seeds": len(sel),
                    "evaluations": med([r["n"] for r in sel]),
                    "hypervolume": med([r["hypervolume"] for r in sel]),
                    "best_accuracy": {b: med([r["best_accuracy"][b] for r in sel]) for b in sel[0]["best_accuracy"]},
                    "wall_s": med([r["wall_s"] for r in sel]), "evals_per_s": med([r["evals_per_s"] for r in sel])})
    return out


METHOD_ORDER = ["hwnas NSGA-II", "random search", "Optuna NSGAIISampler", "pymoo NSGA-II",
                "once-for-all EvolutionFinder"]


def format_table(summary: list[dict[str, Any]], budgets: list[float]) -> str:
    head = (f"{'N':>6}  {'method':<30} {'HV':>7} " + " ".join(f"{'acc@' + format(b, '.3g') + 'ms':>12}" for b in budgets)
            + f" {'wall s':>8} {'evals/s':>10}")
    lines = [head, "-" * len(head)]
    for s in summary:
        accs = " ".join(f"{100 * v:>11.2f}%" if v is not None else f"{'-':>12}" for v in s["best_accuracy"].values())
        lines.append(f"{s['n_budget']:>6}  {s['method']:<30} {s['hypervolume']:>7.4f} {accs} "
                     f"{s['wall_s']:>8.3f} {s['evals_per_s']:>10,.0f}")
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
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets, 2 seeds (development)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--optuna-max", type=int, default=OPTUNA_MAX_EVALS,
                    help=f"largest evaluation budget Optuna runs at (default {OPTUNA_MAX_EVALS}; it is slow)")
    ap.add_argument("--out", type=Path, default=RESULTS / "search_benchmark.json")
    args = ap.parse_args(argv)
    budgets_n = (300, 600) if args.quick else (1_000, 3_000, 10_000)
    seeds = list(range(2 if args.quick else args.seeds))
    started = time.time()
    bench = make_bench()
    first_search_s = warm_up(bench)
    print(f"first search in this process (numba kernels loaded or compiled): {first_search_s:.2f} s")
    label = "REAL predictor + table" if bench.kind == "real" else "SYNTHETIC stand-in (no real predictor/table found)"
    print(f"problem: {label}; latency budgets {bench.budgets} ms; population {POPULATION}; seeds {seeds}")

    results: list[tuple[int, RunResult]] = []
    optuna_rate: dict[int, tuple[int, float]] = {}
    for seed in seeds:
        for n in budgets_n:
            for fn in (run_hwnas, run_random, run_pymoo, run_ofa):
                results.append((n, fn(bench, n, seed)))
        optuna_ns = [n for n in budgets_n if n <= args.optuna_max]
        if optuna_ns:
            trace = run_optuna(bench, max(optuna_ns), seed)
            for n in optuna_ns:
                r = _result("Optuna NSGAIISampler", n, seed, bench, trace, note="first n trials of one run")
                results.append((n, r))
            last = trace.done_at[-1]
            optuna_rate[seed] = (last[0], last[1])
        print(f"seed {seed} done ({time.time() - started:.0f} s)", flush=True)

    lower, upper = hv_bounds([r for _, r in results], bench)
    rows = [{**metrics(r, bench, lower, upper), "n_budget": n} for n, r in results]
    summary = summarise(rows)
    print(format_table(summary, bench.budgets))
    tp = throughput(bench, (10_000,) if args.quick else (10_000, 100_000))
    for t in tp:
        print(f"hwnas throughput: {t['evaluations']:,} evaluations, population {t['population']}: "
              f"{t['wall_s']:.3f} s, {t['evals_per_s']:,.0f} candidates/s (median of {t['repeats']}; "
              f"{t['worst_evals_per_s']:,.0f}-{t['best_evals_per_s']:,.0f})")
    speed = predictor_speed(bench, (64, 1024) if args.quick else (64, 1024, 16384))
    for row in speed:
        print(f"accuracy predictor, batch {row['batch']:>6,}: {row['method']:<38} {row['rows_per_s']:>12,.0f} rows/s")
    skipped = dict(SKIPPED)
    not_run = [n for n in budgets_n if n > args.optuna_max]
    if not_run and optuna_rate:
        trials, secs = next(iter(optuna_rate.values()))
        skipped["optuna"] = (f"not run at N = {not_run}: {trials:,} trials took {secs:.0f} s per seed (cost per "
                             f"trial grows with the study); raise --optuna-max to include it")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")

    report = {"problem": {"kind": bench.kind, **bench.info, "device": bench.device, "budgets_ms": bench.budgets,
                          "space": SPACE},
              "settings": {"evaluation_budgets": list(budgets_n), "seeds": seeds, "population": POPULATION,
                           "hypervolume": {"objectives": ["-accuracy", "latency_ms"], "lower": lower.tolist(),
                                           "upper": upper.tolist(), "reference": reference_point(2).tolist(),
                                           "feasible": f"latency <= {max(bench.budgets)} ms"}},
              "summary": summary, "runs": rows, "throughput": tp, "predictor_speed": speed,
              "first_search_s": round(first_search_s, 3), "skipped": skipped,
              "host": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                       "machine": platform.machine()},
              "quick": args.quick, "total_wall_s": round(time.time() - started, 1)}
    atomic_write_json(args.out, report)
    print(f"wrote {args.out} ({report['total_wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
