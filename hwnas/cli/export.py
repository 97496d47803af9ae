"""``hwnas export``: turn searched architectures into verified ONNX models, measured on real devices.

For every picked model: extract the subnet from the supernet, recalibrate its BN statistics on
training images, fold BN, export to ONNX, check ONNX Runtime against PyTorch on real test images
(relative error <= 1e-4, else the file is removed and the model marked failed), measure the ONNX
model's own test accuracy, time it on each device profile, and optionally quantise it to INT8.
A run folder gets report.md, report.png and summary.json comparing predicted with measured numbers.
The pipeline is :mod:`hwnas.export.pipeline`; this module only maps options onto its settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from hwnas.errors import ConfigError
from hwnas.export.settings import EXPORTERS, OFA_SUPERNET, OFA_SUPERNETS, PICK_HELP, TABLE_OPSET, ExportSettings

EXAMPLES = """
examples:
  # every model of a search's Pareto front, measured on the devices the search used
  hwnas export runs/search-cpu --out exports/cpu
  # the search's pick under each latency budget (picks.json), also as INT8, timed on one CPU thread
  hwnas export runs/search-cpu --pick budget --int8 --measure cpu-1thread --out exports/budget
  # 5 models spread evenly along the front by latency
  hwnas export runs/search-cpu --pick 5 --out exports/five
  # ... each fine-tuned 6 epochs from the supernet first (minutes per model on a CPU)
  hwnas export runs/search-cpu --pick 5 --finetune-epochs 6 --out exports/five-tuned
  # ... or the most accurate one retrained from scratch for 18 epochs (as the references are)
  hwnas export runs/search-cpu --pick 5 --retrain-epochs 18 --train-top 1 --out exports/five-retrained
  # one architecture (hwnas or once-for-all JSON) from a supernet checkpoint
  hwnas export --arch arch.json --supernet checkpoints/fmnist-mbv3.safetensors --out model.onnx
  # one subnet of the published once-for-all supernet (weights file needed, never downloaded)
  hwnas export --arch ofa_arch.json --supernet ofa-mbv3-w1.0 --weights ofa_mbv3_d234_e346_k357_w1.0 \\
      --data ~/imagenet-val-folder --eval-images 1000 --out ofa_subnet.onnx
  # ... without ImageNet: keep the supernet's BN statistics, check parity on random inputs
  hwnas export --arch ofa_arch.json --supernet ofa-mbv3-w1.0 --weights ofa_mbv3_d234_e346_k357_w1.0 \\
      --calib-images 0 --eval-images 0 --out ofa_subnet.onnx
"""


def register(sub: argparse._SubParsersAction) -> None:
    d = ExportSettings(out=Path("."))
    p = sub.add_parser("export", help="export searched models to ONNX, verify and measure them",
                       description=__doc__ + EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", type=Path, help="search run folder holding front.json and config.json")
    p.add_argument("--out", required=True, type=Path,
                   help="output folder (run mode) or .onnx file (--arch mode); never overwritten without --overwrite")
    p.add_argument("--pick", default=d.pick, help=f"{PICK_HELP}; default {d.pick}")
    p.add_argument("--arch", type=Path, help="export one architecture from this JSON file instead of a run")
    p.add_argument("--supernet", help=f"supernet checkpoint, or {' / '.join(OFA_SUPERNETS)} with --weights "
                                      "(default in run mode: the run's config.json)")
    p.add_argument("--weights", type=Path, help=f"published once-for-all weights file for --supernet {OFA_SUPERNET}")
    p.add_argument("--measure", nargs="+", metavar="DEVICE",
                   help="device profiles (names or .yaml) to time models on; run mode defaults to the run's devices")
    p.add_argument("--no-measure", action="store_true", help="do not measure latency")
    p.add_argument("--repeats", type=int, help="override the profiles' timed repeats")
    p.add_argument("--int8", action="store_true", help="also write an INT8 (QDQ, per-channel) model per export")
    p.add_argument("--calib-images", type=int, default=d.calib_images,
                   help=f"training images for BN recalibration ({d.calib_images}); 0 keeps the supernet's "
                        "BN statistics (no images needed, lower accuracy)")
    p.add_argument("--eval-images", type=int, default=d.eval_images,
                   help=f"test images to measure accuracy on ({d.eval_images}, sized for a CPU); 0 skips accuracy")
    p.add_argument("--int8-calib-images", type=int, default=d.int8_calib_images,
                   help=f"training images for INT8 ranges ({d.int8_calib_images})")
    p.add_argument("--parity-images", type=int, default=d.parity_images,
                   help=f"inputs for the ONNX-vs-PyTorch parity check ({d.parity_images}): test images, "
                        "or seeded random inputs when the export reads no data")
    p.add_argument("--data", help="data set: 'fashion-mnist' or an image folder (default: the supernet's own; "
                                  "not needed with --calib-images 0 --eval-images 0)")
    p.add_argument("--batch", type=int, help="fixed batch size (default: a dynamic batch axis)")
    p.add_argument("--opset", type=int, default=None,
                   help=f"ONNX opset (default {TABLE_OPSET}, the latency tables' own; 18 with --exporter dynamo)")
    p.add_argument("--exporter", choices=EXPORTERS, default=d.exporter, help="torch.onnx exporter")
    p.add_argument("--torch-device", default=d.torch_device, help="torch device for BN recalibration (cpu, cuda)")
    p.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                   help="fine-tune each model this many epochs from the supernet's weights, distilled from its "
                        "largest subnet, before export (default 0: export the shared weights as they are); "
                        "resumes with --overwrite after an interruption")
    p.add_argument("--finetune-lr", type=float, default=d.finetune_lr, help=f"fine-tuning learning rate ({d.finetune_lr})")
    p.add_argument("--retrain-epochs", type=int, default=d.retrain_epochs,
                   help="instead, retrain each model this many epochs from scratch before export, with hwnas train "
                        "--fixed-arch's recipe (the hand-designed references' own); resumes with --overwrite")
    p.add_argument("--train-top", type=int, default=d.train_top, metavar="N",
                   help="fine-tune or retrain only the N models of highest predicted accuracy; the others keep "
                        "the supernet's weights (default: every exported model)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the calibration subsets and of a retraining")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> ExportSettings:
    return ExportSettings(
        out=args.out, pick=str(args.pick), supernet=args.supernet, weights=args.weights, data=args.data,
        measure=tuple(args.measure) if args.measure is not None else None, no_measure=args.no_measure,
        repeats=args.repeats, int8=args.int8, calib_images=args.calib_images, eval_images=args.eval_images,
        int8_calib_images=args.int8_calib_images, parity_images=args.parity_images, batch=args.batch,
        opset=args.opset, exporter=args.exporter, torch_device=args.torch_device,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, retrain_epochs=args.retrain_epochs,
        train_top=args.train_top, seed=args.seed,
        overwrite=args.overwrite, progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    if (args.run_dir is None) == (args.arch is None):
        raise ConfigError("give either a RUN_DIR (export a search's front) or --arch FILE (one architecture), "
                          "not both and not neither; see hwnas export --help")
    from hwnas.export import pipeline

    settings = settings_from_args(args)
    if args.arch is not None:
        result = pipeline.export_architecture(args.arch, settings)
        if result.status != "ok":
            print(f"hwnas export: {result.error}", file=sys.stderr)
            return 1
        _print_result(result, [d for d in (result.fp32.latency if result.fp32 else {})])
        return 0
    outcome = pipeline.export_run(args.run_dir, settings)
    print(f"exported {len(outcome.results) - len(outcome.failed)} of {len(outcome.results)} models to "
          f"{outcome.models_dir}; report: {outcome.report['markdown']}")
    for r in outcome.failed:
        print(f"hwnas export: {r.name} failed: {r.error}", file=sys.stderr)
    return 1 if outcome.failed else 0


def _print_result(result: Any, devices: Sequence[str]) -> None:
    for label, f in (("FP32", result.fp32), ("INT8", result.int8)):
        if f is None:
            continue
        lat = ", ".join(f"{d} {f.latency_ms(d):.3f} ms" for d in devices if f.latency_ms(d) is not None)
        accuracy = "not measured" if f.accuracy is None else f"{100 * f.accuracy:.2f}%"
        print(f"{label} {f.path}: {f.size_bytes / 1e6:.2f} MB, test accuracy {accuracy}"
              + (f", {lat}" if lat else ""))
    if result.parity:
        print(f"parity vs PyTorch: max rel {result.parity['max_rel']:.2e} on {result.parity['images']} "
              f"{result.parity.get('inputs', 'test images')}")
