"""Is a training-free signal from the supernet worth a predictor input? (issue 15, item 3)

The candidate: the supernet's loss on a few training batches right after a subnet's BN
recalibration (``proxy_loss``, ``hwnas collect --proxy-images``). It is compared, on the first
``--n`` subnets of the collection stream (the same subnets as the shipped data set's first rows,
so their full-validation labels are known), with

* a label of the same cost: accuracy on only ``--images`` validation images, measured in the
  same pass (same recalibration, same number of images as the proxy);
* the XGBoost predictor fitted on the data set's other subnets with the shipped predictor's
  hyper-parameters (no tuning: the shipped ones were tuned on those labels);

each as Kendall tau / Spearman against the full-validation label, beside its cost per subnet.
A proxy must beat the cheap label to be worth computing, and it would have to be computed for
every candidate the search scores, which the predictor does in microseconds.

    python experiments/proxy_signal.py

Collects into ``runs/proxy-signal`` (resumable) and writes experiments/results/proxy_signal.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from hwnas.accuracy.collect import CollectConfig, arch_key, collect, read_accuracy_data, read_records
from hwnas.accuracy.predictor import AccuracyPredictor, ranking_metrics
from hwnas.arch import Architecture
from hwnas.atomic_io import atomic_write_json
from hwnas.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", default="checkpoints/fmnist-mbv3.safetensors")
    p.add_argument("--data", type=Path, default=Path("predictors/fmnist-mbv3/dataset.jsonl"),
                   help="full-validation labels of the same collection stream")
    p.add_argument("--predictor", type=Path, default=Path("predictors/fmnist-mbv3/accuracy_xgb.json"),
                   help="its hyper-parameters are reused (no tuning)")
    p.add_argument("--n", type=int, default=300, help="subnets compared (the first of the stream)")
    p.add_argument("--images", type=int, default=256, help="proxy images and cheap-label images (default 256)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--work", type=Path, default=Path("runs/proxy-signal"))
    p.add_argument("--out", type=Path, default=Path("experiments/results/proxy_signal.json"))
    return p.parse_args(argv)


def signal_row(name: str, y: np.ndarray, score: np.ndarray, seconds_per_subnet: float) -> dict:
    m = ranking_metrics(y, score)
    return {"signal": name, "kendall_tau": m["kendall_tau"], "spearman": m["spearman"],
            "seconds_per_subnet": seconds_per_subnet}


def main(argv: list[str] | None = None, *, dataset: object = None) -> int:
    """``dataset``: the images (tests pass a tiny one; default: the supernet's own data set)."""
    args = parse_args(argv)
    data = read_accuracy_data(args.data)
    config = CollectConfig(supernet=args.supernet, n=args.n, out=str(args.work), val_images=args.images,
                           calib_images=data.meta.get("calib_images", 500), calib_seed=data.meta.get("calib_seed", 0),
                           proxy_images=args.images, threads=args.threads, batch_size=args.batch_size)
    collect(config, dataset=dataset, progress=dataset is None)
    probe = read_records(args.work / "dataset.jsonl")
    space = data.space
    data_keys = [arch_key(Architecture.from_dict(r["arch"]), space) for r in data.records]
    full = dict(zip(data_keys, data.records))
    keys = [arch_key(Architecture.from_dict(r["arch"]), space) for r in probe]
    missing = [k for k in keys if k not in full]
    if missing:
        raise DataError(f"{len(missing)} probe subnets are not in {args.data}; collect it from the same stream "
                        "(seed 0) first")
    y = np.array([full[k]["accuracy"] for k in keys])
    proxy = -np.array([r["proxy_loss"] for r in probe])
    cheap = np.array([r["accuracy"] for r in probe])
    seconds = float(np.mean([r["seconds"] for r in probe]))
    probe_keys = set(keys)
    train = [i for i, key in enumerate(data_keys) if key not in probe_keys]
    shipped = AccuracyPredictor.load(args.predictor)
    model = AccuracyPredictor(space, encoding=shipped.encoding, n_trials=0, params=dict(shipped.best_params_))
    model.fit(data.genes[train], data.y[train])
    pred = model.predict([Architecture.from_dict(r["arch"]) for r in probe])
    rows_n = 20_000
    rows = model.encoder_.layout.random(rows_n, 0)
    start = time.perf_counter()
    model.predict(rows)
    per_row = (time.perf_counter() - start) / rows_n
    rows_out = [signal_row(f"proxy: -loss on {args.images} training images after BN recalibration", y, proxy,
                           seconds),
                signal_row(f"cheap label: accuracy on {args.images} validation images (same pass)", y, cheap,
                           seconds),
                signal_row(f"XGBoost predictor, fitted on the other {len(train)} subnets", y, pred, per_row)]
    for r in rows_out:
        print(f"{r['signal']:75s} tau {r['kendall_tau']:.3f}  Spearman {r['spearman']:.3f}  "
              f"{r['seconds_per_subnet']:.2e} s/subnet")
    keep = rows_out[0]["kendall_tau"] > max(rows_out[1]["kendall_tau"], rows_out[2]["kendall_tau"])
    verdict = ("the proxy ranks better than both the same-cost label and the predictor: worth a feature"
               if keep else "not kept: the proxy ranks no better than "
               + ("a label of the same cost" if rows_out[1]["kendall_tau"] >= rows_out[0]["kendall_tau"]
                  else "the predictor")
               + ", and as a search input it would cost a supernet pass per candidate")
    print(verdict)
    result = {"command": "python experiments/proxy_signal.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "supernet": args.supernet, "data": str(args.data), "n": len(keys), "images": args.images,
              "signals": rows_out, "kept": keep, "verdict": verdict,
              "supernet_sha256": data.meta.get("supernet_sha256")}
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
