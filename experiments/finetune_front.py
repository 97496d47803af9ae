"""How much fine-tuning a searched subnet gains: the exported models of a quickstart run, each fine-tuned
from the supernet's weights with distillation from its largest subnet, exported again and timed
beside the hand-designed references.

Once-for-all fine-tunes the subnets it deploys (its paper: 25 epochs on ImageNet); hwnas's quickstart
exports them with the supernet's weights as they are, and the standalone table
(``results/supernet_quality_resvgg_standalone.json``) puts the weight-sharing cost of ``fmnist-resvgg``'s
middle subnets at 0.64-0.74 points. This measures what ``hwnas export --finetune-epochs`` (the trainer,
data pipeline and schedule of the supernet and the references, via ``hwnas.export.subnet_training``) recovers,
and whether a fine-tuned front model then beats the small CNN. The fine-tuned models get ``--epochs``
epochs on top of the supernet's training, which the references (trained alone, ``reference_models.json``)
do not: the result file states both budgets.

    hwnas quickstart --space fmnist-resvgg --budget-ms 0.4 --models 6 --out runs/qs-resvgg   # the run (as family_fronts)
    python experiments/finetune_front.py --run runs/qs-resvgg --models front012,front006,front000 --epochs 6

``--arch NAME=FILE`` (repeatable) fine-tunes given architectures of ``--supernet`` instead of a run's
models, each first exported untuned for its "before" accuracy:

    python experiments/finetune_front.py --supernet checkpoints/fmnist-resvgg.safetensors \
        --arch A=experiments/configs/finetune/A.arch.json --arch B=experiments/configs/finetune/B.arch.json \
        --alone --alone-seeds 0,1 --epochs 18 --workdir runs/ft18 --out experiments/results/finetune_front_18ep.json

A is the search's pick at that latency (the accuracy predictor's best subnet there in the cpu-1thread table),
B the small-CNN-shaped subnet of that latency (two 32-channel layers at 28 px, 48 channels after).
``--alone`` also trains each alone from scratch for ``--epochs``, the references' budget, once per
``--alone-seeds`` seed (same split): the fair test of the architecture the search found.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from hwnas.atomic_io import atomic_write_json
from hwnas.export.pipeline import export_architecture
from hwnas.export.references import compare_with_references, load_references
from hwnas.export.settings import ExportSettings
from hwnas.latency.device import load_device_profile
from hwnas.paths import REFERENCE_MODELS
from hwnas.quickstart import shipped
from hwnas.space import get_space
from hwnas.supernet.checkpoint import read_metadata

RESULTS = Path(__file__).parent / "results"


def front_models(run: Path, names: list[str] | None) -> tuple[str, str, list[dict[str, Any]]]:
    """(space, supernet path, exported model records) of a quickstart run; ``names`` picks some."""
    config = json.loads((run / "search" / "config.json").read_text())
    models = [m for m in json.loads((run / "export" / "summary.json").read_text())["models"]
              if m.get("status") == "ok" and (names is None or m["name"] in names)]
    missing = set(names or ()) - {m["name"] for m in models}
    if missing:
        raise SystemExit(f"{run}/export has no exported model named {', '.join(sorted(missing))}")
    return config["space"], config["supernet"], models


def arch_models(specs: list[str], supernet: str, args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    """(space, model records) for ``NAME=FILE`` architectures of ``supernet``, each exported as it is
    (supernet weights, BN recalibrated) into ``--workdir`` for its accuracy before fine-tuning."""
    models = []
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep or not name or not Path(file).is_file():
            raise SystemExit(f"--arch {spec!r}: expected NAME=FILE with an existing architecture JSON file")
        result = export_architecture(Path(file), ExportSettings(
            out=args.workdir / f"{name}-supernet.onnx", supernet=supernet, eval_images=10_000, no_measure=True,
            overwrite=True, progress=not args.no_progress))
        models.append({"name": name, "arch": result.arch, "macs": result.macs,
                       "fp32": {"accuracy": result.fp32.accuracy}})
    return read_metadata(supernet)["space_name"], models


def trained_export(arch: dict[str, Any], supernet: str, path: Path, args: argparse.Namespace, **training: Any) -> Any:
    """The subnet trained as ``training`` (ExportSettings' fine-tune or retrain options) says, in
    ``path.finetune/`` or ``path.retrain/`` (resumed or reused on a rerun), and exported as ONNX, its test
    accuracy measured on the whole test set as the quickstart measures it."""
    arch_file = path.with_suffix(".arch.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    arch_file.write_text(json.dumps(arch))
    return export_architecture(arch_file, ExportSettings(out=path, supernet=supernet, eval_images=10_000,
                                                         no_measure=True, overwrite=True, progress=not args.no_progress,
                                                         **training))


def command_line(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    """The command that regenerates the result file."""
    if args.arch:
        models = f"--supernet {args.supernet} " + " ".join(f"--arch {spec}" for spec in args.arch)
    else:
        models = f"--run {args.run} --models {','.join(row['model'] for row in rows)}"
    return (f"python experiments/finetune_front.py {models}{f' --alone --alone-seeds {args.alone_seeds}' if args.alone else ''} --epochs {args.epochs} --lr {args.lr} "
            f"--workdir {args.workdir} --out {os.path.relpath(args.out)}")


def alone(model: dict[str, Any], supernet: str, args: argparse.Namespace, seed: int = 0) -> dict[str, Any]:
    """``model``'s architecture retrained from scratch for ``--epochs`` (the references' budget) and exported,
    as ``hwnas export --retrain-epochs`` does (``hwnas.export.subnet_training``: the trainer ``hwnas train
    --fixed-arch`` runs, on the supernet's train/val split), scored as the fine-tuned model is. ``seed``
    sets the initial weights and the batches' order and augmentation. Resumes an interrupted run; a
    finished one is reused."""
    result = trained_export(model["arch"], supernet, args.workdir / f"{model['name']}.alone-seed{seed}.onnx", args,
                            retrain_epochs=args.epochs, seed=seed)
    return {"seed": seed, "test_accuracy": result.fp32.accuracy, "epochs": args.epochs,
            "train_seconds": result.trained["train_seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a quickstart run folder (its export/ and search/)")
    source.add_argument("--arch", action="append", metavar="NAME=FILE",
                        help="an architecture JSON file of --supernet to fine-tune (repeatable)")
    parser.add_argument("--supernet", help="supernet checkpoint of the --arch architectures")
    parser.add_argument("--alone", action="store_true",
                        help="also train each architecture alone from scratch for --epochs (the references' budget)")
    parser.add_argument("--alone-seeds", default="0",
                        help="comma-separated training seeds of the --alone runs (same split), for their spread")
    parser.add_argument("--models", help="comma-separated exported model names of --run (default: all)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu-1thread", help="device profile the models are timed on")
    parser.add_argument("--workdir", type=Path, default=Path("runs/finetune"))
    parser.add_argument("--out", type=Path, default=RESULTS / "finetune_front.json")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.arch:
        if not args.supernet:
            parser.error("--arch needs --supernet")
        supernet = args.supernet
        space, models = arch_models(args.arch, supernet, args)
    else:
        space, supernet, models = front_models(args.run, args.models.split(",") if args.models else None)
    channels = get_space(space).in_channels
    profile = load_device_profile(args.device)
    rows, files = [], []
    for model in models:
        result = trained_export(model["arch"], supernet, args.workdir / f"{model['name']}.onnx", args,
                                finetune_epochs=args.epochs, finetune_lr=args.lr)
        tuned = result.trained
        res = model["arch"]["resolution"]
        files.append((f"{model['name']}-tuned", result.fp32.accuracy,
                      (Path(result.fp32.path).read_bytes(), (profile.batch_size, channels, res, res))))
        rows.append({"model": model["name"], "arch": model["arch"], "macs": model["macs"],
                     "supernet_test_accuracy": model["fp32"]["accuracy"], "tuned_test_accuracy": result.fp32.accuracy,
                     "gain": round(result.fp32.accuracy - model["fp32"]["accuracy"], 4),
                     "tune_seconds": tuned["train_seconds"], "tune_val_accuracy": tuned["val_accuracy_by_epoch"]})
        if args.alone:
            rows[-1]["alone"] = [alone(model, supernet, args, int(seed)) for seed in args.alone_seeds.split(",")]
            for run in rows[-1]["alone"]:
                print(f"{model['name']} trained alone (seed {run['seed']}): {100 * run['test_accuracy']:.2f} % after "
                      f"{args.epochs} epochs ({run['train_seconds']:.0f} s)", flush=True)
        print(f"{model['name']}: {100 * rows[-1]['supernet_test_accuracy']:.2f} % -> "
              f"{100 * result.fp32.accuracy:.2f} % after {args.epochs} epochs ({tuned['train_seconds']:.0f} s)", flush=True)
    load_before = list(os.getloadavg())
    timed = compare_with_references(load_references(shipped(REFERENCE_MODELS)), files, profile)
    latency = {r["model"].removesuffix("-tuned"): r["latency_ms_now"] for r in timed if r.get("exported")}
    for row in rows:
        row["latency_ms_now"] = latency[row["model"]]
    references = [r for r in timed if not r.get("exported")]
    for r in references:
        print(f"{r['model']}: {100 * r['test_accuracy']:.2f} % at {r['latency_ms_now']:.4f} ms, beaten by "
              f"{', '.join(r['beaten_by']) or 'none'}")
    atomic_write_json(args.out, {
        "what": f"{'given architectures' if args.arch else 'exported quickstart models'} fine-tuned from the supernet (distilled from its largest subnet), "
                "test accuracy before and after (10k images, ONNX Runtime), latency timed with the references",
        "command": command_line(args, rows),
        "budget": f"supernet training (its train log) plus {args.epochs} fine-tuning epochs per model, lr {args.lr} "
                  "(not tuned: one setting, chosen before any result); references: trained alone "
                  "(reference_models.json)" + (f"; 'alone': each architecture trained from scratch for {args.epochs} "
                                               "epochs by hwnas train --fixed-arch" if args.alone else ""),
        "epochs": args.epochs, "run": str(args.run) if args.run else None, "space": space, "supernet": supernet, "device": args.device,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_before_timing": load_before,
        "rows": rows, "references": references})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
