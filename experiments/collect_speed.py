"""Accuracy-collection speed: subnets measured per second, and what the shared-work cache changes.

``hwnas collect`` measures each subnet as extract -> BN recalibration -> evaluation
(:class:`hwnas.accuracy.collect.SubnetEvaluator`, which prepares images and the shared stem/first
block once per resolution and evaluates with BN folded). This script times it beside the plain
whole-network path (``recalibrate_bn`` + ``evaluate`` on the extracted subnet, as training's epoch
report does), subnet by subnet in alternation so both see the same machine, on the shipped
supernet, and checks that both give the same accuracies.

Run: ``python experiments/collect_speed.py`` (default: 24 subnets, 5,000 validation images, 500
calibration images, 2 threads) -> ``experiments/results/collect_speed.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import torch

from hwnas.accuracy.collect import CollectConfig, SubnetEvaluator, collection_architectures
from hwnas.atomic_io import atomic_write_json
from hwnas.data import load_dataset
from hwnas.supernet.calibration import evaluate, recalibrate_bn
from hwnas.supernet.checkpoint import load_supernet

REPO = Path(__file__).resolve().parents[1]
TARGET_SUBNETS_PER_S = 1.0  # issue 14


def plain_measure(evaluator: SubnetEvaluator, arch) -> float:
    """The whole-network path: recalibrate every BN of the extracted subnet, evaluate it unfolded."""
    ds, net = evaluator.dataset, evaluator.net
    sub = net.extract(arch).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        recalibrate_bn(sub, evaluator.calib[0], arch.resolution, ds.mean, ds.std, batch_size=500)
        acc, _ = evaluate(sub, evaluator.val, arch.resolution, ds.mean, ds.std, batch_size=1000)
    return acc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", default=str(REPO / "checkpoints" / "fmnist-mbv3.safetensors"))
    parser.add_argument("--subnets", type=int, default=24)
    parser.add_argument("--val-images", type=int, default=5000)
    parser.add_argument("--calib-images", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "collect_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net, extra = load_supernet(args.supernet)
    net.eval()
    train = extra.get("train_config", {})
    dataset = load_dataset(train.get("dataset", "fashion-mnist"), val_size=train.get("val_size", 5000),
                           seed=train.get("seed", 0))
    config = CollectConfig(supernet=args.supernet, n=args.subnets, val_images=args.val_images,
                           calib_images=args.calib_images, device="cpu", threads=args.threads)
    evaluator = SubnetEvaluator(net, dataset, config, torch.device("cpu"))
    archs = collection_architectures(net.space, args.subnets, seed=1)
    load_before = os.getloadavg()
    cached_s, plain_s, diffs = [], [], []
    started = time.perf_counter()
    for i, arch in enumerate(archs):
        t0 = time.perf_counter()
        record = evaluator.measure(arch)
        t1 = time.perf_counter()
        plain_acc = plain_measure(evaluator, arch)
        t2 = time.perf_counter()
        cached_s.append(t1 - t0)
        plain_s.append(t2 - t1)
        diffs.append(abs(record["accuracy"] - plain_acc))
        print(f"{i + 1}/{len(archs)} res {arch.resolution}: cached {t1 - t0:.2f} s, plain {t2 - t1:.2f} s, "
              f"accuracy {record['accuracy']:.4f} vs {plain_acc:.4f}", flush=True)
    # Cache fills (first subnet at each resolution) are part of the cached path's cost: the rate is
    # subnets over total seconds, not a median that would hide them.
    result = {
        "what": "seconds per subnet: SubnetEvaluator (hwnas collect) vs the plain whole-network path, "
                "alternating subnet by subnet on the shipped supernet",
        "command": "python experiments/collect_speed.py",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"subnets": len(archs), "val_images": len(evaluator.val), "calib_images": args.calib_images,
                     "threads": args.threads, "supernet": Path(args.supernet).name},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "cached": {"subnets_per_s": round(len(archs) / sum(cached_s), 3),
                   "seconds_median": round(float(np.median(cached_s)), 3)},
        "plain": {"subnets_per_s": round(len(archs) / sum(plain_s), 3),
                  "seconds_median": round(float(np.median(plain_s)), 3)},
        "speedup": round(sum(plain_s) / sum(cached_s), 2),
        "max_abs_accuracy_difference": round(float(max(diffs)), 6),
        "target_subnets_per_s": TARGET_SUBNETS_PER_S,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    atomic_write_json(args.out, result)
    print(f"\ncached: {result['cached']['subnets_per_s']} subnets/s, plain: {result['plain']['subnets_per_s']} "
          f"subnets/s ({result['speedup']}x); max accuracy difference {result['max_abs_accuracy_difference']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
