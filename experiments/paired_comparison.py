"""Can the test set tell the search's pick from the small CNN? Paired comparisons on the same images.

Issue 14 asks the quickstart's exported models to beat the hand-designed small CNN. Trained alike, the
search's pick (subnet A) and the small CNN land within a few tenths of a point of each other, and which
one is ahead changes with the training seed and the epoch budget. This script scores each pair of
trained networks listed in a config on the same 10,000 test images (both as ONNX models through ONNX
Runtime, as ``hwnas export`` scores models) and reports, per pair, the accuracy difference, the images
only one of them gets right, McNemar's exact test and a 95 % confidence interval of the difference
(:mod:`hwnas.classifier_comparison`): how much of the difference the test set resolves. Over the pairs
that share an epoch budget and differ in training seed, it also reports the seeds' mean difference with
a t interval, the spread that retraining adds.

The models are the trained artifacts of other experiments (each config entry names the command that
makes it); nothing is trained here. Run:
``python experiments/paired_comparison.py --config experiments/configs/paired_comparison.json``
-> ``experiments/results/paired_comparison.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.atomic_io import atomic_write_json
from hwnas.classifier_comparison import compare_classifiers
from hwnas.data import load_dataset
from hwnas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "configs" / "paired_comparison.json"
RESULT = REPO / "experiments" / "results" / "paired_comparison.json"


def onnx_model(side: dict[str, Any]) -> bytes | Path:
    """A config side as an ONNX model: ``onnx`` (an exported file) or ``reference`` + ``weights`` (a
    reference_models.py checkpoint, exported as that script exports it for timing)."""
    if "onnx" in side:
        return _existing(side, "onnx")
    import torch

    from hwnas.export.onnx_export import to_onnx
    from hwnas.export.references import ARCHITECTURES, INPUT_SHAPE

    if side.get("reference") not in ARCHITECTURES:
        raise ConfigError(f"{side.get('name')}: 'reference' must be one of {sorted(ARCHITECTURES)}")
    model = ARCHITECTURES[side["reference"]]()
    model.load_state_dict(torch.load(_existing(side, "weights"), weights_only=True)["state_dict"])
    return to_onnx(model.eval(), INPUT_SHAPE).SerializeToString()


def _existing(side: dict[str, Any], key: str) -> Path:
    if not side.get(key):
        raise ConfigError(f"{side.get('name')}: give 'onnx' (an exported model) or 'reference' and 'weights'")
    path = Path(side[key])
    if not path.is_file():
        raise ConfigError(f"{side.get('name')}: {key} file {path} is missing; make it with: {side.get('made_by')}")
    return path


def correctness(side: dict[str, Any], dataset: Any) -> np.ndarray:
    """Which test images the side's model classifies correctly, in the test split's order."""
    from hwnas.export.onnx_export import onnx_predictions

    predicted = onnx_predictions(onnx_model(side), dataset.test, dataset.test.image_size[0], dataset.mean, dataset.std)
    return predicted == dataset.test.labels.numpy()


def seed_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per epoch budget with several seeds: the mean difference over seeds and its 95 % t interval."""
    from scipy.stats import t

    summaries = []
    for epochs in sorted({r["epochs"] for r in rows if r.get("seed_study")}):
        diffs = [r["difference"] for r in rows if r.get("seed_study") and r["epochs"] == epochs]
        if len(diffs) < 2:
            continue
        mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
        half = t.ppf(0.975, len(diffs) - 1) * sd / len(diffs) ** 0.5
        summaries.append({"epochs": epochs, "seeds": len(diffs), "mean_difference": mean, "sd": sd,
                          "ci95": [mean - half, mean + half], "a_ahead": sum(d > 0 for d in diffs)})
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    dataset = load_dataset("fashion-mnist", val_size=5000, seed=0)
    rows, scored = [], {}  # a model two pairs share (a seed-0 reference) is scored once

    def correct(side: dict[str, Any]) -> np.ndarray:
        key = json.dumps(side, sort_keys=True)
        if key not in scored:
            scored[key] = correctness(side, dataset)
        return scored[key]

    for pair in config["pairs"]:
        result = compare_classifiers(correct(pair["a"]), correct(pair["b"])).to_dict()
        rows.append({"label": pair["label"], "epochs": pair["epochs"], "seed": pair["seed"],
                     "seed_study": pair.get("seed_study", False), "a": pair["a"]["name"], "b": pair["b"]["name"],
                     **result})
        print(f"{pair['label']:55s} {100 * result['accuracy_a']:6.2f} vs {100 * result['accuracy_b']:6.2f} %  "
              f"{100 * result['difference']:+.2f} [{100 * result['ci95'][0]:+.2f}, {100 * result['ci95'][1]:+.2f}]  "
              f"only A {result['only_a']}, only B {result['only_b']}, McNemar p {result['p_value']:.2f}", flush=True)
    seeds = seed_summary(rows)
    for s in seeds:
        print(f"{s['epochs']} epochs, {s['seeds']} seeds: mean difference {100 * s['mean_difference']:+.2f} "
              f"[{100 * s['ci95'][0]:+.2f}, {100 * s['ci95'][1]:+.2f}], A ahead on {s['a_ahead']}")
    config_arg = "" if args.config == CONFIG else f" --config {os.path.relpath(args.config)}"
    out_arg = "" if args.out == RESULT else f" --out {os.path.relpath(args.out)}"
    atomic_write_json(args.out, {
        "what": "pairs of trained networks scored on the same 10k Fashion-MNIST test images (ONNX Runtime): "
                "accuracy difference (a - b), images only one gets right, McNemar's exact test, 95 % interval of "
                "the difference from the test set's sampling; per epoch budget, the seeds' mean difference "
                "with a t interval (training noise included)",
        "command": f"python experiments/paired_comparison.py{config_arg}{out_arg}",
        "config": config, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows, "seed_summary": seeds})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
