"""Hand-designed reference points for the searched front: an MLP and a small plain CNN.

A NAS tool's front should beat simple hand-designed networks at equal or lower latency. Both
references are trained here with hwnas's own data pipeline and recipe: the Fashion-MNIST split of
``hwnas train`` (5,000 validation images held out), the same augmentation
(``hwnas.data.random_crop_flip`` through ``DeviceLoader``), AdamW with the same warm-up + cosine
schedule (``hwnas.training.warmup_cosine_lr``), label smoothing 0.1, channels-last on the CPU, and
the same number of epochs for both. They are scored on the official 10,000-image test set and
timed on a device profile (default ``cpu-1thread``) with hwnas's interleaved ONNX Runtime protocol
(``hwnas.latency.measure.time_models``), exported as ``hwnas export`` exports subnets and run at batch 1.

Trained weights are kept under ``--workdir`` (runs/reference_models/), so a rerun re-times without
retraining. Run: ``python experiments/reference_models.py --epochs 18`` -> ``experiments/results/reference_models.json``
(the quickstart's Pareto plot marks the points of that file). Nothing else heavy may run meanwhile:
the latency half is a timing measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.data import DeviceLoader, load_dataset
from hwnas.export.onnx_export import to_onnx
from hwnas.export.references import ARCHITECTURES, INPUT_SHAPE, ReferencePoint, write_references
from hwnas.latency.device import load_device_profile
from hwnas.latency.measure import make_measurer, single_torch_thread, time_models
from hwnas.supernet.calibration import evaluate
from hwnas.training import warmup_cosine_lr

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "experiments" / "results" / "reference_models.json"
WORKDIR = Path("runs/reference_models")


def train(model: nn.Module, dataset, epochs: int, batch_size: int = 256, lr: float = 3e-3,
          weight_decay: float = 5e-5, label_smoothing: float = 0.1, max_steps: int = 0, seed: int = 0) -> float:
    """Train ``model`` with hwnas's recipe (``seed`` orders and augments the batches); returns the wall time
    in seconds."""
    model = model.to(memory_format=torch.channels_last).train()
    loader = DeviceLoader(dataset.train, mean=dataset.mean, std=dataset.std, batch_size=batch_size, device="cpu",
                          shuffle=True, seed=seed, drop_last=True, augment=True, channels_last=True)
    steps_per_epoch = min(len(loader), max_steps) if max_steps else len(loader)
    total = steps_per_epoch * epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    started, step = time.perf_counter(), 0
    for _ in range(epochs):
        for i, (x, y) in enumerate(loader):
            if i == steps_per_epoch:
                break
            for group in optimizer.param_groups:
                group["lr"] = warmup_cosine_lr(step, total, steps_per_epoch, lr)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y, label_smoothing=label_smoothing).backward()
            optimizer.step()
            step += 1
    return time.perf_counter() - started


def trained(model: nn.Module, name: str, dataset, args: argparse.Namespace) -> float:
    """Train ``model`` (or load the weights an earlier run with the same settings saved); its training seconds."""
    seed = f"-seed{args.seed}" if args.seed else ""
    saved = args.workdir / f"{name}-e{args.epochs}-s{args.max_steps_per_epoch}{seed}.pt"
    if saved.is_file():
        blob = torch.load(saved, weights_only=True)
        model.load_state_dict(blob["state_dict"])
        return float(blob["train_seconds"])
    seconds = train(model, dataset, args.epochs, max_steps=args.max_steps_per_epoch, seed=args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)
    partial = saved.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "train_seconds": seconds}, partial)
    partial.replace(saved)
    return seconds


def command_line(args: argparse.Namespace) -> str:
    """The command that regenerates this run's file: every option that differs from its default."""
    options = [("--seed", args.seed, 0), ("--threads", args.threads, 2), ("--device", args.device, "cpu-1thread"),
               ("--max-steps-per-epoch", args.max_steps_per_epoch, 0),
               ("--out", os.path.relpath(args.out), os.path.relpath(RESULT)),
               ("--workdir", os.path.relpath(args.workdir), os.path.relpath(WORKDIR))]
    return " ".join([f"python experiments/reference_models.py --epochs {args.epochs}",
                     *(f"{flag} {value}" for flag, value, default in options if value != default)])


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--device", default="cpu-1thread", help="device profile for the latency")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights and of the batches' order and augmentation (the train/val "
                             "split stays hwnas train's seed-0 split); another seed measures the training spread")
    parser.add_argument("--max-steps-per-epoch", type=int, default=0, help="smoke runs only")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--workdir", type=Path, default=WORKDIR,
                        help="trained weights are kept here: a rerun with the same settings only re-times")
    return parser


def main() -> int:
    args = argument_parser().parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset("fashion-mnist", val_size=5000, seed=0)
    rows: list[dict[str, Any]] = []
    models = {}
    for name, build in ARCHITECTURES.items():
        torch.manual_seed(args.seed)
        model = build(dataset.num_classes)
        seconds = trained(model, name, dataset, args)
        model.eval()
        test_acc, _ = evaluate(model, dataset.test, 28, dataset.mean, dataset.std)
        val_acc, _ = evaluate(model, dataset.val, 28, dataset.mean, dataset.std)
        models[name] = to_onnx(model.to(memory_format=torch.contiguous_format), INPUT_SHAPE).SerializeToString()
        rows.append({"model": name, "test_accuracy": round(test_acc, 4), "val_accuracy": round(val_acc, 4),
                     "train_seconds": round(seconds, 1), "params": sum(p.numel() for p in model.parameters())})
        print(f"{name}: test accuracy {test_acc:.4f} after {seconds:.0f} s of training", flush=True)
    profile = load_device_profile(args.device)
    load = os.getloadavg()
    with single_torch_thread():
        stats = time_models(make_measurer(profile),
                            [(blob, (profile.batch_size, *INPUT_SHAPE)) for blob in models.values()])
    points = [ReferencePoint(row.pop("model"), row.pop("test_accuracy"), {profile.name: round(stat.value(), 5)},
                             {**row, "latency": {profile.name: stat.to_dict()}})
              for row, stat in zip(rows, stats)]
    write_references(args.out, points, {
        "what": "hand-designed references trained with hwnas's data pipeline and recipe; test accuracy on the "
                "official 10k test set, latency on the device profile (ONNX Runtime, batch 1)",
        "command": command_line(args),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "epochs": args.epochs, "seed": args.seed, "device": profile.name, "loadavg_before_timing": [round(v, 2) for v in load]})
    for p in points:
        print(f"{p.name:10s} test {p.accuracy:.4f}  latency {p.latency_ms[profile.name]:.4f} ms ({profile.name})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
