"""``hwnas collect``: measure subnet accuracies (BN-recalibrated) to train accuracy predictors."""

from __future__ import annotations

import argparse

EXAMPLES = """
examples:
  # 3000 subnets of the shipped supernet into predictors/fmnist-mbv3/dataset.jsonl (resumable)
  hwnas collect --supernet checkpoints/fmnist-mbv3.safetensors --n 3000
  # also a second BN calibration per subnet (accuracy_2) to measure the noise ceiling
  hwnas collect --supernet checkpoints/fmnist-mbv3.safetensors --n 300 --repeat-calibration \\
      --out predictors/fmnist-mbv3-repeat/
  # INT8 labels too: each subnet statically quantised (ONNX Runtime QDQ, per-channel) with ranges from
  # one fixed set of 300 training images, into predictors/fmnist-mbv3/int8/dataset.jsonl
  hwnas collect --supernet checkpoints/fmnist-mbv3.safetensors --n 300 --precision int8
  # 4 GPUs: each rank measures every 4th subnet, rank 0 merges the shards at the end (spell out
  # --num-subnets here: torchrun's own parser mistakes --n for an abbreviation of its options)
  torchrun --nproc_per_node 4 -m hwnas.cli collect --supernet checkpoints/fmnist-mbv3.safetensors --num-subnets 3000
"""


def register(sub: argparse._SubParsersAction) -> None:
    from hwnas.accuracy.collect import CollectConfig

    d = CollectConfig(supernet="", n=1)
    p = sub.add_parser("collect", help="measure subnet accuracies for predictor training",
                       description=__doc__ + "\n" + (
                           "Interrupt at any time: rerunning the same command skips subnets already measured.\n"
                           + EXAMPLES), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True, help="supernet checkpoint (.safetensors from `hwnas train`)")
    p.add_argument("--n", "--num-subnets", dest="n", type=int, required=True,
                   help="number of subnets in the data set (say --num-subnets under torchrun)")
    p.add_argument("--out", help="output folder (default predictors/<space>/)")
    p.add_argument("--val-images", type=int, default=d.val_images,
                   help=f"fixed validation subset per subnet, 0 = all (default {d.val_images})")
    p.add_argument("--calib-images", type=int, default=d.calib_images,
                   help=f"training images for BN recalibration (default {d.calib_images})")
    p.add_argument("--seed", type=int, default=d.seed, help="architecture sampling seed")
    p.add_argument("--calib-seed", type=int, default=d.calib_seed, help="calibration/validation subset seed")
    p.add_argument("--repeat-calibration", action="store_true",
                   help="noise protocol: evaluate again with another calibration subset (accuracy_2) and record "
                        "each validation half's accuracy (accuracy_half1/2); see experiments/noise_ceiling.py")
    p.add_argument("--proxy-images", type=int, default=d.proxy_images,
                   help="record proxy_loss: the subnet's loss on this many of its calibration (training) images "
                        "after BN recalibration, a zero-cost proxy candidate (default 0 = off)")
    p.add_argument("--precision", choices=("fp32", "int8"), default=d.precision,
                   help="int8: also quantise each subnet (ONNX Runtime static QDQ, per-channel) and record its "
                        "accuracy_int8 beside the FP32 accuracy (default out predictors/<space>/int8/)")
    p.add_argument("--int8-calib-images", type=int, default=d.int8_calib_images,
                   help="fixed training images (the same for every subnet) for the INT8 activation ranges "
                        f"(default {d.int8_calib_images})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default {d.batch_size})")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1 (default auto)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads, 0 = default")
    p.add_argument("--dataset", help="data set (default: the one the supernet was trained on)")
    p.add_argument("--val-size", type=int, help="validation hold-out size (default: the supernet's)")
    p.add_argument("--data-seed", type=int, help="hold-out seed (default: the supernet's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hwnas.accuracy.collect import CollectConfig, collect

    config = CollectConfig(supernet=args.supernet, n=args.n, out=args.out, val_images=args.val_images,
                           calib_images=args.calib_images, proxy_images=args.proxy_images, seed=args.seed,
                           calib_seed=args.calib_seed,
                           repeat_calibration=args.repeat_calibration, batch_size=args.batch_size,
                           device=args.device, threads=args.threads, dataset=args.dataset,
                           val_size=args.val_size, data_seed=args.data_seed, precision=args.precision,
                           int8_calib_images=args.int8_calib_images)
    summary = collect(config, progress=not args.no_progress)
    if summary["total_records"] is None:  # a non-zero torchrun rank
        return 0
    per = summary["seconds_per_subnet"]
    rate = summary["subnets_per_second"]
    # under torchrun, rank 0 speaks for its own shard: say so, or 150 of 300 subnets reads as half done
    who = f"rank 0 of {summary['world']} " if summary.get("world", 1) > 1 else ""
    print(f"{who}measured {summary['measured']} {summary['precision'].upper()} subnets ({per:.2f} s per subnet, "
          f"{rate:.2f} subnets/s on {summary['device']}), "
          f"skipped {summary['skipped']} already present; {summary['total_records']} records in {summary['out']}"
          if per is not None else
          f"nothing to do: all {summary['skipped']} subnets already in {summary['out']} "
          f"({summary['total_records']} records)")
    return 0
