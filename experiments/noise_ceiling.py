"""Noise ceiling of accuracy labels: the same subnets evaluated twice with different BN-calibration
subsets (`hwnas collect --repeat-calibration`). No predictor can rank subnets better than the labels
agree with themselves, so this Kendall tau bounds every predictor's tau.

    python experiments/noise_ceiling.py --data predictors/fmnist-mbv3-repeat/dataset.jsonl
"""

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from hwnas.atomic_io import atomic_write_json, read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="predictors/fmnist-mbv3-repeat/dataset.jsonl")
    parser.add_argument("--out", default="experiments/results/noise_ceiling.json")
    args = parser.parse_args()
    rows = [r for r in read_jsonl(args.data) if r.get("accuracy_2") is not None]
    a = np.array([r["accuracy"] for r in rows])
    b = np.array([r["accuracy_2"] for r in rows])
    result = {"data": args.data, "n": len(rows),
              "kendall_tau": float(kendalltau(a, b).statistic), "spearman": float(spearmanr(a, b).statistic),
              "rmse_between_runs": float(np.sqrt(np.mean((a - b) ** 2))),
              "accuracy_range": [float(a.min()), float(a.max())], "accuracy_std": float(a.std())}
    print(f"{'n':>5s} {'Kendall tau':>12s} {'Spearman':>9s} {'RMSE runs':>10s} {'acc std':>8s}")
    print(f"{result['n']:5d} {result['kendall_tau']:12.3f} {result['spearman']:9.3f} "
          f"{result['rmse_between_runs']:10.4f} {result['accuracy_std']:8.4f}")
    atomic_write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
