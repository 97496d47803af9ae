"""How much fine-tuning a searched subnet gains: the exported models of a quickstart run, each fine-tuned
from the supernet's weights with distillation from its largest subnet, exported again and timed
beside the hand-designed references.

Once-for-all fine-tunes the subnets it deploys (its paper: 25 epochs on ImageNet); hwnas's quickstart
exports them with the supernet's weights as they are, and the standalone table
(``results/supernet_quality_resvgg_standalone.json``) puts the weight-sharing cost of ``fmnist-resvgg``'s
middle subnets at 0.64-0.74 points. This measures what ``hwnas export --finetune-epochs`` (the trainer,
data pipeline and schedule of the supernet and the references, via ``hwnas.export.finetune``) recovers,
and whether a fine-tuned front model then beats the small CNN. The fine-tuned models get ``--epochs``
epochs on top of the supernet's training, which the references (trained alone, ``reference_models.json``)
do not: the result file states both budgets.

    hwnas quickstart --space fmnist-resvgg --budget-ms 0.4 --models 6 --out runs/qs-resvgg   # the run (as family_fronts)
    python experiments/finetune_front.py --run runs/qs-resvgg --models front012,front006,front000 --epochs 6
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


def tuned_export(arch: dict[str, Any], supernet: str, path: Path, args: argparse.Namespace) -> Any:
    """The subnet fine-tuned (``path.finetune/``, resumed or reused on a rerun) and exported as ONNX, its
    test accuracy measured on the whole test set as the quickstart measures it."""
    arch_file = path.with_suffix(".arch.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    arch_file.write_text(json.dumps(arch))
    return export_architecture(arch_file, ExportSettings(out=path, supernet=supernet, eval_images=10_000,
                                                         no_measure=True, overwrite=True, finetune_epochs=args.epochs,
                                                         finetune_lr=args.lr, progress=not args.no_progress))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a quickstart run folder (its export/ and search/)")
    parser.add_argument("--models", help="comma-separated exported model names (default: all)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu-1thread", help="device profile the models are timed on")
    parser.add_argument("--workdir", type=Path, default=Path("runs/finetune"))
    parser.add_argument("--out", type=Path, default=RESULTS / "finetune_front.json")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    space, supernet, models = front_models(args.run, args.models.split(",") if args.models else None)
    channels = get_space(space).in_channels
    profile = load_device_profile(args.device)
    rows, files = [], []
    for model in models:
        result = tuned_export(model["arch"], supernet, args.workdir / f"{model['name']}.onnx", args)
        tuned = result.finetuned
        res = model["arch"]["resolution"]
        files.append((f"{model['name']}-tuned", result.fp32.accuracy,
                      (Path(result.fp32.path).read_bytes(), (profile.batch_size, channels, res, res))))
        rows.append({"model": model["name"], "arch": model["arch"], "macs": model["macs"],
                     "supernet_test_accuracy": model["fp32"]["accuracy"], "tuned_test_accuracy": result.fp32.accuracy,
                     "gain": round(result.fp32.accuracy - model["fp32"]["accuracy"], 4),
                     "tune_seconds": tuned["train_seconds"], "tune_val_accuracy": tuned["val_accuracy_by_epoch"]})
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
        "what": "exported quickstart models fine-tuned from the supernet (distilled from its largest subnet), "
                "test accuracy before and after (10k images, ONNX Runtime), latency timed with the references",
        "command": f"python experiments/finetune_front.py --run {args.run} --models {','.join(m['model'] for m in rows)} "
                   f"--epochs {args.epochs} --lr {args.lr}",
        "budget": f"supernet training (its train log) plus {args.epochs} fine-tuning epochs per model, lr {args.lr} "
                  "(not tuned: one setting, chosen before any result); references: trained alone "
                  "(reference_models.json)",
        "run": str(args.run), "space": space, "supernet": supernet, "device": args.device,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_before_timing": load_before,
        "rows": rows, "references": references})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
