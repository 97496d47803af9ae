"""What ``hwnas search`` runs: predictors and latency tables -> a :class:`SearchProblem` -> a run folder.

The engine (:mod:`hwnas.search.nsga2`) knows nothing about files, devices or predictors; this module
does the wiring a user asks for on the command line:

* the search space comes from the supernet checkpoint (or ``--space``), the accuracy predictor
  from ``predictors/<space>/accuracy_xgb.json``, and each device's latency table from
  ``latency_tables/<device-slug>/<space>.json`` (or a table path given directly);
* objectives are accuracy (max), one latency per device, parameters and MACs (min); budgets and
  caps are constraints. Latency is looked up once per gene batch even when it is both an
  objective and a constraint (:class:`BatchCache`);
* with several devices, a candidate is kept if it meets *any* device's budget (one search yields
  a pick per device) or, with ``budget_mode="all"``, every budget (one network for all devices);
* a table profiled at only some resolutions restricts the search to those resolutions, so no
  candidate is ever scored by extrapolation; so does an accuracy predictor that covers only some
  (once-for-all's ``acc_predictor.pth``: :func:`load_accuracy_predictor` reads it by content);
* a ``--device`` may also be a folder of once-for-all's ``<r>_lookup_table.yaml`` files;
* objectives that need no predictor (latency, MACs, params) search without one: the records'
  accuracy is then ``None`` and each budget's pick is the subnet with the most MACs under it;
  a MACs/params search needs no device either (no latency table, no budget, no picks);
* every family's space searches alike: genes, MACs and params come from :mod:`hwnas.families`;
* ``precision="int8"`` searches for ONNX Runtime statically quantised models: each device's INT8
  table (``latency_tables/<slug>/<space>.int8.json``) and the INT8 accuracy predictor
  (``predictors/<space>/int8/accuracy_xgb.json``); a table or predictor of another precision is
  refused, and every record carries the precision (:mod:`hwnas.search.precisions` searches
  several precisions and keeps the best per budget).

Outputs (:func:`write_run_folder`): ``front.json`` and ``picks.json`` (lists of
:class:`~hwnas.search.front.FrontRecord` / :class:`~hwnas.search.front.Pick`, what ``hwnas export``
reads), ``front.csv``, ``evaluated.npz`` (:mod:`hwnas.search.evaluated`), ``config.json``,
``pareto.png``; the CLI adds ``log.txt``. :func:`validate_front` re-measures front models with the real supernet and runtime.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence

import numpy as np

from hwnas.arch import Architecture
from hwnas import paths
from hwnas.atomic_io import atomic_write_bytes, atomic_write_json, atomic_write_text
from hwnas.encoding import GeneLayoutBase
from hwnas.errors import ConfigError, HwnasError
from hwnas.families import complexity_counter, gene_layout
from hwnas.search.evaluated import EVALUATED_FILE, Evaluated, write_evaluated
from hwnas.search.front import FrontRecord, Pick, write_records
from hwnas.search.nsga2 import NSGA2, NSGA2Config, SearchResult
from hwnas.search.plot import pareto_png
from hwnas.search.problem import Constraint, Objective, SearchProblem
from hwnas.space import SearchSpace, get_space, space_from_dict

DEFAULT_SUPERNET = paths.DEFAULT_SUPERNET
TABLES_DIR = paths.TABLES_DIR
OBJECTIVES = ("accuracy", "latency", "params", "macs")
OBJECTIVE_ALIASES = {"flops": "macs"}  # the name before MACs were called MACs (old scripts still work)


class AccuracyModel(Protocol):
    def predict(self, genes: np.ndarray) -> np.ndarray: ...


class LatencyModel(Protocol):
    def predict_genes(self, genes: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------- resolving inputs
def default_predictor_path(space: SearchSpace | str, precision: str = "fp32") -> Path:
    return paths.default_predictor_path(get_space(space).name, precision)


def check_precision_of(what: str, path: str | Path, found: str, wanted: str) -> None:
    """Refuse a latency table or accuracy predictor made for another deployment precision: its numbers
    describe another model (an FP32 table times FP32 graphs, not their INT8 quantisation)."""
    if found != wanted:
        fix = ("`hwnas profile --precision int8`" if what == "latency table" else
               "experiments/int8_predictor.py (on `hwnas collect --precision int8`)") if wanted == "int8" else \
              "the FP32 one (drop --precision int8)"
        raise ConfigError(f"{what} {path} is for {found.upper()} models but this search is --precision {wanted}; "
                          f"pass the {wanted.upper()} {what} (made by {fix})")


def predictor_precision(predictor: Any) -> str:
    """The precision a loaded predictor predicts for (its sidecar's ``precision``; FP32 without one,
    e.g. once-for-all's ``acc_predictor.pth``)."""
    meta = getattr(predictor, "meta", None) or getattr(predictor, "meta_", None) or {}
    return str(meta.get("precision", "fp32")) if isinstance(meta, dict) else "fp32"


def resolve_space(supernet: str | Path | None, space: str | None) -> tuple[SearchSpace, Path | None]:
    """The search space and the supernet path actually used (``None`` when there is none).

    ``--space`` alone works without a checkpoint; with both, they must agree. Without either,
    the default checkpoint's metadata names the space.
    """
    if supernet is None and space is not None:
        chosen = get_space(space)
        return chosen, (DEFAULT_SUPERNET if _default_supernet_space() == chosen.name else None)
    path = Path(supernet) if supernet is not None else DEFAULT_SUPERNET
    if not path.is_file():
        if supernet is None:
            raise ConfigError(f"no --space given and the default supernet {path} does not exist; pass "
                              f"--space {paths.DEFAULT_SPACE} (or --supernet PATH, or train one with `hwnas train`)")
        raise ConfigError(f"supernet checkpoint {path} does not exist; check the path, train one with "
                          f"`hwnas train`, or pass --space NAME instead")
    from hwnas.supernet.checkpoint import read_metadata  # lazy: needs safetensors only

    meta = read_metadata(path)
    stored = space_from_dict(json.loads(meta["space"]))  # any family's description
    if space is not None:
        chosen = get_space(space)
    else:
        try:
            chosen = get_space(stored.name)
        except HwnasError:
            chosen = stored
    chosen.check_fingerprint(stored.fingerprint(), f"supernet {path}")
    return chosen, path


def _default_supernet_space() -> str | None:
    """The space named by the default checkpoint, None without one (a ``--space`` search of another
    space must not record the Fashion-MNIST supernet as its own)."""
    if not DEFAULT_SUPERNET.is_file():
        return None
    from hwnas.supernet.checkpoint import read_metadata  # lazy: needs safetensors only

    try:
        return str(json.loads(read_metadata(DEFAULT_SUPERNET)["space"]).get("name"))
    except (HwnasError, KeyError, ValueError, AttributeError):
        return None


def load_accuracy_predictor(path: str | Path, space: SearchSpace) -> AccuracyModel:
    """The accuracy predictor at ``path``: once-for-all's ``acc_predictor.pth`` (a torch file, told
    by its content) as :class:`~hwnas.accuracy.ofa_predictor.OFAAccuracyPredictor`; an hwnas one
    compiled for scoring (no XGBoost or scikit-learn import), the XGBoost estimator only for a model
    the compiled scorer does not take."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"accuracy predictor {path} not found; fit one with "
                          f"`hwnas fit-predictor --space {space.name}`, pass --predictor PATH (once-for-all's "
                          f"acc_predictor.pth works too), or search without one: --objectives latency,macs")
    from hwnas.torch_file import looks_like_torch_file

    if looks_like_torch_file(path):
        from hwnas.accuracy.ofa_predictor import load_ofa_predictor

        return load_ofa_predictor(path, space)
    from hwnas.accuracy.compiled import CompiledPredictor
    from hwnas.accuracy.tree_ensemble import UnsupportedModel

    try:
        return CompiledPredictor.load(path, space)
    except UnsupportedModel:
        from hwnas.accuracy.predictor import AccuracyPredictor

        return AccuracyPredictor.load(path, space)


def load_latency_table(path: str | Path, space: SearchSpace) -> LatencyModel:
    from hwnas.latency.table import LatencyTable

    return LatencyTable.load(path, space)


@dataclass
class LatencySource:
    """One device: its display name, the table file, the loaded table and (if known) its profile."""

    device: str
    table_path: Path
    table: LatencyModel
    profile: Any = None  # DeviceProfile when resolved from a profile (needed to measure)


def _table_device_name(table: Any, path: Path, space: SearchSpace) -> str:
    """Name a device given only by its table: the table's own record, else its folder."""
    meta = getattr(table, "meta", None) or {}
    for key in ("device", "profile"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if isinstance(value, dict) and value.get("name"):
            return str(value["name"])
        if isinstance(value, str) and value:
            return value
    stems = {paths.table_stem(space.name, p) for p in paths.TABLE_PRECISIONS}  # <space>.json, <space>.int8.json
    return path.parent.name if path.stem in stems and path.parent.name else path.stem


def resolve_latency_source(spec: str, space: SearchSpace, precision: str = "fp32") -> LatencySource:
    """``spec`` is a table JSON path, a folder (or file) of once-for-all's ``<r>_lookup_table.yaml``,
    a profile name or a profile YAML path; a profile's table is the one of ``precision``."""
    source = _latency_source(spec, space, precision)
    check_precision_of("latency table", source.table_path, str(getattr(source.table, "precision", "fp32")), precision)
    return source


def _latency_source(spec: str, space: SearchSpace, precision: str) -> LatencySource:
    from hwnas.latency.ofa_table import is_ofa_latency_source, load_ofa_latency_table

    if is_ofa_latency_source(spec):
        table = load_ofa_latency_table(spec, space)
        return LatencySource(str(table.meta["device"]), Path(spec), table)
    if spec.endswith(".json"):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"latency table {path} not found; check the path or give a device profile "
                              f"name (e.g. --device cpu-1thread)")
        table = load_latency_table(path, space)
        return LatencySource(_table_device_name(table, path, space), path, table)
    from hwnas.latency.device import load_device_profile

    profile = load_device_profile(spec)
    path = paths.default_table_path(profile.slug, space.name, precision)
    if not path.is_file():
        flag = "" if precision == "fp32" else f" --precision {precision}"
        raise ConfigError(f"no {precision.upper()} latency table for device {profile.name!r} and space {space.name!r} "
                          f"at {path}; run `hwnas profile --device {spec} --space {space.name}{flag}` first, "
                          f"or pass the table's .json path as --device")
    return LatencySource(profile.name, path, load_latency_table(path, space), profile)


def resolve_latency_sources(specs: Sequence[str], space: SearchSpace, precision: str = "fp32") -> list[LatencySource]:
    sources = [resolve_latency_source(s, space, precision) for s in specs]
    names = [s.device for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"device names must be distinct, got {names}; give each --device once")
    return sources


def profiled_resolutions(space: SearchSpace, sources: Sequence[LatencySource]) -> tuple[int, ...]:
    """Resolutions every table covers (tables may be profiled at a subset of the space's)."""
    allowed = set(space.resolutions)
    for s in sources:
        table_res = getattr(s.table, "resolutions", None)
        if table_res is not None:
            allowed &= {int(r) for r in table_res}
    if not allowed:
        raise ConfigError("the latency tables share no profiled resolution; re-run `hwnas profile` with "
                          "overlapping --resolutions")
    return tuple(r for r in space.resolutions if r in allowed)


# --------------------------------------------------------------------------------- gene plumbing
class GeneMapper:
    """Search on a layout restricted to some resolutions; score with the full space's genes.

    Only the resolution gene differs: restricted index ``i`` maps to the full index of
    ``resolutions[i]``, so predictors and tables built for the full space are used unchanged.
    """

    def __init__(self, space: SearchSpace, resolutions: Sequence[int] | None = None) -> None:
        self.full = gene_layout(space)
        resolutions = tuple(resolutions or space.resolutions)
        self.restricted = (self.full if resolutions == tuple(space.resolutions)
                           else gene_layout(dataclasses.replace(space, resolutions=resolutions)))
        self._res_map = np.array([space.resolutions.index(r) for r in resolutions], dtype=np.int8)
        self.identity = self.restricted is self.full

    def to_full(self, genes: np.ndarray) -> np.ndarray:
        if self.identity:
            return genes
        out = np.array(genes, dtype=np.int8, copy=True)
        col = self.full.resolution_gene
        out[:, col] = self._res_map[out[:, col]]
        return out

    def wrap(self, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        return fn if self.identity else (lambda genes: fn(self.to_full(genes)))


class BatchCache:
    """``fn`` evaluated once per gene batch: a device's latency serves as objective *and* constraint.

    :meth:`SearchProblem.evaluate_full` passes the same array object to every objective and
    constraint of one batch, so identity (with the array kept alive, so its id cannot be reused)
    is a safe and free cache key. ``calls`` counts real evaluations (tests check it).
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.fn = fn
        self.calls = 0
        self._genes: np.ndarray | None = None
        self._value: np.ndarray | None = None

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        if genes is not self._genes:
            self._value = np.asarray(self.fn(genes), dtype=np.float64)
            self._genes = genes
            self.calls += 1
        return self._value


# --------------------------------------------------------------------------------- settings
@dataclass
class SearchSettings:
    """Everything that defines a search run (written to ``config.json``)."""

    predictor: Path | None  # None: objectives that need no predictor (latency, macs, params)
    devices: list[str]
    budgets_ms: list[float]
    supernet: Path | None = None
    space: str | None = None
    objectives: tuple[str, ...] = ("accuracy", "latency")
    evaluations: int = 10_000
    population: int = 64
    params_cap_m: float | None = None
    macs_cap_m: float | None = None
    seed: int = 0
    budget_mode: Literal["any", "all"] = "any"
    precision: str = "fp32"  # the deployed models' precision: its tables and predictor ("int8": quantised)

    def __post_init__(self) -> None:
        self.objectives = parse_objectives(self.objectives)
        paths.check_precision(self.precision)
        if not self.devices and "latency" in self.objectives:
            raise ConfigError("the latency objective needs at least one --device (a profile name such as "
                              "cpu-1thread or a table .json); or search MACs/params only: --objectives macs,params")
        if self.budget_mode not in ("any", "all"):
            raise ConfigError(f"budget mode {self.budget_mode!r} is not 'any' or 'all'")
        for name, cap in (("--params-cap", self.params_cap_m), ("--macs-cap", self.macs_cap_m)):
            if cap is not None and not (math.isfinite(cap) and cap > 0):
                raise ConfigError(f"{name} must be a positive number of millions, got {cap}")
        if self.evaluations < 1 or self.population < 4:
            raise ConfigError(f"--evaluations ({self.evaluations}) must be >= 1 and --population "
                              f"({self.population}) >= 4")

    def budgets_by_device(self, devices: Sequence[str]) -> dict[str, list[float]]:
        """One budget per device, one for all, or (one device) several budgets to pick under; none
        without a device (a MACs/params search)."""
        b = [float(x) for x in self.budgets_ms]
        if not devices:
            if b:
                raise ConfigError("--budget-ms needs a --device whose latency it bounds; drop it, or add --device")
            return {}
        bad = [x for x in b if not (math.isfinite(x) and x > 0)]
        if not b or bad:
            raise ConfigError(f"--budget-ms needs positive numbers of milliseconds, got {self.budgets_ms}")
        if len(b) == len(devices):
            return {d: [x] for d, x in zip(devices, b)}
        if len(devices) == 1:
            return {devices[0]: sorted(b)}
        if len(b) == 1:
            return {d: list(b) for d in devices}
        raise ConfigError(f"{len(devices)} devices but {len(b)} budgets; give one --budget-ms value per "
                          f"device (in --device order) or a single value for all")


def parse_objectives(value: str | Sequence[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(OBJECTIVE_ALIASES.get(n, n) for n in (i.strip().lower() for i in items) if n))
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        raise ConfigError(f"unknown objective(s) {unknown or '(none)'}; choose from {', '.join(OBJECTIVES)}, "
                          f"e.g. --objectives accuracy,latency")
    return names


# --------------------------------------------------------------------------------- the problem
@dataclass
class Scorers:
    """Vectorised scoring functions on *search* genes (restricted layout), shared by problem and report."""

    mapper: GeneMapper
    accuracy: BatchCache | None  # None: no accuracy predictor (a latency/MACs/params search)
    latency: dict[str, BatchCache]
    macs: BatchCache
    params: BatchCache

    @classmethod
    def build(cls, space: SearchSpace, predictor: AccuracyModel | None, sources: Sequence[LatencySource],
              resolutions: Sequence[int] | None = None) -> "Scorers":
        mapper = GeneMapper(space, resolutions)
        counter = complexity_counter(space)
        return cls(mapper=mapper,
                   accuracy=None if predictor is None else BatchCache(mapper.wrap(predictor.predict)),
                   latency={s.device: BatchCache(mapper.wrap(s.table.predict_genes)) for s in sources},
                   macs=BatchCache(mapper.wrap(counter.macs)),
                   params=BatchCache(mapper.wrap(counter.params)))


def _millions(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda genes: np.asarray(fn(genes), dtype=np.float64) / 1e6


def latency_constraints(scorers: Scorers, budgets: dict[str, list[float]]) -> list[Constraint]:
    """One ``latency <= budget`` constraint per device (the largest budget when several are given)."""
    return [Constraint("latency", scorers.latency[d], max(b), unit="ms", context=f"on {d}", option="--budget-ms")
            for d, b in budgets.items()]


def cap_constraints(scorers: Scorers, params_cap_m: float | None, macs_cap_m: float | None) -> list[Constraint]:
    out = []
    if params_cap_m is not None:
        out.append(Constraint("params", _millions(scorers.params), params_cap_m, unit="M", option="--params-cap"))
    if macs_cap_m is not None:
        out.append(Constraint("MACs", _millions(scorers.macs), macs_cap_m, unit="M", option="--macs-cap"))
    return out


def check_budgets(layout: GeneLayoutBase, constraints: Sequence[Constraint], seed: int = 0) -> None:
    """Raise the engine's :class:`ConfigError` for the first budget no subnet meets, device by device."""
    for c in constraints:
        SearchProblem(layout, [Objective("none", lambda g: np.zeros(len(g)))], [c]).check_feasible(seed=seed)


def build_problem(scorers: Scorers, objectives: Sequence[str], budgets: dict[str, list[float]],
                  params_cap_m: float | None = None, macs_cap_m: float | None = None,
                  budget_mode: str = "any", seed: int = 0) -> SearchProblem:
    """The :class:`SearchProblem` of a run; budgets are checked for feasibility first (exit 2 if not)."""
    layout = scorers.mapper.restricted
    per_device = latency_constraints(scorers, budgets)
    caps = cap_constraints(scorers, params_cap_m, macs_cap_m)
    check_budgets(layout, per_device + caps, seed)

    objs: list[Objective] = []
    for name in objectives:
        if name == "accuracy":
            objs.append(Objective("accuracy", scorers.accuracy, "max"))
        elif name == "latency":
            objs.extend(Objective(f"latency_ms@{d}", fn, "min", unit="ms") for d, fn in scorers.latency.items())
        elif name == "params":
            objs.append(Objective("params_m", _millions(scorers.params), "min", unit="M"))
        elif name == "macs":
            objs.append(Objective("macs_m", _millions(scorers.macs), "min", unit="M"))
    if not per_device:
        constraints = []
    elif budget_mode == "all" or len(per_device) == 1:
        constraints = [dataclasses.replace(c, name=f"latency@{d}") if len(per_device) > 1 else c
                       for c, d in zip(per_device, budgets)]
    else:
        constraints = [_any_budget_constraint(scorers, budgets)]
    return SearchProblem(layout, objs, constraints + caps)


def _any_budget_constraint(scorers: Scorers, budgets: dict[str, list[float]]) -> Constraint:
    """``min over devices of latency / budget <= 1``: the candidate serves at least one device."""
    pairs = [(scorers.latency[d], max(b)) for d, b in budgets.items()]

    def ratio(genes: np.ndarray) -> np.ndarray:
        return np.min([fn(genes) / b for fn, b in pairs], axis=0)

    return Constraint("latency/budget (best device)", ratio, 1.0, option="--budget-ms")


# --------------------------------------------------------------------------------- running
def score_result(scorers: Scorers, result: SearchResult) -> dict[str, Any]:
    """Accuracy, per-device latency, MACs and params of every evaluated candidate, reusing the
    values the engine already computed.

    Why: scoring every candidate again (the accuracy predictor above all) repeated work the
    engine had done, and showed as a gap between the command's rate and the engine's
    (experiments/results/search_cli.json). Objectives come back from ``result.F`` exactly (the sign of 'max'
    objectives undone, millions scaled back to units); only quantities that were not objectives
    are computed here.
    """
    genes = result.genes
    values = result.objective_values()
    found = {o.name: values[:, j] for j, o in enumerate(result.problem.objectives)}

    def column(name: str, fn: Callable[[np.ndarray], np.ndarray], scale: float = 1.0) -> np.ndarray:
        return found[name] * scale if name in found else np.asarray(fn(genes), dtype=np.float64)

    accuracy = (np.full(len(genes), np.nan) if scorers.accuracy is None
                else column("accuracy", scorers.accuracy.fn))
    return {"accuracy": accuracy,
            "latency_ms": {d: column(f"latency_ms@{d}", c.fn) for d, c in scorers.latency.items()},
            "macs": np.rint(column("macs_m", scorers.macs.fn, 1e6)).astype(np.int64),
            "params": np.rint(column("params_m", scorers.params.fn, 1e6)).astype(np.int64)}


def compute_picks(ev: Evaluated, budgets: dict[str, list[float]], layout: GeneLayoutBase,
                  precision: str = "fp32") -> list[Pick]:
    """Best predicted accuracy under each budget of each device (ties: lower latency there).

    Without accuracy predictions (all NaN) the pick is the subnet with the most MACs under the
    budget: the largest network that fits, the usual proxy when accuracy is unknown."""
    rank = -ev.macs.astype(np.float64) if np.isnan(ev.accuracy).all() else -ev.accuracy
    rank = np.where(np.isnan(rank), np.inf, rank)  # an unscored row ranks last
    picks = []
    for device, device_budgets in budgets.items():
        lat = ev.latency_ms[device]
        for b in device_budgets:
            best = _best_under(ev.feasible & (lat <= b), rank, lat)
            picks.append(Pick(device, b, None) if best is None
                         else Pick(device, b, ev.record(best, layout, precision), eval_index=best))
    return picks


def _best_under(ok: np.ndarray, rank: np.ndarray, lat: np.ndarray) -> int | None:
    """The first row among ``ok`` of lowest ``rank``, ties broken by lowest ``lat``. Two linear
    scans: sorting every feasible candidate (``lexsort``) was most of a large search's pick time."""
    if not ok.any():
        return None
    masked = np.where(ok, rank, np.inf)
    tied = np.flatnonzero(ok & (masked == masked.min()))
    return int(tied[np.argmin(lat[tied])])


@dataclass
class PreparedSearch:
    """Inputs resolved, problem built and budgets checked: everything that can fail on bad input
    fails here, before a run folder is created."""

    settings: SearchSettings
    space: SearchSpace
    supernet: Path | None
    sources: list[LatencySource]
    budgets: dict[str, list[float]]
    resolutions: tuple[int, ...]
    scorers: Scorers
    problem: SearchProblem
    config: NSGA2Config


@dataclass
class SearchOutcome(PreparedSearch):
    """A prepared search and what running it gave."""

    result: SearchResult
    evaluated: Evaluated
    front: list[FrontRecord]
    picks: list[Pick]
    wall_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> GeneLayoutBase:
        return self.result.problem.layout


def prepare_search(settings: SearchSettings, log: Callable[[str], None] = lambda msg: None) -> PreparedSearch:
    """Resolve space, tables and predictor; build the problem; reject infeasible budgets."""
    space, supernet = resolve_space(settings.supernet, settings.space)
    sources = resolve_latency_sources(settings.devices, space, settings.precision)
    budgets = settings.budgets_by_device([s.device for s in sources])
    predictor = _predictor_for(settings, space, log)
    resolutions = searchable_resolutions(space, sources, predictor)
    if resolutions != tuple(space.resolutions):
        log(f"searching resolutions {list(resolutions)} (covered by every table{' and the predictor' if predictor else ''};"
            f" space has {list(space.resolutions)})")
    scorers = Scorers.build(space, predictor, sources, resolutions)
    problem = build_problem(scorers, settings.objectives, budgets, settings.params_cap_m, settings.macs_cap_m,
                            settings.budget_mode, settings.seed)
    n_eval = max(settings.evaluations, settings.population)
    config = NSGA2Config(pop_size=settings.population, n_evaluations=n_eval, seed=settings.seed)
    config.validate()
    return PreparedSearch(settings, space, supernet, sources, budgets, resolutions, scorers, problem, config)


def _predictor_for(settings: SearchSettings, space: SearchSpace,
                   log: Callable[[str], None]) -> AccuracyModel | None:
    """The accuracy predictor when an objective needs one (None otherwise: not even loaded)."""
    if "accuracy" not in settings.objectives:
        if settings.predictor is not None:
            log(f"not using accuracy predictor {settings.predictor}: no accuracy objective")
        log("no accuracy predictor: records carry no accuracy; each budget's pick is the subnet with the "
            "most MACs under it")
        return None
    if settings.predictor is None:
        raise ConfigError("the accuracy objective needs an accuracy predictor: pass --predictor PATH, or "
                          "search without one: --objectives latency,macs")
    predictor = load_accuracy_predictor(settings.predictor, space)
    check_precision_of("accuracy predictor", settings.predictor, predictor_precision(predictor), settings.precision)
    return predictor


def searchable_resolutions(space: SearchSpace, sources: Sequence[LatencySource],
                           predictor: AccuracyModel | None) -> tuple[int, ...]:
    """Resolutions every table covers and the predictor encodes (once-for-all's MLP knows only some)."""
    allowed = profiled_resolutions(space, sources)
    covered = getattr(predictor, "resolutions", None)
    if covered is None:
        return allowed
    both = tuple(r for r in allowed if r in set(covered))
    if not both:
        raise ConfigError(f"the accuracy predictor covers resolutions {list(covered)} and the latency tables "
                          f"{list(allowed)}: no resolution in common; profile one of the predictor's "
                          f"(e.g. `hwnas profile --space {space.name} --resolutions {covered[-1]}`)")
    return both


def execute_search(prep: PreparedSearch, progress: bool = False,
                   log: Callable[[str], None] = lambda msg: None) -> SearchOutcome:
    """Run NSGA-II, score every evaluated candidate in natural units and pick per device and budget."""
    start = time.perf_counter()
    problem, config = prep.problem, prep.config
    log(f"space {prep.space.name}: device(s) {', '.join(s.device for s in prep.sources)}; objectives "
        f"{', '.join(o.name for o in problem.objectives)}; {config.n_evaluations:,} evaluations, "
        f"population {config.pop_size}, seed {config.seed}")
    result = NSGA2(problem, config).run(progress=progress)
    log(f"search: {result.n_evaluations:,} candidates in {result.wall_time_s:.2f} s "
        f"({result.evaluations_per_s:,.0f}/s), {result.generations} generations, front of {len(result.front)}")

    scores = score_result(prep.scorers, result)
    on_front = np.zeros(len(result.genes), dtype=bool)
    on_front[result.front] = True
    ev = Evaluated(genes=result.genes, violation=result.violation, feasible=result.violation <= 0,
                   on_front=on_front, **scores)
    front = ev.records(result.front, problem.layout, prep.settings.precision)
    picks = compute_picks(ev, prep.budgets, problem.layout, prep.settings.precision)
    prepared = {f.name: getattr(prep, f.name) for f in fields(PreparedSearch)}
    return SearchOutcome(**prepared, result=result, evaluated=ev, front=front, picks=picks,
                         wall_time_s=time.perf_counter() - start)


def run_search(settings: SearchSettings, progress: bool = False,
               log: Callable[[str], None] = lambda msg: None) -> SearchOutcome:
    """:func:`prepare_search` then :func:`execute_search` (library entry point)."""
    return execute_search(prepare_search(settings, log), progress, log)


# --------------------------------------------------------------------------------- outputs
def config_dict(outcome: SearchOutcome) -> dict[str, Any]:
    from hwnas import __version__

    s = outcome.settings
    r = outcome.result
    return {
        "supernet": str(outcome.supernet) if outcome.supernet else None,
        "predictor": str(s.predictor) if s.predictor is not None and "accuracy" in s.objectives else None,
        "space": outcome.space.name,
        "space_fingerprint": outcome.space.fingerprint(),
        "precision": s.precision,
        "devices": [src.device for src in outcome.sources],
        "latency_tables": {src.device: str(src.table_path) for src in outcome.sources},
        "budget_ms": {d: max(b) for d, b in outcome.budgets.items()},
        "pick_budgets_ms": outcome.budgets,
        "budget_mode": s.budget_mode,
        "objectives": list(s.objectives),
        "evaluations": s.evaluations,
        "population": s.population,
        "params_cap_m": s.params_cap_m,
        "macs_cap_m": s.macs_cap_m,
        "resolutions": list(outcome.resolutions),
        "seed": s.seed,
        "hwnas_version": __version__,
        "run": {"evaluated": r.n_evaluations, "generations": r.generations, "front_size": len(r.front),
                "search_wall_s": round(r.wall_time_s, 4), "total_wall_s": round(outcome.wall_time_s, 4),
                "exhausted": r.exhausted},
    }


def arch_fields(layout: GeneLayoutBase) -> list[str]:
    """The architecture fields of ``layout``'s family, as ``front.csv`` names its columns."""
    return [name for name, _, _ in layout.arch_columns()]


def _arch_cells(arch: Any, fields: Sequence[str]) -> list[Any]:
    return ["-".join(map(str, arch[f])) if isinstance(arch[f], (list, tuple)) else arch[f] for f in fields]


def front_csv(front: Sequence[FrontRecord], devices: Sequence[str],
              fields: Sequence[str] = ("kernel", "expand", "depth", "resolution"), with_precision: bool = False) -> str:
    """The front as CSV; ``fields`` are the architecture's (its family's :meth:`arch_columns` names);
    ``with_precision`` adds each record's precision after the rank (a run over several precisions,
    :mod:`hwnas.search.precisions`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = ["precision"] if with_precision else []
    w.writerow(["rank", *extra, "accuracy", *[f"latency_ms[{d}]" for d in devices], "macs", "params", *fields])
    for i, rec in enumerate(front):
        w.writerow([i, *([rec.precision] if with_precision else []),
                    "" if rec.accuracy is None else f"{rec.accuracy:.6f}", *[f"{rec.latency_ms[d]:.6f}" for d in devices],
                    rec.macs, rec.params, *_arch_cells(rec.arch, fields)])
    return buf.getvalue()


def write_run_folder(out_dir: str | Path, outcome: SearchOutcome, plot: bool = True) -> list[Path]:
    """Write every result file of a run (atomic writes); returns the paths written."""
    out_dir = Path(out_dir)
    devices = [s.device for s in outcome.sources]
    written = [
        write_records(out_dir / "front.json", outcome.front),
        atomic_write_text(out_dir / "front.csv", front_csv(outcome.front, devices, arch_fields(outcome.layout))),
        write_records(out_dir / "picks.json", outcome.picks),
        write_evaluated(out_dir / EVALUATED_FILE, outcome.evaluated, outcome.layout),
        atomic_write_json(out_dir / "config.json", config_dict(outcome)),
    ]
    if plot and not np.isnan(outcome.evaluated.accuracy).all():  # no accuracy: nothing to plot against
        title = (f"hwnas search: {outcome.space.name}, {len(outcome.evaluated.accuracy):,} candidates, "
                 f"seed {outcome.settings.seed}")
        written.append(atomic_write_bytes(out_dir / "pareto.png",
                                          pareto_png(outcome.evaluated, outcome.budgets, outcome.picks, title)))
    return written


def format_front(front: Sequence[FrontRecord], devices: Sequence[str], limit: int = 15) -> str:
    """A plain-text table of the front (every ``len/limit``-th row when it is long)."""
    header = f"{'#':>4} {'acc %':>7} " + " ".join(f"{d[:14] + ' ms':>17}" for d in devices) + \
             f" {'MMACs':>8} {'params M':>9}  res  depth"
    lines = [header]
    step = max(1, math.ceil(len(front) / limit))
    for i in range(0, len(front), step):
        rec = front[i]
        lines.append(f"{i:>4} {_percent(rec.accuracy):>7} " +
                     " ".join(f"{rec.latency_ms[d]:>17.3f}" for d in devices) +
                     f" {rec.macs / 1e6:>8.2f} {rec.params / 1e6:>9.3f}  {rec.arch['resolution']:>3}  "
                     f"{'-'.join(map(str, rec.arch['depth']))}" + ("" if rec.precision == "fp32" else f"  {rec.precision}"))
    return "\n".join(lines)


def _percent(accuracy: float | None) -> str:
    return "-" if accuracy is None else f"{100 * accuracy:.2f}"


def format_picks(picks: Sequence[Pick]) -> str:
    lines = []
    for p in picks:
        rec = p.record
        if rec is None:
            lines.append(f"{p.device} <= {p.budget_ms:g} ms: no evaluated candidate meets this budget")
            continue
        at = "" if rec.precision == "fp32" else f" at {rec.precision.upper()}"
        lines.append(f"{p.device} <= {p.budget_ms:g} ms{at}: accuracy {_percent(rec.accuracy)}%, "
                     f"latency {rec.latency_ms[p.device]:.3f} ms, {rec.macs / 1e6:.2f} MMACs, "
                     f"{rec.params / 1e6:.3f} M params, resolution {rec.arch['resolution']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- validation
def pick_validation_rows(n_front: int, k: int) -> list[int]:
    """``k`` front indices spread evenly from most accurate to fastest."""
    if n_front == 0 or k <= 0:
        return []
    k = min(k, n_front)
    return sorted({int(round(x)) for x in np.linspace(0, n_front - 1, k)})


def validate_front(outcome: SearchOutcome, k: int, progress: bool = True,
                   log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Re-evaluate ``k`` front models: true validation accuracy (BN recalibrated) and measured latency.

    Accuracy follows the training recipe stored in the checkpoint (data set, validation split,
    calibration images and seed). Latency is measured as ``hwnas export`` measures: the models'
    ONNX graphs timed together by :func:`hwnas.latency.measure.time_models` with the table's own
    protocol (statistic and burst), beside the table's speed reference. Devices given only by a
    table path are not measured (no profile says how) and are reported as such.
    """
    if outcome.supernet is None:
        raise ConfigError("--validate-front needs the supernet checkpoint; pass --supernet PATH")
    import torch

    from hwnas.data import calibration_subset, load_dataset
    from hwnas.supernet.calibration import evaluate, recalibrate_bn
    from hwnas.supernet.checkpoint import load_supernet

    net, extra = load_supernet(outcome.supernet, outcome.space)
    net.eval()
    train_cfg = extra.get("train_config", {})
    data = load_dataset(train_cfg.get("dataset", "fashion-mnist"), val_size=train_cfg.get("val_size"),
                        seed=train_cfg.get("seed", 0))
    calib = calibration_subset(data.train, int(train_cfg.get("calib_images", 2000)), int(train_cfg.get("seed", 0)))
    skipped = [s.device for s in outcome.sources if s.profile is None]
    if skipped:
        log(f"not measuring {', '.join(skipped)}: given as a table path, no device profile to measure with")

    rows = pick_validation_rows(len(outcome.front), k)
    archs = [Architecture.from_dict(dict(outcome.front[i].arch), outcome.space) for i in rows]
    from tqdm.auto import tqdm

    accuracy = []
    for arch in tqdm(archs, desc="validate", disable=not progress):
        with torch.no_grad():
            sub = net.extract(arch).eval()
            recalibrate_bn(sub, calib, arch.resolution, data.mean, data.std)
            accuracy.append(float(evaluate(sub, data.val, arch.resolution, data.mean, data.std)[0]))
    timed = {s.device: _measure_front(net, archs, s) for s in outcome.sources if s.profile is not None}
    measured = {d: ms for d, (ms, _) in timed.items()}
    results = [{"front_index": i, "arch": dict(outcome.front[i].to_dict()["arch"]),
                "predicted": {"accuracy": outcome.front[i].accuracy, "latency_ms": dict(outcome.front[i].latency_ms)},
                "true": {"accuracy": accuracy[j], "latency_ms": {d: ms[j] for d, ms in measured.items()}}}
               for j, i in enumerate(rows)]
    return {"n": len(results), "split": "val", "models": results, "summary": validation_summary(results),
            "slowdown_since_profiling": {d: slow for d, (_, slow) in timed.items()}, "not_measured": skipped}


def _measure_front(net: Any, archs: Sequence[Architecture], source: LatencySource) -> tuple[list[float], float | None]:
    """Each architecture's latency on ``source``'s device, timed as ``hwnas export`` times models, and
    how much slower the table's speed reference runs now than when profiled (None without one)."""
    from hwnas.latency.block_models import reference_graph, subnet_onnx
    from hwnas.latency.measure import TimingProtocol, make_measurer, single_torch_thread, time_models

    meta = getattr(source.table, "meta", None) or {}
    protocol = TimingProtocol.of_table(meta)
    size = source.profile.batch_size
    models = [subnet_onnx(net, arch, size) for arch in archs]
    ref = meta.get("reference")
    reference = reference_graph(net.space, Architecture.from_dict(ref["arch"], net.space), size) if ref else None
    with single_torch_thread():
        stats = time_models(make_measurer(source.profile), models, protocol=protocol, reference=reference)
    slowdown = stats[-1].value(protocol.statistic) / float(ref["ms"]) if ref else None
    return [st.value(protocol.statistic) for st in stats[:len(models)]], slowdown


def validation_summary(models: list[dict[str, Any]]) -> dict[str, Any]:
    """Predicted vs true (:func:`hwnas.metrics.prediction_agreement`), for accuracy and each device."""
    from hwnas.metrics import prediction_agreement

    summary = {"accuracy": prediction_agreement([m["predicted"]["accuracy"] for m in models],
                                                [m["true"]["accuracy"] for m in models], unit="")}
    devices = {d for m in models for d in m["true"]["latency_ms"]}
    for d in sorted(devices):
        both = [m for m in models if d in m["true"]["latency_ms"]]
        summary[f"latency_ms[{d}]"] = prediction_agreement([m["predicted"]["latency_ms"][d] for m in both],
                                                           [m["true"]["latency_ms"][d] for m in both])
    return summary


def format_validation(report: dict[str, Any]) -> str:
    models = report["models"]
    devices = sorted({d for m in models for d in m["true"]["latency_ms"]})
    header = f"{'front#':>6} {'pred acc':>9} {'true acc':>9} " + " ".join(
        f"{'pred ' + d[:10]:>16} {'meas ' + d[:10]:>16}" for d in devices)
    lines = [header]
    for m in models:
        lines.append(f"{m['front_index']:>6} {100 * m['predicted']['accuracy']:>9.2f} "
                     f"{100 * m['true']['accuracy']:>9.2f} " + " ".join(
                         f"{m['predicted']['latency_ms'][d]:>16.3f} {m['true']['latency_ms'][d]:>16.3f}"
                         for d in devices))
    for key, s in report["summary"].items():
        if s:
            lines.append(f"{key}: MAPE {s['mape_pct']:.1f}%, {s['within10_pct']:.0f}% within +-10%, "
                         f"Kendall tau {s['kendall_tau']:.3f}")
    for device, slowdown in (report.get("slowdown_since_profiling") or {}).items():
        if slowdown is not None:
            lines.append(f"{device}: the table's reference subnet runs {slowdown:.2f}x its profiled latency now "
                         "(machine speed drift since profiling)")
    return "\n".join(lines)
