"""``hwnas quickstart``: the main job on the embedded default, in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """
Profiles this machine's CPU (fast mode), times the hand-designed reference networks, searches the
shipped Fashion-MNIST supernet under their latency with the shipped accuracy predictor, exports the
Pareto front to ONNX (the most accurate model retrained from scratch first, as the references are),
measures the exported models beside the references and prints a summary. Its wall time is in the run's
quickstart.json (this project's run on 2 cores: experiments/results/quickstart.json).

examples:
  hwnas quickstart
  # faster: export the supernet's weights as they are, no retraining
  hwnas quickstart --retrain-epochs 0 --out runs/qs-fast
  hwnas quickstart --out runs/qs2 --budget-ms 0.8 --models 6
  hwnas quickstart --device cpu-all --overwrite
  # each exported model fine-tuned 6 epochs from the supernet first (60-90 s an epoch per fmnist-resvgg model on 2 cores)
  hwnas quickstart --finetune-epochs 6 --out runs/qs-tuned
  # another shipped space (hwnas spaces lists them)
  hwnas quickstart --space fmnist-vgg --out runs/qs-vgg
  # your own trained supernet and predictor (hwnas train, hwnas collect, hwnas fit-predictor)
  hwnas quickstart --space fmnist-cnn --supernet runs/train-cnn/supernet.safetensors \
      --predictor predictors/fmnist-cnn/accuracy_xgb.json --out runs/qs-cnn
"""


def register(sub: argparse._SubParsersAction) -> None:
    from hwnas.quickstart import QuickstartOptions

    d = QuickstartOptions()
    p = sub.add_parser("quickstart", help="profile this CPU, search, export, measure (embedded default)",
                       description=__doc__ + EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=d.out, help=f"run folder (default {d.out})")
    p.add_argument("--device", default=d.device, help=f"device profile to profile and measure (default {d.device})")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="latency budget; default: the slowest hand-designed reference's latency on this machine, "
                        "timed at the start (half the largest subnet's without references)")
    p.add_argument("--evaluations", type=int, default=d.evaluations, help="search evaluations")
    p.add_argument("--models", type=int, default=d.models, help="front models to export and measure")
    p.add_argument("--validate", type=int, default=d.validate, help="subnets measured to validate the table")
    p.add_argument("--space", default=d.space, help=f"search space of the supernet (default {d.space})")
    p.add_argument("--supernet", type=Path, default=None,
                   help="supernet checkpoint (default: the space's shipped checkpoints/<space>.safetensors)")
    p.add_argument("--predictor", type=Path, default=None,
                   help="accuracy predictor (default: the space's shipped predictors/<space>/accuracy_xgb.json)")
    p.add_argument("--eval-images", type=int, default=d.eval_images,
                   help=f"test images each exported model is scored on (default {d.eval_images}: the whole "
                        "Fashion-MNIST test set, as the references are)")
    p.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                   help=f"fine-tune each exported model this many epochs from the supernet's weights first "
                        f"(default {d.finetune_epochs}; minutes per model on a CPU)")
    p.add_argument("--retrain-epochs", type=int, default=None,
                   help=f"retrain the most accurate exported model(s) from scratch this many epochs first, as the "
                        f"hand-designed references are trained (default {d.retrain_epochs}, the references' budget: "
                        f"the longest stage of a quickstart; 0 exports the supernet's weights as they are, in "
                        f"minutes; 0 when --finetune-epochs is given)")
    p.add_argument("--train-top", type=int, default=d.train_top, metavar="N",
                   help=f"how many of the most accurate exported models to retrain or fine-tune (default {d.train_top})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the search, the subsets and the retraining")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (keeps its table, budget and finished retraining "
                        "or fine-tunes)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hwnas import paths
    from hwnas.errors import ConfigError, HwnasError
    from hwnas.quickstart import QuickstartOptions, run_quickstart
    from hwnas.space import get_space

    get_space(args.space)  # an unknown space fails with the list of known ones
    if args.finetune_epochs and args.retrain_epochs:
        raise ConfigError("--finetune-epochs and --retrain-epochs exclude each other: the models are either "
                          "fine-tuned from the supernet's weights or retrained from scratch; pass one")
    opts = QuickstartOptions(out=args.out, device=args.device, budget_ms=args.budget_ms, space=args.space,
                             supernet=args.supernet, predictor=args.predictor, evaluations=args.evaluations,
                             models=args.models, validate=args.validate, eval_images=args.eval_images,
                             finetune_epochs=args.finetune_epochs, train_top=args.train_top,
                             **({} if args.retrain_epochs is None else {"retrain_epochs": args.retrain_epochs}),
                             seed=args.seed, overwrite=args.overwrite, resume=args.resume,
                             progress=not args.no_progress)
    shipped = (("--supernet", args.supernet, opts.supernet_path, paths.shipped_supernet_path(args.space)),
               ("--predictor", args.predictor, opts.predictor_path, paths.default_predictor_path(args.space)))
    for flag, given, find, default in shipped:
        try:
            find()
        except HwnasError:
            if given is not None:
                raise
            raise ConfigError(f"space {args.space!r} ships no {default}; pass {flag} (train with hwnas train, "
                              "label with hwnas collect, fit with hwnas fit-predictor)") from None
    run_quickstart(opts)
    return 0
