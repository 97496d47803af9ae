"""``hwnas fit-predictor``: fit the XGBoost accuracy predictor on a collected data set.

A random ``--holdout`` fraction of the subnets is kept out of tuning and training to report
honest held-out RMSE / Kendall tau / Spearman; the saved model is then refitted on all subnets
with the tuned hyper-parameters (``--no-refit`` keeps the model trained without the hold-out).

Next to the held-out Kendall tau it prints the labels' noise ceiling (the tau a perfect predictor
would reach against one noisy label; hwnas/accuracy/label_noise.py), from ``--noise-ceiling``, the
data set's own repeats, or a sibling ``<folder>-repeat/dataset.jsonl`` measured on the same supernet.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hwnas.accuracy.label_noise import NoiseCeiling

EXAMPLES = """
examples:
  hwnas fit-predictor --data predictors/fmnist-mbv3/dataset.jsonl
  hwnas fit-predictor --data predictors/fmnist-mbv3/dataset.jsonl --trials 60 --seed 1 \\
      --out predictors/fmnist-mbv3/accuracy_xgb.json
  # an INT8 predictor on the quantised models' labels (experiments/int8_predictor.py compares it with others)
  hwnas fit-predictor --data predictors/fmnist-mbv3/int8/dataset.jsonl --target accuracy_int8
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-predictor", help="fit the accuracy predictor (XGBoost)",
                       description=__doc__ + EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="dataset.jsonl written by `hwnas collect`")
    p.add_argument("--out", type=Path, help="model path (default: accuracy_xgb.json beside --data)")
    p.add_argument("--trials", type=int, default=30, help="Optuna trials of K-fold CV (default 30; 0 = defaults)")
    p.add_argument("--folds", type=int, default=5, help="CV folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, CV folds, TPE sampler and XGBoost")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction held out for metrics (default 0.2)")
    p.add_argument("--no-refit", action="store_true", help="save the model fitted without the hold-out")
    p.add_argument("--encoding", help="feature encoding: genes, masked, stage, full, rich (default: "
                   "hwnas.accuracy.features.DEFAULT_ENCODING, chosen by experiments/predictor_benchmark.py)")
    p.add_argument("--target", default="accuracy", help="record field to predict (default accuracy)")
    p.add_argument("--space", help="search space (default: from the data set's meta file)")
    p.add_argument("--noise-ceiling", type=Path, help="repeat data set (.jsonl) or experiments/noise_ceiling.py "
                   "result (.json) giving the labels' noise ceiling (default: found beside --data)")
    p.add_argument("--max-trees", type=int, help="cap on boosting rounds the tuner may use (default: "
                   "hwnas.accuracy.predictor.DEFAULT_TREE_CAP; the search scores every candidate with every tree)")
    p.add_argument("--threads", type=int, default=0, help="XGBoost threads (0 = all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from hwnas.accuracy.collect import INT8_FIELD, read_accuracy_data
    from hwnas.accuracy.label_noise import find_ceiling
    from hwnas.accuracy.features import DEFAULT_ENCODING
    from hwnas.accuracy.predictor import DEFAULT_TREE_CAP, AccuracyPredictor
    from hwnas.errors import ConfigError

    if not 0 <= args.holdout < 0.9:
        raise ConfigError(f"--holdout must be a fraction in [0, 0.9), got {args.holdout}")
    max_trees = DEFAULT_TREE_CAP if args.max_trees is None else args.max_trees
    encoding = args.encoding or DEFAULT_ENCODING
    if max_trees < 1:
        raise ConfigError(f"--max-trees must be a positive number of boosting rounds, got {max_trees}")
    data = read_accuracy_data(args.data, args.target, args.space)
    ceiling, source = find_ceiling(args.data, data.records, data.meta, args.noise_ceiling)  # fail before tuning
    out = args.out or args.data.with_name("accuracy_xgb.json")
    n = len(data.y)
    order = np.random.default_rng(args.seed).permutation(n)
    n_test = int(round(args.holdout * n))
    test, train = order[:n_test], order[n_test:]
    pred = AccuracyPredictor(data.space, encoding=encoding, n_trials=args.trials, cv_folds=args.folds,
                             seed=args.seed, n_jobs=args.threads or None, progress=not args.no_progress,
                             max_rounds=max_trees)
    pred.fit(data.genes[train], data.y[train])
    metrics = {"cv_rmse": pred.cv_rmse_, "n_train": len(train)}
    if n_test:
        metrics["holdout"] = pred.evaluate(data.genes[test], data.y[test])
    if not args.no_refit and n_test:
        final = AccuracyPredictor(data.space, encoding=encoding, n_trials=0, cv_folds=args.folds,
                                  seed=args.seed, params=pred.best_params_, n_jobs=args.threads or None,
                                  max_rounds=max_trees)
        final.fit(data.genes, data.y)
        # the refit is the tuned model: its file records the tuning that chose its parameters
        final.cv_rmse_, final.trials_, final.n_trials, pred = pred.cv_rmse_, pred.trials_, pred.n_trials, final
    if ceiling is not None:
        metrics["noise_ceiling"] = {"kendall_tau": ceiling.tau_simulated, "source": source,
                                    "validation_noise_measured": ceiling.noise_var_validation is not None,
                                    "kendall_tau_calibration_only": ceiling.tau_calibration_only}
    pred.metrics_ = metrics
    extra = {"data": str(args.data), "target": args.target, "supernet_sha256": data.meta.get("supernet_sha256"),
             "refit_on_all": bool(not args.no_refit and n_test)}
    # a predictor of the quantised models' accuracy is an INT8 predictor (hwnas search --precision int8)
    precision = {"precision": "int8"} if args.target == INT8_FIELD else {}
    pred.save(out, extra={"training_data": extra, **precision})
    line = f"predictor: {out}  (n={n}, CV RMSE {pred.cv_rmse_:.4f}"
    if n_test:
        h = metrics["holdout"]
        line += (f"; held-out {n_test}: RMSE {h['rmse']:.4f}, Kendall tau {h['kendall_tau']:.3f}, "
                 f"Spearman {h['spearman']:.3f}")
    print(line + ")")
    print(_ceiling_line(metrics.get("holdout"), ceiling, source))
    return 0


def _ceiling_line(holdout: dict[str, Any] | None, ceiling: "NoiseCeiling | None", source: str) -> str:
    """'noise ceiling: Kendall tau 0.84 (held-out tau = 78 % of it; from ...)' or why there is none."""
    if ceiling is None:
        return f"noise ceiling: unknown ({source})"
    bound = "" if ceiling.noise_var_validation is not None else ", an upper bound: validation noise unmeasured"
    tau = (holdout or {}).get("kendall_tau")
    share = f"held-out tau = {tau / ceiling.tau_simulated:.0%} of it; " if tau is not None and math.isfinite(tau) else ""
    upper = ceiling.tau_calibration_only
    also = ("" if upper is None or ceiling.noise_var_validation is None else
            f"; {upper:.3f} with calibration noise only, if the validation images' own sampling error is learnable"
            + (f" (held-out tau = {tau / upper:.0%} of it)" if share else ""))
    return f"noise ceiling: Kendall tau {ceiling.tau_simulated:.3f} ({share}from {source}{bound}){also}"
