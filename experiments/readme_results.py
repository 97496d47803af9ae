"""The README's "Results" section, generated from the committed result files.

Every number in that section is read here from a file under ``experiments/results/`` (or the
shipped table/predictor report it names), formatted, and written between the marker comments
``<!-- results:begin -->`` and ``<!-- results:end -->`` of README.md. Nothing is typed in by hand,
so the README cannot drift from its files: ``tests/test_readme.py`` fails when the README's section
differs from what this script renders.

Run: ``python experiments/readme_results.py`` (rewrite the section) or ``--check`` (exit 1 and
say which lines differ).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any, Callable

from hwnas.atomic_io import read_jsonl
from hwnas.latency.measure import MIN_MEASURE_SECONDS
from hwnas.supernet.checkpoint import file_sha256

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
README = REPO / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
OURS = "hwnas NSGA-II"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _pct(x: float, digits: int = 0) -> str:
    return f"{x:.{digits}f} %"


def _rate(per_s: float) -> str:
    """Candidates or rows per second, in k or M."""
    return f"{per_s / 1e6:.2f} M" if per_s >= 1e6 else f"{per_s / 1e3:.0f}k"


def _previous_supernet(sha256: str | None) -> str:
    """A note when a result was measured on another supernet than the shipped checkpoint (results that
    take longer to regenerate than one session may lag a retrained checkpoint; say so, never hide it)."""
    shipped = file_sha256(REPO / "checkpoints" / "fmnist-mbv3.safetensors")
    if sha256 is None or sha256 == shipped:
        return ""
    return f" (measured on the previous supernet, sha256 {sha256[:8]}…, not yet rerun on the shipped one)"


# --------------------------------------------------------------------------------- main table rows
Row = tuple[str, str, str]  # what, result, file


def training_row(root: Path) -> Row:
    log = read_jsonl(root / "train_fmnist" / "train_log.jsonl")
    last = log[-1]
    return (f"`fmnist-mbv3` supernet, {last['epoch']} epochs sandwich training on 2 CPU cores ({last['elapsed_s'] / 60:.0f} min)",
            f"val acc largest {100 * last['val_acc_largest']:.1f} %, smallest {100 * last['val_acc_smallest']:.1f} %",
            "`train_fmnist/`")


def train_speed_row(root: Path) -> Row:
    d = _load(root / "train_speed.json")
    rows = {r["option"]: r for r in d["options"]}
    shown = ", ".join(f"{name} {r['speedup_vs_shipped']:.2f}x" for name, r in rows.items() if name != d["baseline"])
    base = rows[d["baseline"]]
    return (f"supernet training step vs the shipped recipe (NCHW fp32, batch {base['batch_size']}, "
            f"{base['threads']} threads; median of {base['rounds']} interleaved rounds, load average "
            f"{d['machine']['loadavg_before'][0]:.1f}–{d['machine']['loadavg_after'][0]:.1f})",
            f"{shown} (goal {d['target_speedup']:g}x)", "`train_speed.json`")


def collect_speed_row(root: Path) -> Row:
    d = _load(root / "collect_speed.json")
    st = d["settings"]
    return (f"accuracy collection, {st['subnets']} subnets, {st['val_images']} validation + {st['calib_images']} "
            f"calibration images, {st['threads']} threads (load average {d['machine']['loadavg_before'][0]:.1f})",
            f"{d['cached']['subnets_per_s']:.2f} subnets/s (`hwnas collect`) vs {d['plain']['subnets_per_s']:.2f} "
            f"whole-network path ({d['speedup']:.2f}x), accuracies equal (max difference "
            f"{d['max_abs_accuracy_difference']:g}); goal {d['target_subnets_per_s']:g}/s", "`collect_speed.json`")


def supernet_quality_row(root: Path) -> Row:
    d = _load(root / "supernet_quality.json")
    acc = {r["subnet"]: r["supernet_test_accuracy"] for r in d["rows"]}
    randoms = [v for k, v in acc.items() if k.startswith("random")]
    unmet = [k for k, c in d["thresholds"].items() if not c["met"]]
    verdict = "thresholds met" if not unmet else "below the goal (largest >= 93.0 %, smallest >= 90.5 %)"
    return (f"`fmnist-mbv3` supernet on the 10k test set (BN recalibrated), {d['supernet']}",
            f"largest {100 * acc['largest']:.2f} %, smallest {100 * acc['smallest']:.2f} %, "
            f"{len(randoms)} random {100 * min(randoms):.1f}-{100 * max(randoms):.1f} %: {verdict}",
            "`supernet_quality.json`")


def ofa_parity_row(root: Path) -> Row:
    d = _load(root / "ofa_parity.json")
    return (f"OFA parity (random weights, {d['subnets']} subnets, both key layouts)",
            f"max abs diff {d['max_abs_diff']:.1e} (test tolerance {d['tolerance_in_test']:g})", "`ofa_parity.json`")


def _validation(v: dict[str, Any], spearman: bool = True) -> str:
    out = (f"{v['within10_pct']:.0f} % within ±10 %, {v['within5_pct']:.0f} % within ±5 %, "
           f"MAPE {v['mape_pct']:.1f} %")
    return out + (f", Spearman {v['spearman']:.3f}" if spearman else "")


def latency_rows(root: Path) -> list[Row]:
    one = _load(root / "latency_cpu-1thread.json")
    plain = one["validation"]["lut_sum"]
    edge = _load(REPO / "latency_tables" / "edge-agent" / "fmnist-mbv3.report.json")["validation"]["calibrated"]
    agree = _load(root / "deployment_agreement.json")
    table = agree["tables"][0]
    return [
        (f"latency table cpu-1thread (1 pinned thread), {one['validation']['calibrated']['n']} fresh subnets",
         f"{_validation(one['validation']['calibrated'])} (plain block sum: {plain['within10_pct']:.0f} % within ±10 %, "
         f"{plain['bias_pct']:+.0f} % bias); profiled in {one['profile_seconds']:.0f} s", "`latency_cpu-1thread.json`"),
        *[(f"latency table {name}, {d['validation']['calibrated']['n']} fresh subnets",
           _validation(d["validation"]["calibrated"], spearman=False), f"`latency_{name}.json`")
          for name, d in [("cpu-all", _load(root / "latency_cpu-all.json"))]],
        (f"latency table edge-agent (through `hwnas agent serve` on loopback), {edge['n']} fresh subnets",
         _validation(edge, spearman=False), "`latency_tables/edge-agent/`"),
        (f"the cpu-1thread table vs {agree['n']} other fresh subnets timed later in groups of {agree['group']}, "
         "as `hwnas export` times models",
         f"{table['within10_pct']:.0f} % within ±10 %, {table['within5_pct']:.0f} % within ±5 %, "
         f"Spearman {table['spearman']:.3f}", "`deployment_agreement.json`"),
        ("batch latency prediction", f"{_rate(min(t['per_s'] for t in one['throughput']))} candidates/s",
         "`latency_cpu-1thread.json`"),
    ]


def ofa_table_rows(root: Path) -> list[Row]:
    """once-for-all spaces' shipped tables (their validation reports), and how repeatable one timing is."""
    rows = []
    for space in ("ofa-mbv3-w1.0", "ofa-proxyless-w1.3", "ofa-resnet50"):
        for device in ("cpu-1thread", "cpu-all"):
            report_file = REPO / "latency_tables" / device / f"{space}.report.json"
            if not report_file.exists():
                continue
            report = _load(report_file)
            v = report["validation"]["calibrated"]
            n_res = len(_load(report_file.with_name(space + ".json"))["resolutions"])
            sec = report["seconds"]
            wall = (f"profiled in {sec['this_run_wall'] / 60:.1f} min wall" if not sec.get("passes_reused_from_checkpoint")
                    else f"resumed profile: {sec['this_run_wall'] / 60:.1f} min wall for the last "
                         f"{sec['passes_timed_this_run']} of {sec['passes_timed_this_run'] + sec['passes_reused_from_checkpoint']} passes")
            rows.append((f"latency table {device}, `{space}` ({n_res} resolutions), {v['n']} fresh subnets",
                         f"{_validation(v)}; {wall}",
                         f"`latency_tables/{device}/{space}.report.json`"))
    rep_file = root / "latency_repeatability_cpu-1thread_ofa-mbv3-w1.0.json"
    if rep_file.exists():
        d = _load(rep_file)
        runs = ", ".join(f"{m['within10_pct']:.0f} %" for m in d["runs"])
        cell = (f"table vs {len(d['runs'])} independent re-timings: {runs} within ±10 %; one measurement's spread "
                f"σ {100 * d['noise']['sigma_log_single']:.1f} %, so a perfect table would score "
                f"{d['noise']['perfect_predictor_within10_pct']:.0f} %")
        if "runs_rescaled" in d:
            rescaled = ", ".join(f"{m['within10_pct']:.0f} %" for m in d["runs_rescaled"])
            cell += f"; rescaled by the speed reference timed in the same passes: {rescaled}"
        rows.append((f"repeatability of the `ofa-mbv3-w1.0` table's {d['n']} validation subnets (load average "
                     f"{d['loadavg_before_after'][0]:g})", cell, f"`{rep_file.name}`"))
    return rows


def gpu_rows(root: Path) -> list[Row]:
    """GPU tables (torch-cuda, fp16, CUDA graphs) and exported models timed beside their predictions
    (``bash experiments/cuda_tables.sh`` on a machine with an NVIDIA GPU)."""
    rows = []
    for device in ("cuda-b1", "cuda-b64"):
        report_file = REPO / "latency_tables" / device / "fmnist-mbv3.report.json"
        if not report_file.exists():
            continue
        report = _load(report_file)
        v = report["validation"]["calibrated"]
        rows.append((f"latency table {device} ({report['runtime']['gpu_name']}, fp16, batch "
                     f"{report['protocol']['batch_size']}), {v['n']} fresh subnets",
                     f"{_validation(v)}; profiled in {report['seconds']['this_run_wall']:.0f} s",
                     f"`latency_tables/{device}/fmnist-mbv3.report.json`"))
    export_file = root / "cuda_export.json"
    if export_file.exists():
        agree = _load(export_file)["latency_agreement"]
        cell = "; ".join(f"{d}: {a['within10_pct']:.0f} % within ±10 %, MAPE {a['mape_pct']:.1f} %, Kendall τ "
                         f"{a['kendall_tau']:.2f}" for d, a in agree.items())
        n = min(a["n"] for a in agree.values())
        rows.append((f"{n} exported front models timed on the GPU (BN-folded, as exported) vs the GPU tables",
                     cell, "`cuda_export.json`"))
    return rows


def int8_rows(root: Path) -> list[Row]:
    """The INT8 table's validation, and (once collected) the INT8 predictor choice and the budgets table."""
    report = _load(REPO / "latency_tables" / "cpu-1thread" / "fmnist-mbv3.int8.report.json")
    ratios = report.get("speedup_vs_fp32", {}).get("ratios", [])
    spread = (f"; INT8 speed-up over FP32 (FP32/INT8 latency) per block type {min(r['median'] for r in ratios):.2f}x to "
              f"{max(r['median'] for r in ratios):.2f}x (medians; under 1x INT8 is slower)" if ratios else "")
    rows: list[Row] = [(f"INT8 latency table cpu-1thread (QDQ per-channel), {report['validation']['calibrated']['n']} "
                        "fresh quantised subnets", _validation(report["validation"]["calibrated"]) + spread,
                        "`latency_tables/cpu-1thread/fmnist-mbv3.int8.report.json`")]
    if (root / "int8_predictor.json").exists():
        d = _load(root / "int8_predictor.json")
        taus = ", ".join(f"{k} {c['kendall_tau']:.3f}" for k, c in d["candidates"].items())
        rows.append((f"INT8 accuracy predictor, {d['n_heldout']} held-out of {d['n_subnets']} quantised subnets "
                     f"(Kendall τ vs INT8 labels)", f"{taus}; shipped: {d['best']}; measured drop "
                     f"{100 * d['measured_drop']['mean']:.2f} ± {100 * d['measured_drop']['std']:.2f} points",
                     "`int8_predictor.json`"))
    if (root / "int8_budgets.json").exists():
        d = _load(root / "int8_budgets.json")
        cells = []
        for row in d["rows"]:
            parts = [f"{p.upper()} {100 * row[p]['measured']['accuracy']:.1f} % / {row[p]['measured']['latency_ms']:.3f} ms"
                     for p in ("fp32", "int8") if row.get(p) and row[p]["measured"]["accuracy"] is not None]
            cells.append(f"{row['budget_ms']:.3f} ms: " + (", ".join(parts) or "no pick"))
        agreement = d.get("latency_agreement") or {}
        if agreement.get("slowdown_since_profiling"):
            cells.append(f"predicted latency {agreement['bias_pct']:+.0f} % off the measured (mean); the table's reference "
                         f"subnet ran {agreement['slowdown_since_profiling']:.2f}x slower than when the table was "
                         "profiled, so compare FP32 with INT8 within a row (timed in the same passes), not with the "
                         "budget")
        rows.append((f"best FP32 vs best INT8 model under {len(d['rows'])} budgets on {d['device']} "
                     "(measured test accuracy / latency)", "; ".join(cells), "`int8_budgets.json`"))
    return rows


def ceiling_text(c: dict) -> str:
    """The noise ceiling in words: measured with both noise sources, or an upper bound without the
    validation-sampling noise (repeat sets collected before the halves were recorded)."""
    lo, hi = c["tau_analytic_interval"]
    if c.get("noise_var_validation") is None:
        return (f"at most {c['tau_simulated']:.3f} (calibration noise only, {c['n']} repeats; validation-sampling "
                f"noise unmeasured)")
    return (f"{c['tau_simulated']:.3f} simulated / {c['tau_analytic']:.3f} Gaussian, calibration and "
            f"validation-sampling noise both measured on {c['n']} repeated subnets (90 % bootstrap interval "
            f"{lo:.2f}–{hi:.2f}); two repeat runs agree to τ {c['tau_between_repeats']:.3f}"
            + ("" if c.get("tau_calibration_only") is None else
               f"; {c['tau_calibration_only']:.3f} if the validation images' sampling error were learnable "
               "(calibration noise only)"))


def _above_ceiling(tau: float, c: dict) -> str:
    """Say so when a measured held-out tau passes the ceiling: its independence assumption fails."""
    if tau <= c["tau_simulated"]:
        return ""
    return (f". The shipped predictor's held-out τ ({tau:.3f}) is above it, so its noise is not independent across subnets: they share weights and are "
            "scored on the same validation images, so part of that sampling error is alike for alike subnets and "
            "learnable")


def predictor_rows(root: Path) -> list[Row]:
    meta = _load(REPO / "predictors" / "fmnist-mbv3" / "accuracy_xgb.meta.json")
    hold = meta["metrics"]["holdout"]
    ceiling = _load(root / "noise_ceiling.json")
    bench = _load(root / "predictor_benchmark.json")
    curve = bench["learning_curve"]
    sizes = sorted({r["train_size"] for r in curve})
    names = {"xgboost": "XGBoost", "mlp": "MLP", "ridge": "ridge"}
    parts = []
    for model, label in names.items():
        taus = {r["train_size"]: r["kendall_tau"] for r in curve if r["model"] == model}
        parts.append(f"{label} " + " / ".join(f"{taus[s]:.2f}" for s in sizes))
    goal = bench["goal"]
    encodings = ", ".join(f"{e['encoding']} {e['kendall_tau']:.3f}" for e in bench["encodings"])
    rows = [
        (f"`fmnist-mbv3` accuracy predictor, trained on {meta['metrics']['n_train']}, held-out {hold['n']}",
         f"Kendall τ {hold['kendall_tau']:.3f}" + _previous_supernet(meta["training_data"].get("supernet_sha256")),
         "`predictors/fmnist-mbv3/accuracy_xgb.meta.json`"),
        ("noise ceiling: τ of a perfect predictor against one label (`hwnas/accuracy/label_noise.py`)",
         ceiling_text(ceiling) + _above_ceiling(hold["kendall_tau"], ceiling)
         + _previous_supernet(ceiling.get("supernet_sha256")), "`noise_ceiling.json`"),
        (f"learning curve, Kendall τ at {' / '.join(str(s) for s in sizes)} subnets ({bench['seeds']} seeds, fixed "
         f"held-out {bench['n_test']}; every model {bench['trials']} Optuna trials × {bench['folds']}-fold CV, same "
         "features)",
         ", ".join(parts) + f"; plain MACs τ {bench['macs_floor']['kendall_tau']:.2f}; goal τ ≥ "
         f"{goal['target_tau_at_1000']:.3f} at 1000 {'met' if goal['met'] else 'not met'}"
         + ("" if "target_vs_calibration_only" not in goal else
            f" (against the calibration-only ceiling: τ ≥ {goal['target_vs_calibration_only']:.3f}, "
            f"{'met' if goal['met_vs_calibration_only'] else 'not met'})")
         + f"; features: {bench['features']}; XGBoost encodings at "
         f"{sizes[-1]}: " + encodings + f" ({bench['feature_decision']})"
         + _previous_supernet(bench.get("supernet_sha256")),
         "`predictor_benchmark.json`, `predictor_learning_curve.png`"),
    ]
    proxy_file = root / "proxy_signal.json"
    if proxy_file.exists():
        d = _load(proxy_file)
        proxy, cheap, pred = d["signals"]
        rows.append((f"training-free proxy (supernet loss on {d['images']} training images after BN recalibration) "
                     f"vs a label of the same cost ({d['images']} validation images) vs the predictor, ranking "
                     f"{d['n']} subnets' full-validation labels",
                     f"Kendall τ {proxy['kendall_tau']:.2f} / {cheap['kendall_tau']:.2f} / {pred['kendall_tau']:.2f}; "
                     f"{proxy['seconds_per_subnet']:.2f} s per subnet for the first two, "
                     f"{pred['seconds_per_subnet'] * 1e6:.1f} µs for the predictor; "
                     + ("kept as a feature" if d["kept"] else "not kept as a feature")
                     + _previous_supernet(d.get("supernet_sha256")), "`proxy_signal.json`"))
    if bench.get("tree_caps"):
        cells = "; ".join(f"{r['cap']}: {r['kendall_tau']:.3f} / {r['trees']:.0f} / {_rate(r['predict_rows_per_s'])}"
                          for r in bench["tree_caps"])
        rows.append((f"XGBoost boosting-round cap at {sizes[-1]} subnets (tuned under each cap; the search scores "
                     "every candidate with every tree)",
                     f"cap: τ / trees used / rows per s in 100k-row batches: {cells}; chosen: "
                     f"{bench['tree_cap_decision']['reason']}", "`predictor_benchmark.json`"))
    return rows


def search_cli_row(root: Path) -> Row:
    d = _load(root / "search_cli.json")
    return (f"`hwnas search` as a user times it ({d['large'] // 1000}k minus {d['small'] // 1000}k evaluations, "
            f"median of {d['repeats']}, pinned to one core; load average {d['loadavg_before'][0]:.1f}"
            + (f"; shipped predictor {d['predictor']['trees']} trees of depth {d['predictor']['max_depth']}"
               if "predictor" in d else "") + ")",
            f"{_rate(d['marginal_candidates_per_cpu_s'])} candidates per CPU second (engine alone, same run: "
            f"{_rate(d['engine_marginal_candidates_per_cpu_s'])}); wall clock {_rate(d['marginal_candidates_per_s'])}/s"
            f"{' while other processes shared the core' if d['loadavg_before'][0] >= 1.0 else ''}; goal 100k/s "
            f"{'met' if d['marginal_candidates_per_s'] >= 100_000 else 'not met'}", "`search_cli.json`")


def export_form_row(root: Path) -> Row:
    d = _load(root / "export_form_latency.json")
    r = d["ratio_deployed_over_table"]
    return (f"exported form (dynamic batch) vs the tables' graph form, {d['n']} subnets, one interleaved run "
            f"({d['device']})", f"deployed / table latency median {r['median']:.3f} (range {r['min']:.2f}–{r['max']:.2f})",
            "`export_form_latency.json`")


def ofa_search_row(root: Path) -> Row:
    d = _load(root / "ofa_search_speed.json")
    runs = ", ".join(f"population {r['population']}, {r['evaluations'] // 1000}k: "
                     f"{_rate(r['search_candidates_per_s_median'])}/s" for r in d["runs"])
    return (f"search with once-for-all's MLP predictor (published shape) and a 25-resolution YAML table "
            f"(median of {d['repeats']}; load average {d['loadavg_before'][0]:.1f})",
            f"{runs}; the predictor alone {_rate(d['predictor_rows_per_s_100k_batch'])} rows/s",
            "`ofa_search_speed.json`")


def speed_rows(root: Path) -> list[Row]:
    d = _load(root / "search_benchmark.json")
    load = d["host"]["loadavg_end"][0]  # measured just before the run ended, after these timings
    tp = d["throughput"]
    by_pop: dict[int, list[str]] = {}
    for t in sorted(tp, key=lambda t: (t["population"], t["evaluations"])):
        by_pop.setdefault(t["population"], []).append(f"{_rate(t['evals_per_s'])}/s at {t['evaluations'] // 1000}k")
    rows = [(f"search throughput, end to end (median of {tp[0]['repeats']} runs; shared 2-core machine, 1-minute "
             f"load average {load:.1f} at the end)", "; ".join(f"population {p}: " + ", ".join(v) for p, v in by_pop.items()),
             "`search_benchmark.json` (`throughput`)")]
    speed = d["predictor_speed"]
    if speed:
        cells = []
        for batch in sorted({r["batch"] for r in speed}):
            sel = [r for r in speed if r["batch"] == batch]
            ours = next(r for r in sel if r["method"].startswith("compiled"))
            xgb = " / ".join(_rate(r["rows_per_s"]) for r in sel if r is not ours)
            cells.append(f"batch {batch:,}: {_rate(ours['rows_per_s'])} vs {xgb}")
        rows.append(("accuracy predictor scoring (rows/s), compiled kernel vs XGBoost `inplace_predict` "
                     "(1 / 2 threads), same model", "; ".join(cells), "`search_benchmark.json` (`predictor_speed`)"))
    return rows


def quickstart_row(root: Path) -> Row:
    from hwnas.quickstart import weights

    d = _load(root / "quickstart.json")
    device = d["device"]
    models = [m for m in d["models"] if m["status"] == "ok"]
    errors = sorted(100 * (m["predicted_latency_ms"][device] / m["fp32"]["latency"][device]["ms"] - 1) for m in models)
    agree = d["latency_agreement"][device]
    trained = [m for m in models if m.get("trained")]
    training = "".join(f", {m['trained']['train_seconds']:.0f} s of it training {m['name']} ({weights(m)})"
                       for m in trained)
    accuracies = ", ".join(f"{m['name']} {100 * m['fp32']['accuracy']:.2f} % ({weights(m)})" for m in models)
    return ("quickstart end to end (fast-mode table; `hwnas quickstart`)",
            f"{d['wall_time_s']:.0f} s on 2 cores{training}; budget {d['budget_ms']:.3f} ms; {len(models)} models "
            f"exported and checked against PyTorch, 10k test set: {accuracies}; predicted vs "
            f"measured latency {errors[0]:+.1f} % … {errors[-1]:+.1f} %, {round(agree['within10_pct'] * agree['n'] / 100)} "
            f"of {int(agree['n'])} within ±10 %" + _reference_verdicts(d.get("references") or []),
            "`quickstart.json`, `quickstart_log.txt`")


# plain-family spaces trained here: space -> (training-run folder, supernet-quality file) under results/
PLAIN_RESULTS = {"fmnist-cnn": ("train_fmnist_cnn", "supernet_quality_cnn.json"),
                 "fmnist-vgg": ("train_fmnist_vgg", "supernet_quality_vgg.json"),
                 "fmnist-resvgg": ("train_fmnist_resvgg", "supernet_quality_resvgg.json")}


# fmnist-resvgg's whole training runs, in the order tried: (recipe, run folder, quality file). Each run
# is scored on the same subnets (supernet_quality.py's fixed random ones), so the rows compare recipes.
# The 30-epoch checkpoint is in git: git show f28b4c5:checkpoints/fmnist-resvgg.safetensors >
# runs/fmnist-resvgg-30ep.safetensors, then the command in supernet_quality_resvgg_30ep.json.
RESVGG_RECIPES = [
    ("30 epochs, 1 random subnet per step", "train_fmnist_resvgg_30ep", "supernet_quality_resvgg_30ep.json"),
    ("40 epochs, 2 random subnets per step (shipped)", "train_fmnist_resvgg", "supernet_quality_resvgg.json"),
]


def recipe_row(root: Path) -> Row | None:
    """The fmnist-resvgg recipes tried as whole runs, side by side on the same test subnets."""
    cells, files = [], []
    for label, run, quality_file in RESVGG_RECIPES:
        if not (root / run / "train_log.jsonl").exists() or not (root / quality_file).exists():
            continue
        last = read_jsonl(root / run / "train_log.jsonl")[-1]
        acc = {r["subnet"]: 100 * r["supernet_test_accuracy"] for r in _load(root / quality_file)["rows"]}
        randoms = " / ".join(f"{v:.2f}" for k, v in acc.items() if k.startswith("random"))
        cells.append(f"{label}: {last['elapsed_s'] / 60:.0f} min, largest {acc['largest']:.2f} %, smallest "
                     f"{acc['smallest']:.2f} %, random {randoms} %")
        files += [f"`{run}/`", f"`{quality_file}`"]
    if len(cells) < 2:
        return None
    return ("`fmnist-resvgg` training recipes tried as whole runs on 2 CPU cores (10k test set, BN recalibrated, "
            "the same subnets)", "; ".join(cells), ", ".join(files))


def reproduction_row(root: Path) -> Row | None:
    """The default checkpoint's committed command rerun from scratch: its wall time and quality differences."""
    quality, run = root / "supernet_quality_resvgg_repro.json", root / "train_fmnist_resvgg_repro"
    if not quality.exists() or not (run / "train_log.jsonl").exists():
        return None
    rep = _load(quality)["reproduction"]
    minutes = read_jsonl(run / "train_log.jsonl")[-1]["elapsed_s"] / 60
    diffs = ", ".join(f"{k} {100 * v:+.2f}" for k, v in rep["differences"].items())
    verdict = "within" if rep["within_tolerance"] else "NOT within"
    return ("`hwnas train` rerun of the default checkpoint's committed command (`train_fmnist_resvgg/command.txt`), "
            "scored on the same test subnets",
            f"{minutes:.0f} min on 2 CPU cores, shared with test and CI runs (`command.txt`); rerun minus shipped (points): {diffs}: {verdict} "
            f"±{100 * rep['tolerance']:.1f}", "`train_fmnist_resvgg_repro/`, `supernet_quality_resvgg_repro.json`")


def standalone_row(root: Path) -> Row | None:
    """Each fmnist-resvgg test subnet in the supernet beside the same network trained alone."""
    path = root / "supernet_quality_resvgg_standalone.json"
    if not path.exists():
        return None
    d = _load(path)
    epochs = d["rows"][0]["standalone"]["epochs"]
    cells = [f"{r['subnet']} {100 * r['supernet_test_accuracy']:.2f} % vs {100 * r['standalone']['test_accuracy']:.2f} % "
             f"({100 * r['supernet_minus_standalone']:+.2f})" for r in d["rows"]]
    return (f"`fmnist-resvgg` subnets in the supernet vs each trained alone from scratch ({epochs} epochs, the "
            f"references' budget; 10k test set)", "; ".join(cells), "`supernet_quality_resvgg_standalone.json`")


FINETUNE_RESULTS = ("finetune_front.json", "finetune_front_18ep.json", "finetune_front_A_seeds23.json")


def finetune_row(root: Path, name: str) -> Row | None:
    """Searched fmnist-resvgg subnets before and after fine-tuning, timed beside the references."""
    path = root / name
    if not path.exists():
        return None
    d = _load(path)
    epochs = d.get("epochs") or d["command"].split("--epochs ")[1].split()[0]
    what = "front models" if d.get("run") else "subnets"
    cells = [f"{r['model']} ({r['latency_ms_now']:.3f} ms) {100 * r['supernet_test_accuracy']:.2f} -> "
             f"{100 * r['tuned_test_accuracy']:.2f} %{_alone_cell(r)}"
             for r in sorted(d["rows"], key=lambda r: r["latency_ms_now"])]
    refs = [f"{r['model']} ({100 * r['test_accuracy']:.2f} %, {r['latency_ms_now']:.3f} ms{_superseded(root, r)}) "
            f"beaten by {len(r['beaten_by'])}" for r in d["references"]]
    alone = " and trained alone from scratch as long as the references" if any("alone" in r for r in d["rows"]) else ""
    return (f"`{d['space']}` {what} fine-tuned {epochs} epochs from the supernet (distilled from its largest "
            f"subnet){alone}; 10k test set, timed with the references", "; ".join(cells + refs), f"`{name}`")


def _superseded(root: Path, reference: dict) -> str:
    """A note for a reference point an older result file copied before the shipped references' file was
    regenerated with another accuracy (the file's own accuracy now), else nothing."""
    path = root / "reference_models.json"
    if not path.exists():
        return ""
    now = next((m for m in _load(path)["models"] if m["model"] == reference["model"]), None)
    if now is None or round(now["test_accuracy"], 4) == round(reference["test_accuracy"], 4):
        return ""
    return f"; reference_models.json as it was then, {100 * now['test_accuracy']:.2f} % since regenerated"


def _alone_cell(row: dict) -> str:
    """A fine-tuned row's standalone accuracies, one per training seed."""
    runs = row.get("alone") or []
    return (", alone " + " / ".join(f"{100 * a['test_accuracy']:.2f}" for a in runs)
            + f" % (seed {' / '.join(str(a['seed']) for a in runs)})") if runs else ""


def reference_spread_row(root: Path) -> Row | None:
    """The references retrained with other seeds (same split and recipe): how far their accuracy moves."""
    files = _reference_files(root)
    runs = [_load(path) for path in files]
    if len(runs) < 2:
        return None
    cells = [f"{name}: " + " / ".join(f"{100 * _reference(run, name)['test_accuracy']:.2f}" for run in runs)
             + f" % (seed {' / '.join(str(run.get('seed', 0)) for run in runs)})" for name in ("mlp", "small-cnn")]
    return ("hand-designed references retrained with another seed (same split, recipe and epochs; 10k test set)",
            "; ".join(cells), ", ".join(f"`{p.name}`" for p in files))


def seed_comparison_row(root: Path, arch: str = "A", reference: str = "small-cnn") -> Row | None:
    """The search's pick ``arch`` trained alone against ``reference`` over every seed in the result files
    (same split, recipe and epochs): each one's mean and sample standard deviation, and which seeds each
    of them won."""
    import statistics

    arch_runs = {a["seed"]: a["test_accuracy"] for name in FINETUNE_RESULTS if (root / name).exists()
                 for row in _load(root / name)["rows"] if row["model"] == arch for a in row.get("alone") or []}
    files = _reference_files(root)
    ref_runs = {run.get("seed", 0): _reference(run, reference)["test_accuracy"] for run in map(_load, files)
                if run.get("epochs") == 18}
    if len(arch_runs) < 3 or len(ref_runs) < 3:
        return None

    def summary(runs: dict[int, float]) -> str:
        values = [100 * runs[seed] for seed in sorted(runs)]
        return (f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} % over seeds "
                f"{', '.join(map(str, sorted(runs)))} ({' / '.join(f'{v:.2f}' for v in values)})")

    both = sorted(set(arch_runs) & set(ref_runs))
    wins = sum(arch_runs[seed] > ref_runs[seed] for seed in both)
    return (f"subnet {arch} (the search's pick at the small CNN's latency) against {reference}, each trained alone "
            "from scratch for 18 epochs per seed (same split and recipe; 10k test set; mean ± sample sd)",
            f"{arch} {summary(arch_runs)}; {reference} {summary(ref_runs)}; {arch} more accurate on {wins} of the "
            f"{len(both)} seeds both ran",
            ", ".join(f"`{name}`" for name in FINETUNE_RESULTS[1:] if (root / name).exists())
            + ", " + ", ".join(f"`{f.name}`" for f in files))


# The quickstart's retrained pick and the references trained as long, per training budget: (quickstart
# summary, references' file, the command that wrote the summary; each copied from its run folder).
RETRAIN_BUDGETS = [
    ("quickstart.json", "reference_models.json", "hwnas quickstart --overwrite"),
    ("quickstart_retrain36.json", "reference_models_36ep.json",
     "hwnas quickstart --out runs/qs36 --retrain-epochs 36"),
]


def retrain_budget_row(root: Path, reference: str = "small-cnn") -> Row | None:
    """The quickstart's retrained pick against ``reference`` at each training budget both were trained
    for: whether more epochs separate them. A budget whose two files disagree on the epochs is left out."""
    cells, sources = [], []
    for summary_name, reference_name, command in RETRAIN_BUDGETS:
        if not (root / summary_name).exists() or not (root / reference_name).exists():
            continue
        references = _load(root / reference_name)
        picks = [m for m in _load(root / summary_name)["models"] if m.get("trained")]
        if len(picks) != 1 or picks[0]["trained"]["epochs"] != references["epochs"]:
            continue
        pick, ref = picks[0], _reference(references, reference)
        ours, theirs = 100 * pick["fp32"]["accuracy"], 100 * ref["test_accuracy"]
        cells.append(f"{references['epochs']} epochs: {pick['name']} {ours:.2f} % vs {reference} {theirs:.2f} % "
                     f"({ours - theirs:+.2f})")
        sources.append(f"`{summary_name}` (`{command}`), `{reference_name}`")
    if len(cells) < 2:
        return None
    return (f"the quickstart's retrained pick (seed 0, 2 threads) against {reference} trained as long (seed 0), per "
            "training budget (10k test set)", "; ".join(cells), "; ".join(sources))


def paired_comparison_row(root: Path) -> Row | None:
    """The pick against the small CNN on the same test images: each pair's difference with the test set's
    95 % interval and McNemar's p, and per epoch budget the seeds' mean difference (training noise in)."""
    path = root / "paired_comparison.json"
    if not path.exists():
        return None
    d = _load(path)
    cells = [f"{r['label']}: {100 * r['accuracy_a']:.2f} vs {100 * r['accuracy_b']:.2f} % "
             f"({_points(r['difference'])}, 95 % CI {_points(r['ci95'][0])} … {_points(r['ci95'][1])}; "
             f"{r['only_a']} vs {r['only_b']} images only one gets right, McNemar p {r['p_value']:.2f})" for r in d["rows"]]
    cells += [f"{s['epochs']} epochs over {s['seeds']} seeds: mean {_points(s['mean_difference'])} (t 95 % CI "
              f"{_points(s['ci95'][0])} … {_points(s['ci95'][1])}), A ahead on {s['a_ahead']}" for s in d["seed_summary"]]
    return ("the search's pick (A) against small-cnn on the same 10k test images (difference in points, A minus "
            "small-cnn)", "; ".join(cells), "`paired_comparison.json`")


def _points(fraction: float) -> str:
    return f"{100 * fraction:+.2f}"


def _reference_files(root: Path) -> list[Path]:
    """The references' result files: the shipped one (seed 0) and each retrained with another seed."""
    shipped = [root / "reference_models.json"] if (root / "reference_models.json").exists() else []
    return shipped + sorted(root.glob("reference_models_seed*.json"))


def _reference(run: dict, name: str) -> dict:
    return next(m for m in run["models"] if m["model"] == name)


def cnn_rows(root: Path) -> list[Row]:
    """The plain-CNN family (fmnist-cnn, fmnist-vgg): each space's training run and quality, and all
    families' fronts timed together with the hand-designed references (once those result files exist)."""
    rows: list[Row] = []
    for space, (run, quality_file) in PLAIN_RESULTS.items():
        rows += _plain_space_rows(root, space, run, quality_file)
    rows += [row for row in (recipe_row(root), reproduction_row(root), standalone_row(root),
                                       *(finetune_row(root, name) for name in FINETUNE_RESULTS),
                                       reference_spread_row(root), seed_comparison_row(root),
                                       retrain_budget_row(root), paired_comparison_row(root)) if row]
    sensitivity = depth_sensitivity_row(root)
    rows += [sensitivity] if sensitivity else []
    fronts = root / "family_fronts.json"
    if fronts.exists():
        d = _load(fronts)
        refs = [r for r in d["rows"] if not r.get("exported")]
        cells = []
        for ref in refs:
            by_family: dict[str, int] = {}
            for name in ref["beaten_by"] or []:
                family = name.split("/")[0]
                by_family[family] = by_family.get(family, 0) + 1
            families = sorted({r["model"].split("/")[0] for r in d["rows"] if r.get("exported")})
            cells.append(f"{ref['model']} ({100 * ref['test_accuracy']:.1f} %, {ref['latency_ms_now']:.3f} ms"
                         f"{_superseded(root, ref)}) beaten by "
                         + ", ".join(f"{by_family.get(f, 0)} `{f}`" for f in families) + " models")
        rows.append(("exported fronts of the searched spaces and the hand-designed references, timed together on "
                     f"{d['device']} (measured test accuracy)", "; ".join(cells), "`family_fronts.json`, `family_fronts.png`"))
    return rows


def depth_sensitivity_row(root: Path) -> Row | None:
    """What one elastic step from the largest subnet costs each plain supernet (identity skips or not)."""
    path = root / "depth_sensitivity.json"
    if not path.exists():
        return None
    cells = []
    for label, d in _load(path)["supernets"].items():
        drops = {kind: [-100 * r["minus_largest"] for r in d["rows"] if kind in r["subnet"]]
                 for kind in ("layer fewer", "width step less")}
        acc = {r["subnet"]: 100 * r["test_accuracy"] for r in d["rows"]}
        cells.append(f"`{label}` ({d['epochs']} epochs): largest {acc['largest']:.2f} %, one layer fewer "
                     f"-{min(drops['layer fewer']):.2f} to -{max(drops['layer fewer']):.2f}, one width step less "
                     f"-{min(drops['width step less']):.2f} to -{max(drops['width step less']):.2f} points; "
                     f"small-cnn-like subnet {acc['small-cnn-like']:.2f} %")
    return ("one elastic step from the largest subnet, plain supernets with and without identity skips "
            "(10k test set, BN recalibrated)", "; ".join(cells), "`depth_sensitivity.json`")


def _plain_space_rows(root: Path, space: str, run: str, quality_file: str) -> list[Row]:
    rows: list[Row] = []
    log_file = root / run / "train_log.jsonl"
    if log_file.exists():
        last = read_jsonl(log_file)[-1]
        rows.append((f"`{space}` supernet, {last['epoch']} epochs sandwich training on 2 CPU cores "
                     f"({last['elapsed_s'] / 60:.0f} min)",
                     f"val acc largest {100 * last['val_acc_largest']:.1f} %, smallest {100 * last['val_acc_smallest']:.1f} %",
                     f"`{run}/`"))
    quality = root / quality_file
    if quality.exists():
        d = _load(quality)
        acc = {r["subnet"]: r["supernet_test_accuracy"] for r in d["rows"]}
        randoms = [v for k, v in acc.items() if k.startswith("random")]
        rows.append((f"`{space}` supernet on the 10k test set (BN recalibrated), {d['supernet']}",
                     f"largest {100 * acc['largest']:.2f} %, smallest {100 * acc['smallest']:.2f} %, {len(randoms)} random "
                     f"{100 * min(randoms):.1f}-{100 * max(randoms):.1f} %", f"`{quality_file}`"))
    return rows


def _reference_verdicts(rows: list[dict[str, Any]]) -> str:
    """'; MLP (89.1 %, 0.061 ms) beaten by 2 models, ...' from the quickstart's timed comparison."""
    refs = [r for r in rows if not r.get("exported")]
    parts = [f"{r['model']} ({100 * r['test_accuracy']:.1f} %, {r['latency_ms_now']:.3f} ms) "
             + (f"beaten by {', '.join(r['beaten_by'])}" if r["beaten_by"] else "NOT beaten")
             for r in refs]
    return "; hand-designed references timed beside them: " + ", ".join(parts) if parts else ""


MAIN_ROWS: list[Callable[[Path], Row | list[Row]]] = [training_row, train_speed_row, supernet_quality_row, collect_speed_row, ofa_parity_row, latency_rows, ofa_table_rows, gpu_rows, int8_rows, predictor_rows,
                                                        speed_rows, search_cli_row, ofa_search_row, export_form_row,
                                                        quickstart_row, cnn_rows]


def main_table(root: Path) -> list[str]:
    rows: list[Row] = []
    for make in MAIN_ROWS:
        made = make(root)
        rows.extend(made if isinstance(made, list) else [made])
    return ["| what | result | file |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]


# --------------------------------------------------------------------------------- search table
def _n(n: int) -> str:
    """An evaluation budget as the README writes it: 1k, 3k, 10k (or 300 below a thousand)."""
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _setting(tuning: dict[str, Any]) -> str:
    """A tuned setting as "32, 0.043" (population, per-gene mutation rate), or "–" if nothing is tuned."""
    chosen = tuning["chosen"]
    return f"{chosen['population']}, {chosen['mutation_per_gene']:.3g}" if chosen else "–"


def _hv(s: dict[str, Any] | None) -> str:
    if s is None:
        return "–"
    h = s["hypervolume"]
    return f"{h['median']:.3f} ({h['q1']:.3f}–{h['q3']:.3f})"


def search_section(root: Path) -> list[str]:
    d = _load(root / "search_benchmark.json")
    proto, summary = d["protocol"], d["summary"]
    modes, budgets = list(proto["modes"]), proto["evaluation_budgets"]
    methods = list(dict.fromkeys(s["method"] for s in summary))
    cell = {(s["mode"], s["method"], s["n_budget"]): s for s in summary}
    tuned = {(t["mode"], t["method"]): t for t in d["tuning"]}
    head = ("| method | tuned population, mutation/gene | "
            + " | ".join(f"{m} {_n(n)}" for m in modes for n in budgets) + " |")
    lines = [f"Search: hypervolume of the first N accuracy-predictor calls, median (interquartile range) over "
             f"{len(proto['seeds'])} seeds, each method at its setting (seeded / unseeded) tuned on seeds "
             f"{', '.join(str(s) for s in proto['tuning_seeds'])}. `seeded`: every method's first population holds "
             "the all-smallest and all-largest subnets; `unseeded`: the same random rows for all. "
             "Every predictor call counts, repeats included. Shipped predictor + cpu-1thread table; "
             "`search_benchmark.json`, `python experiments/search_benchmark.py`.", "",
             head, "|---|---|" + "---|" * (len(modes) * len(budgets))]
    for method in methods:
        setting = " / ".join(_setting(tuned[(m, method)]) for m in modes)
        lines.append(f"| {method} | {setting} | "
                     + " | ".join(_hv(cell.get((m, method, n))) for m in modes for n in budgets) + " |")
    fewer = sorted({(t["method"], tuple(t["seeds"]), tuple(t["budgets"])) for t in d["tuning"]
                    if t["grid"] and (t["seeds"] != proto["tuning_seeds"] or t["budgets"] != budgets)})
    if fewer:
        lines += ["", "Tuned on less, for time: " + "; ".join(
            f"{m} on seed(s) {', '.join(map(str, seeds))} at {' / '.join(_n(n) for n in ns)} calls"
            for m, seeds, ns in fewer) + "."]
    lines += ["", _verdict_text(summary, d["verdicts"]), "", _notes_text(d, methods)]
    return lines


def _verdict_text(summary: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> str:
    """Where hwnas loses, and where its lead is inside the spread over seeds (IQRs overlap)."""
    cell = {(s["mode"], s["method"], s["n_budget"]): s["hypervolume"] for s in summary}
    losses, close, clear = [], [], []
    for v in verdicts:
        where = f"{v['mode']} {_n(v['n_budget'])}"
        if not v["hwnas_wins"]:
            losses.append(f"{where}: {v['best']} {v['best_hv']:.3f} vs hwnas {v['hwnas_hv']:.3f} "
                          f"(rank {v['hwnas_rank']} of {v['of']})")
            continue
        ours = cell[(v["mode"], OURS, v["n_budget"])]
        rivals = [(m, h) for (mode, m, n), h in cell.items()
                  if (mode, n) == (v["mode"], v["n_budget"]) and m != OURS and h["q3"] >= ours["q1"]]
        if rivals:
            close.append(f"{where} ({', '.join(m for m, _ in rivals)})")
        else:
            clear.append(where)
    text = ["Where hwnas does not have the highest median: " + ("; ".join(losses) if losses else "nowhere") + "."]
    if close:
        text.append("Where its median is highest but another method's interquartile range reaches its own, so the "
                    "lead is within the spread over seeds: " + "; ".join(close) + ".")
    if clear:
        text.append("Clear leads (no other interquartile range reaches hwnas's): " + ", ".join(clear) + ".")
    return " ".join(text)


def _notes_text(d: dict[str, Any], methods: list[str]) -> str:
    proto = d["protocol"]
    runs = [r for r in d["runs"] if r["mode"] == "unseeded"]
    wall = {}
    for method in methods:
        sel = [r for r in runs if r["method"] == method]
        n = max(r["n_budget"] for r in sel)
        walls = sorted(r["run_wall_s"] for r in sel if r["n_budget"] == n)
        wall[method] = (walls[len(walls) // 2], n)
    parts = ", ".join(f"{m} {w:.2f} s ({_n(n)})" for m, (w, n) in wall.items())
    return (f"Optuna runs to {_n(proto['optuna_max_evaluations'])} calls only (slow). once-for-all's finder, "
            f"{proto['once_for_all']}. Wall time of one run (median, unseeded; shared 2-core machine, {d['host']['worker_processes']} "
            f"benchmark processes, 1-minute load average {d['host']['loadavg_start'][0]:.1f} at the start): {parts}.")


# --------------------------------------------------------------------------------- the section
def render(root: Path = RESULTS) -> str:
    """The text between the markers: the main table, the gaps the files do not cover, the search table."""
    lines = ["Every number here is generated by `python experiments/readme_results.py` from the committed "
             "result files in `experiments/results/` (or the report named in the file column).", "",
             *main_table(root), "",
             "The timing-protocol comparison (interleaved vs back-to-back timing) is not quoted: the committed "
             "`latency_*.json` files hold its protocols from separate runs; `python experiments/latency_benchmark.py` "
             "now compares them in one run.", "",
             *search_section(root), "", known_gaps(root)]
    return "\n".join(lines)


def known_gaps(root: Path) -> str:
    ceiling = _load(root / "noise_ceiling.json")
    bench = _load(root / "predictor_benchmark.json")
    log = read_jsonl(root / "train_fmnist" / "train_log.jsonl")
    goal = _quality_goal(_load(root / "supernet_quality.json"))
    default_goal = _quality_goal(_load(root / "supernet_quality_resvgg.json"))
    upper = ceiling.get("tau_calibration_only")
    best = max(r["kendall_tau"] for r in bench["learning_curve"] if r["model"] == "xgboost")
    predictor = (f"the `fmnist-mbv3` predictor's labels are noisy (a perfect predictor scores τ {ceiling['tau_simulated']:.2f}"
                 + (f" to {upper:.2f}, depending on how much of the validation sampling error is learnable"
                    if upper is not None and upper != ceiling["tau_simulated"] else "")
                 + f"; XGBoost reaches {best:.2f} with {max(bench['sizes']):,} labels"
                 + f"{_previous_supernet(ceiling.get('supernet_sha256'))})")
    if not bench["goal"]["met"]:
        predictor += (f" and its τ at 1000 subnets ({bench['goal']['xgboost_tau_at_1000']:.3f}) misses the goal "
                      f"{bench['goal']['target_tau_at_1000']:.3f}")
    if max(bench["sizes"]) < 3000:
        predictor += "; the 3,000-sample point of the learning curve is missing"
    refs = [r for r in (_load(root / "quickstart.json").get("references") or []) if not r.get("exported")]
    unbeaten = [f"{r['model']} ({100 * r['test_accuracy']:.1f} %, {r['latency_ms_now']:.3f} ms)"
                for r in refs if not r.get("beaten_by")]
    lost = (f"; the quickstart's exported front beats none of the hand-designed references "
            f"{' and '.join(unbeaten)}" if unbeaten and len(unbeaten) == len(refs) else
            f"; the quickstart's exported front does not beat {' and '.join(unbeaten)}" if unbeaten else "")
    return (f"Known gaps: the default `fmnist-resvgg` supernet is {default_goal}; the `fmnist-mbv3` supernet is "
            f"CPU-trained for {log[-1]['epoch']} epochs (no GPU was available) and {goal}{lost}{_cnn_gap(root)}; {predictor}{_gpu_gap()}{_int8_gap(root)}. This VM's speed drifts over seconds: exported models are timed "
            f"together for at least {MIN_MEASURE_SECONDS:g} s, but a later measurement still sees a different machine speed than the "
            "profile did, so export-time agreement is looser than the tables' own validation.")


def _quality_goal(quality: dict[str, Any]) -> str:
    """'at the issue's quality goal' or 'below ... for the largest subnet', from a supernet-quality file."""
    unmet = [k for k, c in quality["thresholds"].items() if not c["met"]]
    return (f"below the issue's quality goal for the {' and '.join(unmet)} subnet{'s' if len(unmet) > 1 else ''}"
            if unmet else "at the issue's quality goal")


def _cnn_gap(root: Path) -> str:
    """What each plain-CNN space's front does against the references, once it was timed beside them."""
    path = root / "family_fronts.json"
    if not path.exists():
        return ""
    rows = _load(path)["rows"]
    refs = [r for r in rows if not r.get("exported")]
    timed = {r["model"].split("/")[0] for r in rows if r.get("exported")}
    parts = []
    for space in (s for s in PLAIN_RESULTS if s in timed):
        lost = [r["model"] for r in refs if not any(n.startswith(f"{space}/") for n in r["beaten_by"] or [])]
        parts.append(f"the `{space}` front beats both references" if not lost else
                     f"the `{space}` front does not beat {' or '.join(lost)}")
    return f"; {', '.join(parts)} (`family_fronts.json`)" if parts else ""


def _gpu_gap() -> str:
    shipped = [d for d in ("cuda-b1", "cuda-b64") if (REPO / "latency_tables" / d / "fmnist-mbv3.json").exists()]
    if len(shipped) == 2:
        return ("; GPU tables exist for `fmnist-mbv3` only (one H200 session: the once-for-all spaces' GPU tables and "
                "ONNX Runtime's CUDA provider are not measured)")
    return "; GPU tables (`cuda-b1`, `cuda-b64`) are not shipped"


def _int8_gap(root: Path) -> str:
    missing = [f"`{n}`" for n in ("int8_predictor.json", "int8_budgets.json") if not (root / n).exists()]
    return f"; INT8 accuracy labels and the FP32-vs-INT8 budget table ({', '.join(missing)}) are not collected yet" \
        if missing else ""


def replace_section(readme: str, section: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise SystemExit(f"README.md must hold exactly one {BEGIN} and one {END} marker; add them around the "
                         "Results section")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{section}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if README.md differs")
    args = ap.parse_args(argv)
    current = README.read_text()
    wanted = replace_section(current, render())
    if current == wanted:
        print("README results section matches the result files")
        return 0
    if args.check:
        diff = difflib.unified_diff(current.splitlines(), wanted.splitlines(), "README.md", "from result files",
                                    lineterm="", n=0)
        print("README results section differs from the result files; run `python experiments/readme_results.py`:\n"
              + "\n".join(diff))
        return 1
    from hwnas.atomic_io import atomic_write_text

    atomic_write_text(README, wanted)
    print("README results section rewritten from the result files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
