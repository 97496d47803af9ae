"""Which INT8 accuracy predictor to ship (issue 21): FP32 predictor alone, FP32 predictor + learned
drop model, or a predictor fitted on INT8 labels directly (hwnas/accuracy/int8_predictor.py).

Protocol. One seeded held-out set (``--holdout`` of the INT8 data set's subnets). Every candidate
is fitted on the remaining rows only, each XGBoost model it holds tuned with the same budget
(``--trials`` Optuna trials of 5-fold CV); the FP32 part may also use ``--fp32-data`` (an FP32 data
set of the same supernet and protocol; its subnets that are in the INT8 data set are left out, so
no held-out subnet leaks in). Scored against the held-out INT8 labels with hwnas.metrics (Kendall
tau, Spearman, RMSE). Also reported: how the FP32 labels themselves rank the INT8 labels (what a
perfect FP32 predictor could reach without a drop model) and the measured drop's spread.
The best by held-out tau is refitted on every row with its tuned hyper-parameters and shipped as
the INT8 predictor file (``precision: int8`` in its sidecar; the default path ``hwnas search
--precision int8`` reads).

Usage (after `hwnas collect --precision int8`):
  python experiments/int8_predictor.py --data predictors/fmnist-mbv3/int8/dataset.jsonl \\
      --fp32-data predictors/fmnist-mbv3/dataset.jsonl

Writes experiments/results/int8_predictor.json and predictors/<space>/int8/accuracy_xgb.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.accuracy.collect import INT8_FIELD, read_accuracy_data
from hwnas.accuracy.int8_predictor import (DROP_TARGET, KINDS, TrainingRows, extra_fp32_rows, fit_candidate,
                                           int8_rows, overlap, tuned_params)
from hwnas.atomic_io import atomic_write_json
from hwnas.metrics import prediction_agreement
from hwnas.paths import default_predictor_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("predictors/fmnist-mbv3/int8/dataset.jsonl"))
    p.add_argument("--fp32-data", type=Path, help="more FP32 labels of the same supernet for the FP32 part")
    p.add_argument("--trials", type=int, default=30, help="Optuna trials per XGBoost model (default 30)")
    p.add_argument("--holdout", type=float, default=0.2, help="held-out fraction (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="XGBoost threads (0 = all cores)")
    p.add_argument("--out", type=Path, default=Path("experiments/results/int8_predictor.json"))
    p.add_argument("--ship", type=Path, help="where the chosen predictor goes (default predictors/<space>/int8/"
                   "accuracy_xgb.json)")
    p.add_argument("--no-ship", action="store_true", help="compare only; write no predictor file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = read_accuracy_data(args.data, INT8_FIELD)
    genes, fp32, int8 = int8_rows(data)
    n = len(int8)
    order = np.random.default_rng(args.seed).permutation(n)
    n_test = int(round(args.holdout * n))
    if not 0 < n_test < n - 4:
        raise SystemExit(f"--holdout {args.holdout} leaves {n_test} held-out / {n - n_test} training subnets "
                         f"of {n}; collect more or change --holdout")
    test, train = order[:n_test], order[n_test:]
    extra = _extra_rows(args.fp32_data, data)
    rows = TrainingRows(genes[train], fp32[train], int8[train], *extra)
    jobs = args.threads or None
    candidates, models = {}, {}
    for kind in KINDS:
        start = time.perf_counter()
        model = fit_candidate(kind, rows, data.space, n_trials=args.trials, seed=args.seed, n_jobs=jobs)
        seconds = time.perf_counter() - start
        candidates[kind] = {**prediction_agreement(model.predict(genes[test]), int8[test], unit=""),
                            "fit_seconds": round(seconds, 1), "hyperparameters": tuned_params(model)}
        models[kind] = model
    best = max(KINDS, key=lambda k: (_finite(candidates[k]["kendall_tau"]), -candidates[k]["rmse"]))
    drop = fp32 - int8
    result = {
        "data": str(args.data), "supernet_sha256": data.meta.get("supernet_sha256"),
        "quantization": data.meta.get("quantization"), "int8_calib_images": data.meta.get("int8_calib_images"),
        "n_subnets": n, "n_heldout": n_test, "n_train": len(train), "n_extra_fp32": len(extra[1]) if extra[1] is not None else 0,
        "fp32_data": str(args.fp32_data) if args.fp32_data else None, "trials_per_model": args.trials,
        "seed": args.seed, "drop_target": DROP_TARGET,
        "measured_drop": {"mean": float(drop.mean()), "std": float(drop.std()), "min": float(drop.min()),
                          "max": float(drop.max())},
        "fp32_labels_vs_int8_heldout": prediction_agreement(fp32[test], int8[test], unit=""),
        "candidates": candidates, "best": best,
        "command": "python experiments/int8_predictor.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    if not args.no_ship:
        result["shipped"] = str(_ship(args, best, models[best], data, genes, fp32, int8, extra, result))
    atomic_write_json(args.out, result)
    _print(result)
    print(f"wrote {args.out}" + (f" and {result['shipped']}" if "shipped" in result else ""))
    return 0


def _extra_rows(path: Path | None, data: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """FP32-only rows for the FP32 part: the FP32 data set's subnets that are not in the INT8 data set."""
    if path is None:
        return None, None
    fp32_data = read_accuracy_data(path, "accuracy")
    return extra_fp32_rows(data, fp32_data, overlap(fp32_data.records, data.records, data.space))


def _ship(args: argparse.Namespace, kind: str, model: Any, data: Any, genes: np.ndarray, fp32: np.ndarray,
          int8: np.ndarray, extra: tuple[Any, Any], result: dict[str, Any]) -> Path:
    """Refit the winner on every row with its tuned hyper-parameters and save it as the INT8 predictor."""
    final = fit_candidate(kind, TrainingRows(genes, fp32, int8, *extra), data.space, n_trials=0, seed=args.seed,
                          params=tuned_params(model), n_jobs=args.threads or None)
    final.metrics_ = {"holdout": result["candidates"][kind], "n_train": len(int8)}
    path = args.ship or default_predictor_path(data.space.name, "int8")
    final.save(path, extra={"precision": "int8", "target": "top-1 accuracy (fraction) of the ONNX Runtime "
                            f"statically quantised subnet ({data.meta.get('quantization')})",
                            "int8_predictor": {"kind": kind, "parts": tuned_params(model),
                                               "compared": str(args.out)},
                            "training_data": {"data": str(args.data), "fp32_data": result["fp32_data"],
                                              "target": INT8_FIELD,
                                              "supernet_sha256": data.meta.get("supernet_sha256"),
                                              "refit_on_all": True}})
    return Path(path)


def _finite(x: float) -> float:
    return x if np.isfinite(x) else -np.inf


def _print(result: dict[str, Any]) -> None:
    print(f"INT8 predictors, held-out {result['n_heldout']} of {result['n_subnets']} subnets "
          f"({result['trials_per_model']} trials per model):")
    print(f"{'predictor':<22s} {'Kendall tau':>11s} {'Spearman':>9s} {'RMSE':>8s}")
    rows = [(f"{k}{' (shipped)' if k == result['best'] else ''}", result["candidates"][k]) for k in KINDS]
    rows.append(("FP32 labels (oracle)", result["fp32_labels_vs_int8_heldout"]))
    for name, m in rows:
        print(f"{name:<22s} {m['kendall_tau']:11.3f} {m['spearman']:9.3f} {m['rmse']:8.4f}")
    d = result["measured_drop"]
    print(f"measured drop (FP32 - INT8 accuracy): mean {d['mean']:.4f}, sd {d['std']:.4f}, "
          f"range {d['min']:.4f} .. {d['max']:.4f}")


if __name__ == "__main__":
    sys.exit(main())
