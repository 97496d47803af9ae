"""Accuracy predictors compared on subnets they never saw: XGBoost (hwnas) vs OFA's MLP vs ridge.

For each seed a fixed test set of subnets is held out; models are trained on nested subsets of
the rest at 100 / 300 / 1000 / 3000 subnets (sizes larger than the data set allows are skipped,
and the run says so), all three models on the same rows. Reported: held-out RMSE, Kendall tau,
Spearman (mean +- std over seeds), a comparison of the tree feature encodings at the largest
size, batch prediction throughput, and the noise ceiling: Kendall tau between two measurements
of the same subnets with different BN calibration images (``accuracy`` vs ``accuracy_2`` from
``hwnas collect --repeat-calibration``), i.e. the best ranking any predictor can reach.

Usage:
  python experiments/predictor_benchmark.py --data predictors/fmnist-mbv3/dataset.jsonl
  python experiments/predictor_benchmark.py --data predictors/fmnist-mbv3/dataset.jsonl \\
      --seeds 5 --trials 30 --sizes 100 300 1000 3000

Writes experiments/results/predictor_benchmark.json and predictor_learning_curve.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hwnas.accuracy.baselines import MLPPredictor, RidgePredictor
from hwnas.accuracy.collect import read_accuracy_data
from hwnas.accuracy.features import ENCODINGS
from hwnas.accuracy.predictor import AccuracyPredictor, ranking_metrics
from hwnas.atomic_io import atomic_write_json
from hwnas.encoding import GeneLayout

METRICS = ("rmse", "kendall_tau", "spearman")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("predictors/fmnist-mbv3/dataset.jsonl"))
    p.add_argument("--out", type=Path, default=Path("experiments/results"))
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000])
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (splits and model seeds)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out share (at most 1000 subnets)")
    p.add_argument("--trials", type=int, default=20, help="Optuna trials per XGBoost fit")
    p.add_argument("--threads", type=int, default=0, help="XGBoost/torch threads (0 = default)")
    p.add_argument("--models", nargs="+", default=["xgboost", "mlp", "ridge"])
    p.add_argument("--no-encodings", action="store_true", help="skip the feature-encoding comparison")
    return p.parse_args(argv)


def make_models(space: Any, seed: int, args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    jobs = args.threads or None
    return {
        "xgboost": lambda: AccuracyPredictor(space, n_trials=args.trials, seed=seed, n_jobs=jobs),
        "mlp": lambda: MLPPredictor(space, seed=seed),
        "ridge": lambda: RidgePredictor(space),
    }


def fit_eval(model: Any, genes: np.ndarray, y: np.ndarray, test: np.ndarray, train: np.ndarray) -> dict[str, Any]:
    start = time.perf_counter()
    model.fit(genes[train], y[train])
    fit_s = time.perf_counter() - start
    metrics = ranking_metrics(y[test], model.predict(genes[test]))
    return {**metrics, "fit_seconds": round(fit_s, 2), "n_train": int(len(train))}


def noise_ceiling(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    pairs = np.array([(r["accuracy"], r["accuracy_2"]) for r in records if "accuracy_2" in r])
    if len(pairs) < 3:
        return None
    m = ranking_metrics(pairs[:, 0], pairs[:, 1])
    return {"n": int(len(pairs)), "kendall_tau": m["kendall_tau"], "spearman": m["spearman"], "rmse": m["rmse"]}


def summarise(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Mean and std over seeds of each metric, grouped by ``keys``."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rows in groups.items():
        row = dict(zip(keys, key))
        row["seeds"] = len(rows)
        for m in METRICS + ("fit_seconds",):
            vals = np.array([r[m] for r in rows], dtype=float)
            row[m], row[m + "_std"] = float(np.nanmean(vals)), float(np.nanstd(vals))
        out.append(row)
    return out


def throughput(model: AccuracyPredictor, layout: GeneLayout, rows: int = 100_000) -> float:
    genes = layout.random(rows, 0)
    model.predict(genes[:100])
    best = min(_timed(lambda: model.predict(genes)) for _ in range(3))
    return rows / best


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plot(curve: list[dict[str, Any]], ceiling: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in ((axes[0], "kendall_tau", "Kendall tau (held-out)"), (axes[1], "rmse", "RMSE")):
        for model in sorted({r["model"] for r in curve}):
            rows = sorted((r for r in curve if r["model"] == model), key=lambda r: r["train_size"])
            ax.errorbar([r["train_size"] for r in rows], [r[metric] for r in rows],
                        yerr=[r[metric + "_std"] for r in rows], marker="o", capsize=3, label=model)
        if ceiling and metric == "kendall_tau":
            ax.axhline(ceiling["kendall_tau"], color="grey", ls="--", label="noise ceiling")
        ax.set_xscale("log")
        ax.set_xlabel("training subnets")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(title: str, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    print(f"\n{title}")
    head = " ".join(f"{k:>12s}" for k in keys) + "  " + "  ".join(f"{m:>17s}" for m in METRICS) + "     fit s"
    print(head)
    for r in rows:
        cells = " ".join(f"{str(r[k]):>12s}" for k in keys)
        mets = "  ".join(f"{r[m]:8.4f} +- {r[m + '_std']:6.4f}" for m in METRICS)
        print(f"{cells}  {mets}  {r['fit_seconds']:8.1f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = read_accuracy_data(args.data)
    n = len(data.y)
    n_test = min(1000, max(20, int(round(args.test_fraction * n))))
    pool = n - n_test
    sizes = sorted({s for s in args.sizes if s <= pool})
    skipped = sorted(s for s in args.sizes if s > pool)
    if not sizes:
        sizes = [pool]
    notes = []
    if skipped:
        notes.append(f"training sizes {skipped} skipped: the data set has {n} subnets, {n_test} held out, "
                     f"so at most {pool} can train")
        print("note:", notes[-1])
    curve_runs, encoding_runs = [], []
    for seed in range(args.seeds):
        order = np.random.default_rng(1000 + seed).permutation(n)
        test, train_pool = order[:n_test], order[n_test:]
        models = make_models(data.space, seed, args)
        for size in sizes:
            for name in args.models:
                res = fit_eval(models[name](), data.genes, data.y, test, train_pool[:size])
                curve_runs.append({"seed": seed, "model": name, "train_size": size, **res})
                print(f"seed {seed} {name:8s} n={size:5d}  tau {res['kendall_tau']:.4f}  rmse {res['rmse']:.4f}"
                      f"  ({res['fit_seconds']:.1f} s)", flush=True)
        if not args.no_encodings:
            for enc in ENCODINGS:
                model = AccuracyPredictor(data.space, encoding=enc, n_trials=args.trials, seed=seed,
                                          n_jobs=args.threads or None)
                res = fit_eval(model, data.genes, data.y, test, train_pool[:sizes[-1]])
                encoding_runs.append({"seed": seed, "encoding": enc, "train_size": sizes[-1], **res})
    curve = summarise(curve_runs, ("model", "train_size"))
    encodings = summarise(encoding_runs, ("encoding", "train_size")) if encoding_runs else []
    ceiling = noise_ceiling(data.records)
    final = AccuracyPredictor(data.space, n_trials=0, n_jobs=args.threads or None).fit(data.genes, data.y)
    rows_per_s = throughput(final, GeneLayout(data.space))
    print_table("learning curve (held-out)", curve, ("model", "train_size"))
    if encodings:
        print_table("XGBoost feature encodings", encodings, ("encoding", "train_size"))
    print(f"\nnoise ceiling: {ceiling if ceiling else 'no accuracy_2 in the data (collect with --repeat-calibration)'}")
    print(f"XGBoost batch prediction: {rows_per_s:,.0f} rows/s (features included)")
    result = {"data": str(args.data), "space": data.space.name, "n_subnets": n, "n_test": n_test,
              "seeds": args.seeds, "trials": args.trials, "sizes": sizes, "notes": notes,
              "supernet_sha256": data.meta.get("supernet_sha256"), "learning_curve": curve,
              "encodings": encodings, "noise_ceiling": ceiling, "predict_rows_per_s": rows_per_s,
              "runs": curve_runs + encoding_runs}
    atomic_write_json(args.out / "predictor_benchmark.json", json.loads(json.dumps(result, default=float)))
    plot(curve, ceiling, args.out / "predictor_learning_curve.png")
    print(f"wrote {args.out / 'predictor_benchmark.json'} and {args.out / 'predictor_learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
