"""The main job on the embedded default: profile this CPU, search, retrain the best find, export, measure.

The quickstart calls the library functions behind ``hwnas profile``, ``hwnas search`` and
``hwnas export`` (:class:`~hwnas.latency.profiler.Profiler`, :func:`~hwnas.search.runner.run_search`,
:func:`~hwnas.export.pipeline.export_run`) into one run folder, so it exercises exactly the documented
paths, then prints one summary table. By default it searches under the latency of the hand-designed
references (:mod:`hwnas.export.references`), timed on this machine, and retrains its most accurate
pick from scratch as those references were trained (:mod:`hwnas.export.subnet_training`), so the
comparison it prints is like for like. Shipped artifacts: the Fashion-MNIST supernet, its accuracy
predictor and the references' file.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hwnas import paths
from hwnas.families import largest_architecture
from hwnas.errors import HwnasError
from hwnas.run_folder import prepare_run_dir, run_logger

REPO_ROOT = Path(__file__).resolve().parents[1]


def shipped(relative: str | Path) -> Path:
    """A shipped artifact: from the working directory if present, else from the repository."""
    for base in (Path.cwd(), REPO_ROOT):
        if (base / relative).exists():
            return base / relative
    raise HwnasError(f"shipped file {relative} is missing; run from a hwnas checkout (git clone) "
                     "or pass the path explicitly (hwnas quickstart --supernet / --predictor)")


DEFAULT_SPACE = paths.DEFAULT_SPACE
#: The hand-designed references' training budget (experiments/results/reference_models.json: 18 epochs),
#: so the retrained models and the references they are compared with are trained alike.
RETRAIN_EPOCHS = 18


@dataclass(frozen=True)
class QuickstartOptions:
    out: Path = paths.QUICKSTART_DIR
    device: str = "cpu-1thread"
    space: str = DEFAULT_SPACE
    supernet: Path | None = None  # None: the space's shipped checkpoint (checkpoints/<space>.safetensors)
    predictor: Path | None = None  # None: the space's shipped predictor (predictors/<space>/accuracy_xgb.json)
    references: Path | None = paths.REFERENCE_MODELS  # None: no hand-designed references
    budget_ms: float | None = None
    evaluations: int = 10_000
    models: int = 4
    validate: int = 20
    # The references' accuracies are on the whole 10,000-image test set, so the exported models' are
    # too: 1,000 images would leave each about +-0.9 points of sampling error (a few seconds more).
    eval_images: int = 10_000
    # >0: each exported model is first fine-tuned that many epochs from the supernet's weights
    # (hwnas export --finetune-epochs); minutes per model on a CPU.
    finetune_epochs: int = 0
    # >0: the exported models are first retrained from scratch that many epochs (hwnas export
    # --retrain-epochs). Retrained as the references are, the search's pick at the small CNN's latency
    # beat it on each of four seeds where the supernet's own weights did not (18 epochs: experiments/
    # results/paired_comparison.json); the supernet's weights are what the predictor scores, not the best
    # a found architecture reaches.
    retrain_epochs: int = RETRAIN_EPOCHS
    # Only the most accurate models are retrained (None: all): the one a user deploys, and the slowest to train.
    train_top: int | None = 1
    seed: int = 0
    overwrite: bool = False
    # Continue an interrupted run in ``out``: the profile resumes (or reuses its finished table), the
    # search reruns (seconds; same table and seed, same front) and the export reuses finished fine-tunes.
    resume: bool = False
    progress: bool = True

    @property
    def retrain(self) -> int:
        """The retraining epochs that apply: none when the models are fine-tuned instead."""
        return 0 if self.finetune_epochs else self.retrain_epochs

    def supernet_path(self) -> Path:
        return shipped(self.supernet or paths.shipped_supernet_path(self.space))

    def predictor_path(self) -> Path:
        return shipped(self.predictor or paths.default_predictor_path(self.space))


def default_budget(table: Any, space: str, references: Sequence[dict] = ()) -> tuple[float, str]:
    """The budget (ms) a quickstart searches under when none is given, and why.

    With hand-designed references timed on this machine (``references``: rows of
    :func:`~hwnas.export.references.compare_with_references`), the slowest one's latency: the question the
    quickstart answers is whether the search finds a network as fast as the best hand-designed one and
    more accurate, and the front it returns then spans from the fastest subnet up to there. Without
    references (or with a budget the space cannot meet), half the largest subnet's latency: the search
    has to at least halve the biggest network's time. Half the largest put ``fmnist-resvgg``'s top model
    at 0.376 ms on cpu-1thread, past the small CNN's 0.342 ms (``experiments/results/quickstart.json``
    before retraining), so it could not be compared with it at equal latency.
    """
    fastest = table.min_latency_ms()
    largest = table.predict(largest_architecture(space))
    timed = [r for r in references if not r.get("exported")]
    if timed:
        slowest = max(timed, key=lambda r: r["latency_ms_now"])
        if fastest <= slowest["latency_ms_now"]:
            return slowest["latency_ms_now"], (f"the slowest hand-designed reference's latency ({slowest['model']}, "
                                               f"timed now); fastest subnet {fastest:.3f} ms, largest {largest:.3f} ms")
    return largest / 2, f"half the largest subnet's latency; fastest subnet {fastest:.3f} ms, largest {largest:.3f} ms"


def _timed(name: str, log: Callable[[str], None], step: Callable[[], Any]) -> Any:
    log(f"\n== {name}")
    started = time.time()
    out = step()
    log(f"== {name} done in {time.time() - started:.0f} s")
    return out


def _profile(opts: QuickstartOptions, tables: Path) -> Any:
    from hwnas.latency.device import load_device_profile
    from hwnas.latency.profiler import Profiler, ProfileOptions
    from hwnas.space import get_space

    options = ProfileOptions(validate=opts.validate, seed=opts.seed, fast=True)
    return Profiler(get_space(opts.space), load_device_profile(opts.device), tables, options,
                    progress=opts.progress).run()


def _search(opts: QuickstartOptions, table_path: Path, budget: float, out: Path, log: Callable[[str], None]) -> Any:
    from hwnas.search import runner

    settings = runner.SearchSettings(predictor=opts.predictor_path(), devices=[str(table_path)],
                                     budgets_ms=[budget], supernet=opts.supernet_path(),
                                     evaluations=opts.evaluations, seed=opts.seed)
    outcome = runner.run_search(settings, progress=opts.progress, log=log)
    runner.write_run_folder(prepare_run_dir(out, overwrite=True), outcome)
    devices = [s.device for s in outcome.sources]
    log(f"Pareto front ({len(outcome.front)} networks):\n" + runner.format_front(outcome.front, devices))
    return outcome


def export_settings(opts: QuickstartOptions, out: Path) -> Any:
    """What the quickstart's export does; building it checks the training options (ExportSettings)."""
    from hwnas.export.settings import ExportSettings

    return ExportSettings(out=out, pick=str(opts.models), measure=(opts.device,), eval_images=opts.eval_images,
                          finetune_epochs=opts.finetune_epochs, retrain_epochs=opts.retrain, train_top=opts.train_top,
                          seed=opts.seed, overwrite=opts.resume, progress=opts.progress)


def _export(opts: QuickstartOptions, search_dir: Path, out: Path) -> Any:
    from hwnas.export.pipeline import export_run

    outcome = export_run(search_dir, export_settings(opts, out))
    if outcome.failed:
        raise HwnasError(f"quickstart export failed for {', '.join(r.name for r in outcome.failed)}: "
                         f"{outcome.failed[0].error}")
    return outcome


def _references(opts: QuickstartOptions, run_dir: Path, exported: Any, profile: Any,
                log: Callable[[str], None]) -> list[dict]:
    """The hand-designed references (if shipped) timed beside the exported FP32 models, which of those
    beat them, and ``measured.png``: measured accuracy against measured latency, references marked."""
    from hwnas.export.references import ReferencePoint, compare_with_references, load_references
    from hwnas.export.report import plot_report
    from hwnas.space import get_space

    rows: list[dict] = []
    path = _reference_file(opts)
    if path is None:
        log("no hand-designed reference models to compare with (python experiments/reference_models.py makes them)")
    else:
        channels = get_space(opts.space).in_channels
        files = [(r.name, r.fp32.accuracy, (Path(r.fp32.path).read_bytes(),
                                            (profile.batch_size, channels, r.arch["resolution"], r.arch["resolution"])))
                 for r in exported.results if r.fp32 is not None]
        rows = compare_with_references(load_references(path), files, profile)
    marks = [ReferencePoint(row["model"], row["test_accuracy"], {profile.name: row["latency_ms_now"]})
             for row in rows if not row.get("exported")]
    plot_report(run_dir / "measured.png", exported.results, exported.devices, marks)
    return rows


def _default_budget(opts: QuickstartOptions, run_dir: Path, profiled: Any, profile: Any,
                    log: Callable[[str], None]) -> float:
    """:func:`default_budget`, decided once per run folder (``budget.json``): a resumed run keeps it, so its
    search returns the same front and its finished retraining is reused rather than refused."""
    from hwnas.atomic_io import atomic_write_json
    from hwnas.export.references import compare_with_references, load_references

    saved = run_dir / "budget.json"
    if opts.resume and saved.exists():
        decided = json.loads(saved.read_text())
        log(f"default budget {decided['budget_ms']:.3f} ms, as decided before the interruption: {decided['why']}")
        return float(decided["budget_ms"])
    path = _reference_file(opts)
    timed = [] if path is None else _timed("time the hand-designed references", log,
                                           lambda: compare_with_references(load_references(path), [], profile))
    budget, why = default_budget(profiled.table, opts.space, timed)
    atomic_write_json(saved, {"budget_ms": budget, "why": why,
                              "references_ms": {r["model"]: r["latency_ms_now"] for r in timed}})
    log(f"default budget {budget:.3f} ms: {why}")
    return budget


def _reference_file(opts: QuickstartOptions) -> Path | None:
    """The hand-designed references' file, if there is one to compare with."""
    try:
        return shipped(opts.references) if opts.references is not None else None
    except HwnasError:
        return None


def training_stage(opts: QuickstartOptions) -> str:
    """What the export stage trains first, for the log ('' when nothing)."""
    epochs, how = ((opts.finetune_epochs, "fine-tune") if opts.finetune_epochs else
                   (opts.retrain, "retrain from scratch") if opts.retrain else (0, ""))
    if not epochs:
        return ""
    which = "each model" if opts.train_top is None else f"the top {opts.train_top} model{'s' if opts.train_top > 1 else ''}"
    return f"{how} {which} ({epochs} epochs), "


def run_folder(opts: QuickstartOptions) -> Path:
    """``opts.out`` for a new run (refusing a non-empty one without ``overwrite``), or kept as it is to resume."""
    if opts.resume and opts.out.is_dir():
        return opts.out
    return prepare_run_dir(opts.out, opts.overwrite)


def run_quickstart(opts: QuickstartOptions) -> dict:
    """Profile, search, export and measure into ``opts.out``; returns what ``quickstart.json`` holds."""
    from hwnas.export.report import latency_agreement
    from hwnas.latency.device import load_device_profile

    started = time.time()
    export_settings(opts, opts.out / "export")  # bad training options fail now, not after profiling
    run_dir = run_folder(opts)
    log = run_logger(run_dir).info
    profile = load_device_profile(opts.device)
    opts.supernet_path(), opts.predictor_path()  # a missing file fails now, not after profiling
    profiled = _timed("profile this CPU (fast mode)", log, lambda: _profile(opts, run_dir / "latency_tables"))
    budget = opts.budget_ms if opts.budget_ms is not None else _default_budget(opts, run_dir, profiled, profile, log)
    _timed("search", log, lambda: _search(opts, profiled.table_path, budget, run_dir / "search", log))
    stage = f"{training_stage(opts)}export and measure"
    exported = _timed(stage, log, lambda: _export(opts, run_dir / "search", run_dir / "export"))
    shutil.copyfile(run_dir / "search" / "pareto.png", run_dir / "pareto.png")
    references = _timed("compare with hand-designed references", log,
                        lambda: _references(opts, run_dir, exported, profile, log))
    result = {"run_dir": str(run_dir), "budget_ms": budget, "device": opts.device, "space": opts.space,
              "finetune_epochs": opts.finetune_epochs,
              "retrain_epochs": opts.retrain, "train_top": opts.train_top,
              "profile_validation": profiled.report.get("validation", profiled.report),
              "models": [asdict(r) for r in exported.results],
              "latency_agreement": {d: latency_agreement(exported.results, d) for d in exported.devices},
              "references": references,
              "wall_time_s": round(time.time() - started, 1)}
    from hwnas.atomic_io import atomic_write_json, atomic_write_text

    atomic_write_json(run_dir / "quickstart.json", json.loads(json.dumps(result, default=str)))
    atomic_write_text(run_dir / "report.md", render_report(result, profile.name))
    log("\n" + summary_table(result, profile.name))
    log(f"\nquickstart finished in {result['wall_time_s']:.0f} s. Report: {run_dir / 'report.md'}  "
        f"models: {run_dir / 'export'}")
    return result


def _latency(model: dict, device: str) -> tuple[float | None, float | None, float | None]:
    """(predicted, measured, measured at profiling-time machine speed) in ms."""
    predicted = (model.get("predicted_latency_ms") or {})
    pred = predicted.get(device, next(iter(predicted.values()), None))
    fp32 = model.get("fp32") or {}
    stats = (fp32.get("latency") or {})
    meas = stats.get(device, next(iter(stats.values()), None))
    if meas is None:
        return pred, None, None
    return pred, meas.get("ms", meas["median_ms"]), meas.get("ms_at_profile_speed")


def _err(pred: float | None, meas: float | None) -> str:
    return "" if pred is None or meas is None else f"{100 * (pred - meas) / meas:+.1f}"


def summary_table(result: dict, device: str) -> str:
    header = f"{'model':10s} {'pred acc':>9s} {'test acc':>9s} {'pred ms':>8s} {'meas ms':>8s} {'err %':>6s} " \
             f"{'err@ref %':>9s} {'MMACs':>7s} {'size KB':>8s}  weights"
    lines = [f"Pareto-front models on {device} (budget {result['budget_ms']:.3f} ms):", header,
             "-" * len(header)]
    for m in result["models"]:
        pred, meas, at_ref = _latency(m, device)
        fp32 = m.get("fp32") or {}
        lines.append(
            f"{m['name'][:10]:10s} {_pct(m.get('predicted_accuracy')):>9s} {_pct(fp32.get('accuracy')):>9s} "
            f"{_ms(pred):>8s} {_ms(meas):>8s} {_err(pred, meas):>6s} {_err(pred, at_ref):>9s} {m['macs'] / 1e6:7.2f} "
            f"{fp32.get('size_bytes', 0) / 1024:8.0f}  {weights(m)}")
    if any(weights(m) != "supernet" for m in result["models"]):
        lines.append("pred acc: the predictor's score of the supernet's shared weights; a retrained or fine-tuned "
                     "model's test acc is of its own weights")
    agreement = (result.get("latency_agreement") or {}).get(device) or {}
    if "slowdown_since_profiling" in agreement:
        lines.append(f"err@ref: the error if the machine's drift since profiling is read off the table's reference "
                     f"subnet (it runs {agreement['slowdown_since_profiling']:.2f}x its profiled latency now); a "
                     f"diagnostic: one large subnet's ratio need not hold for small ones")
    return "\n".join(lines + reference_lines(result.get("references") or []))


def weights(model: dict) -> str:
    """Whose weights an exported model has: the supernet's, or its own after retraining or fine-tuning."""
    from hwnas.export.report import training_of

    trained = training_of(model)
    if not trained:
        return "supernet"
    return f"{'retrained' if trained.get('mode') == 'retrain' else 'fine-tuned'} {trained['epochs']} ep"


def reference_lines(rows: list[dict]) -> list[str]:
    """Which exported model beats each hand-designed reference (measured accuracy and latency)."""
    refs = [r for r in rows if not r.get("exported")]
    if not refs:
        return []
    lines = ["", "Hand-designed references, timed now beside the exported models (one interleaved group):"]
    for r in refs:
        verdict = ("beaten by " + ", ".join(r["beaten_by"]) if r["beaten_by"]
                   else "NOT beaten: no exported model is as fast and more accurate")
        lines.append(f"{r['model'][:10]:10s} test acc {_pct(r['test_accuracy']):>7s}  {_ms(r['latency_ms_now'])} ms  "
                     f"{verdict}")
    return lines


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_report(result: dict, device: str) -> str:
    val = result.get("profile_validation") or {}
    return "\n".join([
        "# hwnas quickstart", "",
        f"Device profile `{device}`, budget {result['budget_ms']:.3f} ms, wall time {result['wall_time_s']:.0f} s.", "",
        "![Pareto front (predicted)](pareto.png)", "",
        "![Exported models and hand-designed references (measured)](measured.png)", "",
        "```", summary_table(result, device), "```", "",
        "Latency-table validation (fast mode) on fresh random subnets:", "",
        "```", json.dumps(val, indent=2)[:3000], "```", "",
        "Details: [latency tables](latency_tables/), [search](search/), [export report](export/report.md).", ""])
