"""Quality of a supernet on the official test set, beside the same subnets trained alone.

Scores the largest, the smallest and ``--random`` seeded random subnets of a supernet on the
10,000-image Fashion-MNIST test set after BN recalibration (2,000 fixed training images, as
``hwnas export`` recalibrates). With ``--train-standalone`` each of those subnets is also trained
alone from scratch by the same trainer (``hwnas train --fixed-arch``) for ``--standalone-epochs``
epochs, its wall time recorded, and scored the same way: once-for-all reports its subnets within
about a point of standalone training on ImageNet. The issue's thresholds for the shipped supernet
(largest >= 93.0 %, smallest >= 90.5 %) are checked and reported.

Run: ``python experiments/supernet_quality.py --train-standalone --standalone-epochs 15``
-> ``experiments/results/supernet_quality.json``. Standalone runs live under ``--workdir`` and resume.

Reproduction (issue 14: a rerun of the committed training command must land within 0.3 points of
the shipped checkpoint): ``--reproduces experiments/results/supernet_quality_resvgg.json`` scores a
rerun's checkpoint on the same subnets and reports each difference against that file's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.families import AnyArchitecture as Architecture
from hwnas.families import largest_architecture, sample_architecture, smallest_architecture
from hwnas.atomic_io import atomic_write_json, read_jsonl
from hwnas.data import calibration_subset, load_dataset
from hwnas.supernet.calibration import evaluate, recalibrate_bn
from hwnas.supernet.checkpoint import load_supernet
from hwnas.export.subnet_training import train_alone
from hwnas.training import TrainConfig

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = {"largest": 0.930, "smallest": 0.905}  # issue 14, test set, after BN recalibration
REPRODUCTION_TOLERANCE = 0.003  # issue 14: a rerun of the committed command lands within 0.3 points


def subnets(space, n_random: int, seed: int = 2026) -> dict[str, Architecture]:
    rng = np.random.default_rng(seed)
    archs = {"largest": largest_architecture(space), "smallest": smallest_architecture(space)}
    archs.update({f"random{i + 1}": sample_architecture(space, rng) for i in range(n_random)})
    return archs


def test_accuracy(net, arch: Architecture, dataset) -> float:
    sub = net.extract(arch).to(memory_format=torch.channels_last)
    calib = calibration_subset(dataset.train, 2000, seed=0)
    with torch.inference_mode():
        recalibrate_bn(sub, calib, arch.resolution, dataset.mean, dataset.std)
        accuracy, _ = evaluate(sub, dataset.test, arch.resolution, dataset.mean, dataset.std)
    return round(accuracy, 4)


def standalone(arch: Architecture, space: str, folder: Path, epochs: int, dataset) -> dict[str, Any]:
    """Train ``arch`` alone (resuming an interrupted run) and return its test accuracy and wall time."""
    config = TrainConfig(space=space, epochs=epochs, warmup_epochs=0, fixed_arch=arch.to_json())
    net, _ = load_supernet(train_alone(config, folder, progress=True, dataset=dataset))
    log = read_jsonl(folder / "train_log.jsonl")
    return {"test_accuracy": test_accuracy(net, arch, dataset), "epochs": epochs,
            "train_wall_s": log[-1]["elapsed_s"] if log else None}


def compare_with(shipped_file: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each subnet's accuracy here minus the shipped checkpoint's (same subnets, same test set), and
    whether every difference is within :data:`REPRODUCTION_TOLERANCE`."""
    shipped = json.loads(Path(shipped_file).read_text())
    before = {r["subnet"]: r for r in shipped["rows"]}
    differences = {}
    for row in rows:
        old = before.get(row["subnet"])
        if old is None or old["arch"] != row["arch"]:
            raise SystemExit(f"{shipped_file} scored other subnets ({row['subnet']} differs); rerun with the "
                             "same --random as the shipped file")
        differences[row["subnet"]] = round(row["supernet_test_accuracy"] - old["supernet_test_accuracy"], 4)
    within = all(abs(d) <= REPRODUCTION_TOLERANCE + 1e-9 for d in differences.values())
    print(f"reproduction of {shipped['supernet']}: differences {differences} -> "
          f"{'within' if within else 'NOT within'} {100 * REPRODUCTION_TOLERANCE:.1f} points")
    return {"shipped": str(shipped_file), "shipped_supernet": shipped["supernet"], "differences": differences,
            "tolerance": REPRODUCTION_TOLERANCE, "within_tolerance": within}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", default=str(REPO / "checkpoints" / "fmnist-mbv3.safetensors"))
    parser.add_argument("--random", type=int, default=3)
    parser.add_argument("--train-standalone", action="store_true")
    parser.add_argument("--standalone-epochs", type=int, default=15)
    parser.add_argument("--workdir", type=Path, default=Path("runs/standalone"))
    parser.add_argument("--reproduces", type=Path, default=None,
                        help="a quality file of the shipped checkpoint: compare this (rerun) checkpoint with it")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "supernet_quality.json")
    args = parser.parse_args()
    if args.reproduces is not None and not args.reproduces.is_file():
        parser.error(f"--reproduces {args.reproduces}: no such quality file (the shipped checkpoint's, e.g. "
                     "experiments/results/supernet_quality_resvgg.json)")
    torch.set_num_threads(2)
    net, extra = load_supernet(args.supernet)
    net.eval()
    train_config = extra.get("train_config", {})
    dataset = load_dataset(train_config.get("dataset", "fashion-mnist"), val_size=train_config.get("val_size", 5000),
                           seed=train_config.get("seed", 0))
    rows = []
    for name, arch in subnets(net.space, args.random).items():
        row: dict[str, Any] = {"subnet": name, "arch": arch.to_dict(), "supernet_test_accuracy": test_accuracy(net, arch, dataset)}
        if args.train_standalone:
            row["standalone"] = standalone(arch, net.space.name, args.workdir / name, args.standalone_epochs, dataset)
            row["supernet_minus_standalone"] = round(row["supernet_test_accuracy"] - row["standalone"]["test_accuracy"], 4)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "arch"}), flush=True)
    by_name = {r["subnet"]: r["supernet_test_accuracy"] for r in rows}
    checks = {name: {"threshold": t, "accuracy": by_name[name], "met": by_name[name] >= t}
              for name, t in THRESHOLDS.items()}
    reproduction = compare_with(args.reproduces, rows) if args.reproduces else None
    default_supernet = parser.get_default("supernet")
    command = "python experiments/supernet_quality.py" + (
        f" --supernet {args.supernet} --out {args.out}" if args.supernet != default_supernet else "") + (
        f" --train-standalone --standalone-epochs {args.standalone_epochs}" if args.train_standalone else "") + (
        f" --reproduces {args.reproduces}" if args.reproduces else "")
    atomic_write_json(args.out, {
        "what": "test-set accuracy (10k images, BN recalibrated on 2,000 training images) of supernet subnets, "
                "and of the same subnets trained alone by the same trainer",
        "command": command, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "supernet": Path(args.supernet).name, "train_config": train_config, "rows": rows, "thresholds": checks,
        **({"reproduction": reproduction} if reproduction else {})})
    for name, check in checks.items():
        print(f"{name}: {check['accuracy']:.4f} (threshold {check['threshold']:.3f}: "
              f"{'met' if check['met'] else 'NOT met'})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
