"""The main job on the embedded default: profile this CPU, search, export, measure.

The quickstart runs the same commands a user would type (``hwnas profile``, ``hwnas search``,
``hwnas export``) into one run folder, so it exercises exactly the documented paths, then prints
one summary table. Shipped artifacts: the Fashion-MNIST supernet and its accuracy predictor.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hwnas.arch import largest_architecture
from hwnas.errors import HwnasError
from hwnas.run_folder import prepare_run_dir, run_logger

REPO_ROOT = Path(__file__).resolve().parents[1]


def shipped(relative: str) -> Path:
    """A shipped artifact: from the working directory if present, else from the repository."""
    for base in (Path.cwd(), REPO_ROOT):
        if (base / relative).exists():
            return base / relative
    raise HwnasError(f"shipped file {relative} is missing; run from a hwnas checkout (git clone) "
                     "or pass the path explicitly")


@dataclass
class QuickstartOptions:
    out: Path = Path("runs/quickstart")
    device: str = "cpu-1thread"
    space: str = "fmnist-mbv3"
    supernet: str = "checkpoints/fmnist-mbv3.safetensors"
    predictor: str = "predictors/fmnist-mbv3/accuracy_xgb.json"
    budget_ms: float | None = None
    evaluations: int = 10_000
    models: int = 4
    validate: int = 20
    seed: int = 0
    overwrite: bool = False
    progress: bool = True


def default_budget(table_path: Path, space: str) -> tuple[float, float, float]:
    """Half-way (geometric mean) between the fastest and the largest subnet: a budget that cuts the
    front in the middle, so the search has to trade accuracy for speed."""
    from hwnas.latency.table import LatencyTable

    table = LatencyTable.load(table_path, space)
    fastest = table.min_latency_ms()
    largest = table.predict(largest_architecture(space))
    return math.sqrt(fastest * largest), fastest, largest


def _step(name: str, argv: list[str], log: Callable[[str], None]) -> None:
    from hwnas.cli import main

    log(f"\n== {name}: hwnas {' '.join(argv)}")
    started = time.time()
    code = main(argv)
    if code != 0:
        raise HwnasError(f"quickstart step '{name}' failed (exit {code}); see the messages above")
    log(f"== {name} done in {time.time() - started:.0f} s")


def run_quickstart(opts: QuickstartOptions) -> dict:
    started = time.time()
    run_dir = prepare_run_dir(opts.out, opts.overwrite)
    log = run_logger(run_dir).info
    supernet, predictor = shipped(opts.supernet), shipped(opts.predictor)
    progress = [] if opts.progress else ["--no-progress"]
    tables = run_dir / "latency_tables"

    from hwnas.latency.device import load_device_profile
    from hwnas.latency.table import table_path

    profile = load_device_profile(opts.device)
    _step("profile this CPU (fast mode)", ["profile", "--device", opts.device, "--space", opts.space, "--fast",
                                            "--validate", str(opts.validate), "--seed", str(opts.seed),
                                            "--out", str(tables), *progress], log)
    table = table_path(tables, profile.slug, opts.space)
    budget = opts.budget_ms
    if budget is None:
        budget, fastest, largest = default_budget(table, opts.space)
        log(f"default budget {budget:.3f} ms (fastest subnet {fastest:.3f} ms, largest {largest:.3f} ms)")
    _step("search", ["search", "--supernet", str(supernet), "--predictor", str(predictor), "--device", str(table),
                     "--budget-ms", f"{budget:.4f}", "--evaluations", str(opts.evaluations),
                     "--seed", str(opts.seed), "--out", str(run_dir / "search"), *progress], log)
    _step("export and measure", ["export", str(run_dir / "search"), "--pick", str(opts.models),
                                 "--out", str(run_dir / "export"), "--measure", opts.device,
                                 "--seed", str(opts.seed), *progress], log)
    summary = json.loads((run_dir / "export" / "summary.json").read_text())
    profile_report = json.loads(table.with_name(f"{opts.space}.report.json").read_text())
    for name in ("pareto.png",):
        shutil.copyfile(run_dir / "search" / name, run_dir / name)
    result = {"run_dir": str(run_dir), "budget_ms": budget, "device": opts.device,
              "profile_validation": profile_report.get("validation", profile_report),
              "models": summary["models"], "latency_agreement": summary.get("latency_agreement"),
              "wall_time_s": round(time.time() - started, 1)}
    from hwnas.atomic_io import atomic_write_json, atomic_write_text

    atomic_write_json(run_dir / "quickstart.json", result)
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
             f"{'err@ref %':>9s} {'MMACs':>7s} {'size KB':>8s}"
    lines = [f"Pareto-front models on {device} (budget {result['budget_ms']:.3f} ms):", header, "-" * len(header)]
    for m in result["models"]:
        pred, meas, at_ref = _latency(m, device)
        fp32 = m.get("fp32") or {}
        lines.append(
            f"{m['name'][:10]:10s} {_pct(m.get('predicted_accuracy')):>9s} {_pct(fp32.get('accuracy')):>9s} "
            f"{_ms(pred):>8s} {_ms(meas):>8s} {_err(pred, meas):>6s} {_err(pred, at_ref):>9s} {m['macs'] / 1e6:7.2f} "
            f"{fp32.get('size_bytes', 0) / 1024:8.0f}")
    agreement = (result.get("latency_agreement") or {}).get(device) or {}
    if "slowdown_since_profiling" in agreement:
        lines.append(f"err@ref: the error if the machine's drift since profiling is read off the table's reference "
                     f"subnet (it runs {agreement['slowdown_since_profiling']:.2f}x its profiled latency now); a "
                     f"diagnostic: one large subnet's ratio need not hold for small ones")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_report(result: dict, device: str) -> str:
    val = result.get("profile_validation") or {}
    return "\n".join([
        "# hwnas quickstart", "",
        f"Device profile `{device}`, budget {result['budget_ms']:.3f} ms, wall time {result['wall_time_s']:.0f} s.", "",
        "![Pareto front](pareto.png)", "",
        "```", summary_table(result, device), "```", "",
        "Latency-table validation (fast mode) on fresh random subnets:", "",
        "```", json.dumps(val, indent=2)[:3000], "```", "",
        "Details: [latency tables](latency_tables/), [search](search/), [export report](export/report.md).", ""])
