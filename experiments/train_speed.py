"""Supernet training-step throughput on this CPU: every option in one interleaved run.

One sandwich step (largest + smallest + ``num_random`` random subnets, in-place distillation,
one AdamW step) of the embedded ``fmnist-mbv3`` supernet is timed under each option, through the
same ``SupernetTrainer.train_step`` that ``hwnas train`` runs. The options cover memory layout
(NCHW / channels_last), precision (fp32 / bf16 autocast), ``torch.compile``, batch size, thread
count and the elastic layer's kernel trimming (``hwnas.supernet.elastic.trim_kernel_to_input``).

How it stays fair on a shared, drifting VM: every option gets its own trainer built from the same
seed (same weights, same subnets, same batches), and the options take turns, one step each per
round, in a rotating order, so every option sees the same moments of the machine. The statistic is
the median step time over rounds, with the interquartile range; the headline is each option's
throughput relative to the shipped recipe (NCHW fp32, untrimmed kernels, batch 256, 2 threads) in
the same run. A profile of the default option's step, grouped by operator kind, says where the
remaining time goes.

Run: ``python experiments/train_speed.py`` (about 10 minutes on an idle 2-core VM; nothing else
heavy may run meanwhile) -> ``experiments/results/train_speed.json``.
``--quick`` does 2 rounds on a few options (a smoke run, written under /tmp).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.atomic_io import atomic_write_json
from hwnas.data import load_dataset
from hwnas.supernet.elastic import DynamicDepthwiseConv
from hwnas.training import SupernetTrainer, TrainConfig

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "experiments" / "results" / "train_speed.json"
BASELINE = "shipped"
TARGET_SPEEDUP = 4.0  # issue 14: at least 4x the shipped recipe's step throughput


@dataclass(frozen=True)
class Option:
    """One way of running the training step."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    trim_kernel: bool = True
    threads: int = 2


SHIPPED = dict(channels_last=False, precision="fp32", batch_size=256)
OPTIONS = (
    Option(BASELINE, SHIPPED, trim_kernel=False),
    Option("nchw+trim", SHIPPED),
    Option("channels_last", {**SHIPPED, "channels_last": True}, trim_kernel=False),
    Option("channels_last+trim (default)", {**SHIPPED, "channels_last": True}),
    Option("channels_last+trim+bf16", {**SHIPPED, "channels_last": True, "precision": "bf16"}),
    Option("nchw+trim+bf16", {**SHIPPED, "precision": "bf16"}),
    Option("channels_last+trim, 1 thread", {**SHIPPED, "channels_last": True}, threads=1),
    Option("channels_last+trim, batch 128", {**SHIPPED, "channels_last": True, "batch_size": 128}),
    Option("channels_last+trim, batch 512", {**SHIPPED, "channels_last": True, "batch_size": 512}),
)
COMPILE = Option("channels_last+trim+compile", {**SHIPPED, "channels_last": True, "compile": True})
DEFAULT = "channels_last+trim (default)"


def build(option: Option, dataset, workdir: Path) -> SupernetTrainer:
    # the fmnist-mbv3 supernet's recipe, as measured in results/train_speed.json (not hwnas train's defaults)
    config = TrainConfig(space="fmnist-mbv3", num_random=1, device="cpu", threads=option.threads, warmup_epochs=0,
                         seed=0, **option.config)
    trainer = SupernetTrainer(config, workdir / option.name.replace(" ", "_"), dataset=dataset)
    for module in trainer.net.modules():
        if isinstance(module, DynamicDepthwiseConv):
            module.trim_kernel = option.trim_kernel
    trainer.net.train()
    return trainer


def timed_step(trainer: SupernetTrainer, option: Option, order: torch.Tensor, step: int) -> float:
    torch.set_num_threads(option.threads)
    x, y = trainer._batch(order, step % trainer.steps_per_epoch)
    start = time.perf_counter()
    trainer.train_step(x, y, elastic=True)
    trainer.optimizer.step()
    return time.perf_counter() - start


def profile_step(trainer: SupernetTrainer, option: Option, order: torch.Tensor, steps: int = 3) -> list[dict]:
    """Self CPU time of the default step grouped by operator kind, as shares of the total."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(option.threads)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for step in range(steps):
            x, y = trainer._batch(order, step)
            trainer.train_step(x, y, elastic=True)
            trainer.optimizer.step()
    kinds: dict[str, float] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        kind = _op_kind(event.key, event.input_shapes)
        kinds[kind] = kinds.get(kind, 0.0) + event.self_cpu_time_total
    total = sum(kinds.values())
    return [{"kind": k, "share_pct": round(100 * v / total, 1), "ms_per_step": round(v / 1e3 / steps, 1)}
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])]


def _op_kind(name: str, shapes: list) -> str:
    if "convolution" in name:
        weight = shapes[2] if "backward" in name else shapes[1] if len(shapes) > 1 else []
        depthwise = len(weight) == 4 and weight[1] == 1 and weight[0] > 1
        return f"{'depthwise' if depthwise else 'dense'} conv {'backward' if 'backward' in name else 'forward'}"
    if "batch_norm" in name:
        return "batch norm (forward + backward)"
    if any(a in name for a in ("threshold", "hardswish", "relu", "clamp", "hardsigmoid")):
        return "activations"
    if any(a in name for a in ("mm", "linear", "addmm")):
        return "matrix products (kernel transforms, classifier)"
    if "upsample" in name:
        return "resolution resize"
    if "Optimizer" in name or "_foreach" in name or "adam" in name.lower():
        return "optimizer"
    if any(a in name for a in ("mean", "mul", "sum", "add", "div", "sub")):
        return "elementwise / reductions (SE, residuals, losses)"
    return "other (slicing, copies, allocation)"


def summarize(times: dict[str, list[float]], options: tuple[Option, ...]) -> list[dict[str, Any]]:
    batch = {o.name: o.config.get("batch_size", 256) for o in options}
    base = batch[BASELINE] / float(np.median(times[BASELINE]))
    rows = []
    for option in options:
        t = np.asarray(times[option.name])
        q1, med, q3 = np.percentile(t, [25, 50, 75])
        rate = batch[option.name] / med
        rows.append({"option": option.name, "batch_size": batch[option.name], "threads": option.threads,
                     "step_s_median": round(float(med), 3), "step_s_iqr": [round(float(q1), 3), round(float(q3), 3)],
                     "images_per_s": round(float(rate), 1), "speedup_vs_shipped": round(float(rate / base), 2),
                     "rounds": int(len(t))})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--with-compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 3 options, result under /tmp")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    options = OPTIONS + ((COMPILE,) if args.with_compile else ())
    if args.quick:
        options = tuple(o for o in options if o.name in (BASELINE, "channels_last", DEFAULT))
        args.rounds, args.out = 2, Path("/tmp/train_speed_quick.json")
    dataset = load_dataset("fashion-mnist", val_size=5000, seed=0)
    workdir = Path("/tmp/hwnas-train-speed")
    trainers = {o.name: build(o, dataset, workdir) for o in options}
    order = torch.randperm(len(dataset.train.labels), generator=torch.Generator().manual_seed(0))
    load_before = os.getloadavg()
    for o in options:  # warm-up: first-touch allocation, oneDNN primitive caches, compilation
        for step in range(2):
            timed_step(trainers[o.name], o, order, step)
    times: dict[str, list[float]] = {o.name: [] for o in options}
    for r in range(args.rounds):
        shift = r % len(options)
        for o in options[shift:] + options[:shift]:
            times[o.name].append(timed_step(trainers[o.name], o, order, 2 + r))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    rows = summarize(times, options)
    default_option = next(o for o in options if o.name == DEFAULT)
    profile = profile_step(trainers[DEFAULT], default_option, order)
    result = {
        "what": "sandwich training step (largest + smallest + 1 random subnet, in-place distillation, AdamW) "
                "of the fmnist-mbv3 supernet; options interleaved round-robin in one run",
        "command": "python experiments/train_speed.py" + (" --with-compile" if args.with_compile else ""),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "baseline": BASELINE, "default": DEFAULT, "target_speedup": TARGET_SPEEDUP,
        "options": rows, "profile_of_default_step": profile,
    }
    atomic_write_json(args.out, result)
    print(f"\n{'option':36s} {'step s (IQR)':>22s} {'images/s':>9s} {'x shipped':>9s}")
    for row in rows:
        iqr = f"{row['step_s_median']:.3f} ({row['step_s_iqr'][0]:.3f}-{row['step_s_iqr'][1]:.3f})"
        print(f"{row['option']:36s} {iqr:>22s} {row['images_per_s']:9.0f} {row['speedup_vs_shipped']:9.2f}")
    print("\nwhere the default step's time goes:")
    for p in profile[:8]:
        print(f"  {p['kind']:50s} {p['share_pct']:5.1f} %  {p['ms_per_step']:7.1f} ms/step")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
