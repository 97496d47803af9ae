"""Which training recipe for a fixed CPU budget: short runs of recipe variants, side by side.

Every variant trains the ``fmnist-mbv3`` supernet from the same seed for the same number of
epochs (the same images seen, whatever the batch size), through ``hwnas train``'s own trainer, and is scored on the validation
split after BN recalibration: the largest, the smallest and the mean of ``--random`` fixed random
subnets (the middle of the space, where searches land). Wall time per variant is recorded too, but
only the accuracies are comparable across runs on a shared machine.

Variants (each differs from the baseline in one thing): in-place distillation off, 2 random subnets
per step, no largest-only warm-up / a longer one, weight EMA, no label smoothing, batch 512.

Each variant trains in its own folder under ``--workdir`` and resumes if interrupted; the result
file is rewritten after every variant. The test split is not touched: it is kept for the final
quality table.

Run: ``python experiments/train_recipe.py --epochs 4`` -> ``experiments/results/train_recipe.json``
(about 8-10 minutes per variant on an idle 2-core VM; nothing else may run meanwhile).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.arch import largest_architecture, sample_architecture, smallest_architecture
from hwnas.atomic_io import atomic_write_json
from hwnas.data import calibration_subset, load_dataset
from hwnas.supernet.calibration import evaluate, recalibrate_bn
from hwnas.training import SupernetTrainer, TrainConfig

REPO = Path(__file__).resolve().parents[1]
BASELINE: dict[str, Any] = dict(space="fmnist-mbv3", batch_size=256, lr=3e-3, num_random=1, distill=True, label_smoothing=0.1,
                                ema_decay=0.0)
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline (sandwich, distill, warm-up 1 epoch)": {},
    "no in-place distillation": {"distill": False},
    "2 random subnets per step": {"num_random": 2},
    "no warm-up": {"warmup_epochs": 0.0},
    "weight EMA 0.998": {"ema_decay": 0.998},
    "no label smoothing": {"label_smoothing": 0.0},
    "batch 512, lr x2": {"batch_size": 512, "lr": 6e-3},
}


def variant_config(overrides: dict[str, Any], epochs: int, warmup: float, max_steps: int = 0) -> TrainConfig:
    options = {**BASELINE, "warmup_epochs": warmup, **overrides}
    return TrainConfig(epochs=epochs, threads=2, device="cpu", max_steps_per_epoch=max_steps, **options)


def score(trainer: SupernetTrainer, n_random: int, seed: int = 123) -> dict[str, float]:
    """Validation accuracy (BN recalibrated) of the largest, the smallest and fixed random subnets."""
    space, data = trainer.space, trainer.dataset
    rng = np.random.default_rng(seed)
    archs = {"largest": largest_architecture(space), "smallest": smallest_architecture(space)}
    archs.update({f"random{i}": sample_architecture(space, rng) for i in range(n_random)})
    calib = calibration_subset(data.train, 2000, seed=0)
    scores = {}
    for name, arch in archs.items():
        sub = trainer.shipped_net.extract(arch)
        recalibrate_bn(sub, calib, arch.resolution, data.mean, data.std)
        scores[name], _ = evaluate(sub, data.val, arch.resolution, data.mean, data.std)
    randoms = [v for k, v in scores.items() if k.startswith("random")]
    return {"largest": round(scores["largest"], 4), "smallest": round(scores["smallest"], 4),
            "random_mean": round(float(np.mean(randoms)), 4) if randoms else None,
            "random": [round(v, 4) for v in randoms]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--warmup-epochs", type=float, default=1.0, help="baseline warm-up (largest only)")
    parser.add_argument("--random", type=int, default=5, help="random subnets scored per variant")
    parser.add_argument("--variants", nargs="*", help="names (substrings) of the variants to run; default all")
    parser.add_argument("--max-steps-per-epoch", type=int, default=0, help="smoke runs only")
    parser.add_argument("--workdir", type=Path, default=Path("runs/train-recipe"))
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "train_recipe.json")
    args = parser.parse_args()
    variants = {k: v for k, v in VARIANTS.items()
                if not args.variants or any(s in k for s in args.variants)}
    dataset = load_dataset("fashion-mnist", val_size=5000, seed=0)
    rows: list[dict[str, Any]] = []
    for name, overrides in variants.items():
        config = variant_config(overrides, args.epochs, args.warmup_epochs, args.max_steps_per_epoch)
        folder = args.workdir / name.split(" (")[0].replace(" ", "-").replace(",", "")
        trainer = SupernetTrainer(config, folder, dataset=dataset)
        started, load = time.time(), os.getloadavg()
        trainer.run(resume=(folder / "train_state.pt").exists(), progress=True)
        rows.append({"variant": name, "overrides": overrides, "steps": trainer.total_steps,
                     "images_seen": int(trainer.total_steps * config.batch_size),
                     "train_wall_s_this_process": round(time.time() - started, 1),
                     "loadavg_at_start": [round(v, 2) for v in load], "val_accuracy": score(trainer, args.random),
                     "config": asdict(config)})
        atomic_write_json(args.out, {
            "what": "recipe variants trained for the same images seen, scored on the validation split",
            "command": f"python experiments/train_recipe.py --epochs {args.epochs}",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "rows": rows})
        print(f"{name}: {rows[-1]['val_accuracy']}", flush=True)
    print(f"\n{'variant':48s} {'largest':>8s} {'smallest':>9s} {'random':>8s}")
    for row in rows:
        acc = row["val_accuracy"]
        print(f"{row['variant']:48s} {acc['largest']:8.4f} {acc['smallest']:9.4f} {acc['random_mean'] or 0:8.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
