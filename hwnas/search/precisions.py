"""One search over several deployment precisions (``hwnas search --precision fp32,int8``): the best
model per budget, whichever precision it runs at.

Why separate searches: an FP32 and an INT8 model of one architecture have different latencies
(the INT8 table) and accuracies (the INT8 predictor), so each precision is searched as a complete
run of its own, with its own tables and predictor, written as an ordinary run folder in
``<out>/<precision>/``. The run folder itself then holds the union, as ``hwnas export`` reads it:

* ``front.json``: the Pareto front of both fronts' records under the search's objectives (a model
  dominated by one of the other precision drops out), each record carrying its precision;
* ``picks.json``: per device and budget the better of the precisions' picks (higher predicted
  accuracy, then lower latency there; without an accuracy objective, more MACs);
* ``front.csv`` (with a precision column after the rank) and ``config.json`` (the first precision's settings,
  plus each precision's own run, predictor and tables under ``precisions``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.atomic_io import atomic_write_json, atomic_write_text
from hwnas.errors import ConfigError
from hwnas.paths import check_precision
from hwnas.search.front import FrontRecord, Pick, write_records
from hwnas.search.nsga2 import pareto_mask
from hwnas.search.runner import (PreparedSearch, SearchOutcome, SearchSettings, arch_fields, config_dict,
                                 default_predictor_path, execute_search, front_csv, prepare_search, resolve_space,
                                 write_run_folder)

Log = Callable[[str], None]


def parse_precisions(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"fp32,int8"`` -> ``("fp32", "int8")``: distinct, each one hwnas deploys at."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(check_precision(i.strip().lower()) for i in items if i.strip()))
    if not names:
        raise ConfigError("--precision needs fp32, int8 or fp32,int8")
    return names


def settings_per_precision(base: SearchSettings, precisions: Sequence[str],
                           predictors: dict[str, Path | None]) -> dict[str, SearchSettings]:
    """One settings value per precision: its own predictor (given, else ``predictors/<space>[/int8]/``)."""
    space, _ = resolve_space(base.supernet, base.space)
    needs = "accuracy" in base.objectives
    return {p: dataclasses.replace(base, precision=p,
                                   predictor=predictors.get(p) or (default_predictor_path(space, p) if needs else None))
            for p in precisions}


@dataclass
class MultiOutcome:
    """Each precision's search and the union the run folder holds."""

    outcomes: dict[str, SearchOutcome]
    front: list[FrontRecord]
    picks: list[Pick]

    @property
    def devices(self) -> list[str]:
        return [s.device for s in next(iter(self.outcomes.values())).sources]


def prepare_all(settings: dict[str, SearchSettings], log: Log = lambda msg: None) -> dict[str, PreparedSearch]:
    """Prepare every precision's search (bad input fails here, before any folder is touched); the
    devices must name the same machines in every precision."""
    prepared = {p: prepare_search(s, log=lambda msg, p=p: log(f"[{p}] {msg}")) for p, s in settings.items()}
    names = {p: [src.device for src in prep.sources] for p, prep in prepared.items()}
    if len({tuple(n) for n in names.values()}) > 1:
        raise ConfigError(f"the precisions' tables name different devices ({names}); give each --device as a "
                          "profile name so every precision finds its own table for it")
    return prepared


def execute_all(prepared: dict[str, PreparedSearch], progress: bool = False, log: Log = lambda msg: None) -> MultiOutcome:
    outcomes = {p: execute_search(prep, progress, lambda msg, p=p: log(f"[{p}] {msg}")) for p, prep in prepared.items()}
    objectives = next(iter(prepared.values())).settings.objectives
    front = merge_fronts([o.front for o in outcomes.values()], objectives)
    picks = merge_picks([o.picks for o in outcomes.values()])
    return MultiOutcome(outcomes, front, picks)


def _objective_values(rec: FrontRecord, objectives: Sequence[str]) -> list[float]:
    """What the search minimises, for one record (accuracy negated)."""
    values: list[float] = []
    for name in objectives:
        if name == "accuracy":
            values.append(-rec.accuracy if rec.accuracy is not None else math.inf)
        elif name == "latency":
            values.extend(rec.latency_ms[d] for d in sorted(rec.latency_ms))
        elif name in ("macs", "params"):
            values.append(float(getattr(rec, name)))
    return values


def merge_fronts(fronts: Sequence[Sequence[FrontRecord]], objectives: Sequence[str]) -> list[FrontRecord]:
    """The non-dominated records of several fronts, ordered as a search orders its front (accuracy
    descending, then latency), by the search engine's own non-dominance test."""
    records = [r for front in fronts for r in front]
    if not records:
        return []
    mask = pareto_mask(np.array([_objective_values(r, objectives) for r in records], dtype=np.float64))
    kept = [r for r, keep in zip(records, mask) if keep]
    return sorted(kept, key=lambda r: (-(r.accuracy if r.accuracy is not None else -math.inf),
                                       sum(r.latency_ms.values()), -r.macs))


def merge_picks(pick_lists: Sequence[Sequence[Pick]]) -> list[Pick]:
    """Per device and budget (the same order in every list), the best of the precisions' picks."""
    merged = []
    for candidates in zip(*pick_lists):
        found = [p for p in candidates if p.record is not None]
        if not found:
            merged.append(candidates[0])
            continue
        merged.append(min(found, key=lambda p: (_pick_rank(p.record), p.record.latency_ms[p.device])))
    return merged


def _pick_rank(rec: FrontRecord) -> float:
    return -rec.accuracy if rec.accuracy is not None else -float(rec.macs)


def write_multi_run(out_dir: str | Path, outcome: MultiOutcome, plot: bool = True) -> list[Path]:
    """Each precision's run folder in ``<out>/<precision>/``, the union in ``<out>/``."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    configs: dict[str, Any] = {}
    for precision, single in outcome.outcomes.items():
        written += write_run_folder(out_dir / precision, single, plot=plot)
        config = config_dict(single)
        configs[precision] = {"run": precision, "predictor": config["predictor"],
                              "latency_tables": config["latency_tables"], "front_size": len(single.front)}
    first_outcome = next(iter(outcome.outcomes.values()))
    first = config_dict(first_outcome)
    config = {**first, "precision": ",".join(outcome.outcomes), "precisions": configs}
    written += [write_records(out_dir / "front.json", outcome.front),
                atomic_write_text(out_dir / "front.csv", front_csv(outcome.front, outcome.devices, arch_fields(first_outcome.layout),
                                                                with_precision=True)),
                write_records(out_dir / "picks.json", outcome.picks),
                atomic_write_json(out_dir / "config.json", config)]
    return written
