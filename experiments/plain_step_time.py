"""Training-step time of the ``plain`` family's kernel-size choices, beside fmnist-mbv3, on this CPU.

Why: the largest subnet dominates a sandwich step (it trains on every batch at full width and
resolution), and its kernel size sets its cost: ``fmnist-cnn`` ships 3x3 kernels only, not the
conventional (3, 5) choice, because (3, 5) halves the epochs the training budget (150 minutes on two
cores, issue 14) buys. (1, 3) is as cheap as 3x3 but makes the smallest subnet all 1x1 convs.

Each contender runs the trainer's own step (``SupernetTrainer.train_step`` + the optimiser step,
channels_last, fp32, batch 256) on the same batches: the largest subnet alone (warm-up) and a full
sandwich step (largest, smallest, one random subnet, in-place distillation); medians over repeats,
p10-p90 spread, the first step dropped.

    python experiments/plain_step_time.py            # writes experiments/results/plain_step_time.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from hwnas.atomic_io import atomic_write_json
from hwnas.space import get_space, register_space
from hwnas.training import SupernetTrainer, TrainConfig

RESULT = Path(__file__).parent / "results" / "plain_step_time.json"


def contenders() -> dict[str, str]:
    """Label -> registered space name (kernel-size variants registered here, for this comparison only)."""
    base = get_space("fmnist-cnn")
    out = {f"fmnist-cnn, kernels {base.kernel_sizes} (shipped)": "fmnist-cnn"}
    for kernels in ((1, 3), (3, 5)):
        variant = dataclasses.replace(base, name=f"fmnist-cnn-k{''.join(map(str, kernels))}", kernel_sizes=kernels)
        register_space(variant, overwrite=True)
        out[f"fmnist-cnn, kernels {kernels}"] = variant.name
    out["fmnist-mbv3"] = "fmnist-mbv3"
    return out


def time_steps(space: str, threads: int, repeats: int, out: Path) -> dict[str, list[float]]:
    config = TrainConfig(space=space, epochs=1, warmup_epochs=0, threads=threads, device="cpu",
                         max_steps_per_epoch=repeats + 1, calib_images=100)
    trainer = SupernetTrainer(config, out)
    trainer.net.train()
    order = torch.randperm(len(trainer.train_labels), generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {"largest": [], "sandwich": []}
    for i in range(repeats + 1):
        x, y = trainer._batch(order, i)
        for kind, elastic in (("largest", False), ("sandwich", True)):
            start = time.perf_counter()
            trainer.train_step(x, y, elastic=elastic)
            trainer.optimizer.step()
            if i:  # the first step of each kind allocates and warms caches
                times[kind].append(time.perf_counter() - start)
    return times


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_s": float(np.median(samples)), "p10_s": float(np.percentile(samples, 10)),
            "p90_s": float(np.percentile(samples, 90)), "n": len(samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    load_before = list(os.getloadavg())
    rows = []
    for label, space in contenders().items():
        times = time_steps(space, args.threads, args.repeats, Path("/tmp") / f"plain_step_time_{space}")
        rows.append({"contender": label, "space": space, **{k: summary(v) for k, v in times.items()}})
        print(f"{label:40s} largest {rows[-1]['largest']['median_s']:.3f} s   "
              f"sandwich {rows[-1]['sandwich']['median_s']:.3f} s "
              f"({rows[-1]['sandwich']['p10_s']:.3f}-{rows[-1]['sandwich']['p90_s']:.3f})")
    shipped = rows[0]["sandwich"]["median_s"]
    for row in rows:
        row["sandwich_vs_shipped"] = row["sandwich"]["median_s"] / shipped
    atomic_write_json(args.out, {"what": "training-step seconds, batch 256, channels_last fp32, median over repeats",
                                 "command": "python experiments/plain_step_time.py", "threads": args.threads,
                                 "loadavg_before": load_before, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
