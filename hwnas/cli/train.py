"""``hwnas train``: train a once-for-all supernet (sandwich rule + in-place distillation)."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import fields
from pathlib import Path

from hwnas.errors import ConfigError

EXAMPLES = """
examples:
  # the embedded default: Fashion-MNIST, fmnist-resvgg space, on the GPU if there is one
  hwnas train --out runs/train-fmnist
  # continue an interrupted run exactly where it stopped
  hwnas train --out runs/train-fmnist --resume
  # your own images (one folder per class), 4 GPUs
  torchrun --nproc_per_node 4 -m hwnas.cli train --data ~/my_images --space fmnist-mbv3 --out runs/mine
  # a standalone baseline: one subnet alone, from scratch, with the same code and data pipeline
  hwnas train --out runs/standalone-largest --epochs 15 --fixed-arch my_arch.json
  # fine-tune one searched subnet from the supernet, distilled from its largest subnet (before deployment)
  hwnas train --out runs/tuned --epochs 6 --warmup-epochs 0 --lr 1e-3 --fixed-arch my_arch.json --init-from SUPERNET
  # a smoke run on the CPU: a few batches per epoch
  hwnas train --out /tmp/smoke --epochs 1 --max-steps-per-epoch 5 --device cpu
"""


def register(sub: argparse._SubParsersAction) -> None:
    from hwnas.training import TrainConfig

    p = sub.add_parser("train", help="train a once-for-all supernet", description=__doc__ + EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig()
    p.add_argument("--out", required=True, help="run folder (checkpoints, log, final supernet)")
    p.add_argument("--data", dest="dataset", default=defaults.dataset,
                   help="'fashion-mnist' or an image folder (one sub-folder per class)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--copy-to", type=Path, help="also copy the final supernet here (e.g. checkpoints/)")
    for f in fields(TrainConfig):
        if f.name == "dataset":
            continue
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        if isinstance(value, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=value, help=f"(default {value})")
        elif value is None:  # split_seed: follows --seed unless given
            p.add_argument(flag, type=int, default=None, help="(default: --seed)")
        else:
            p.add_argument(flag, type=type(value), default=value, help=f"(default {value})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hwnas.training import SupernetTrainer, TrainConfig

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.resume and not (out / "train_state.pt").exists():
        raise ConfigError(f"{out} exists and is not empty; choose another --out")
    result = SupernetTrainer(config, out).run(resume=args.resume, progress=not args.no_progress)
    if args.copy_to:
        args.copy_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result["checkpoint"], args.copy_to)
    last = result["history"][-1]
    accuracies = "  ".join(f"{k[len('val_acc_'):]} val acc {v:.4f}" for k, v in last.items() if k.startswith("val_acc_"))
    print(f"supernet: {result['checkpoint']}  {accuracies}")
    return 0
