"""Noise ceiling of accuracy labels: the best Kendall tau a perfect predictor can reach against one
label of the collection protocol (method and assumptions: hwnas/accuracy/label_noise.py; both are
written into the result file).

Input: a repeat data set from ``hwnas collect --repeat-calibration`` (``accuracy`` vs ``accuracy_2``:
other calibration images, same validation images; ``accuracy_half1`` / ``accuracy_half2``: the
two validation halves of ``accuracy``, when the collection recorded them). Older repeat sets
without the halves give an upper bound (validation-sampling noise unmeasured); the file says so.

    python experiments/noise_ceiling.py --data predictors/fmnist-mbv3-repeat/dataset.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hwnas.accuracy.collect import META_FILE, read_records
from hwnas.accuracy.label_noise import ceiling_from_records, label_step
from hwnas.atomic_io import atomic_write_json
from hwnas.errors import DataError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("predictors/fmnist-mbv3-repeat/dataset.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("experiments/results/noise_ceiling.json"))
    parser.add_argument("--draws", type=int, default=500, help="simulation draws (default 500)")
    args = parser.parse_args(argv)
    meta_file = args.data.with_name(META_FILE)
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    ceiling = ceiling_from_records(read_records(args.data), quantum=label_step(meta),
                                   draws=args.draws)
    if ceiling is None:
        raise DataError(f"{args.data} has fewer than 10 records with accuracy_2; collect a repeat set with "
                        "`hwnas collect --repeat-calibration`")
    result = {"data": str(args.data), "supernet_sha256": meta.get("supernet_sha256"),
              "val_images": meta.get("val_images"), "calib_images": meta.get("calib_images"),
              "command": "python experiments/noise_ceiling.py --data " + str(args.data), **ceiling.to_dict()}
    print(f"{'n':>5s} {'noise sd':>9s} {'label sd':>9s} {'reliab.':>8s} {'tau sim':>8s} {'tau gauss':>9s} "
          f"{'tau repeats':>11s}")
    print(f"{ceiling.n:5d} {ceiling.noise_std:9.5f} {ceiling.label_std:9.5f} {ceiling.reliability:8.3f} "
          f"{ceiling.tau_simulated:8.3f} {ceiling.tau_analytic:9.3f} {ceiling.tau_between_repeats:11.3f}")
    lo, hi = ceiling.tau_analytic_interval
    print(f"bootstrap over subnets, 90 % interval of the Gaussian ceiling: {lo:.3f} .. {hi:.3f}")
    print(f"calibration noise only (if the validation images' sampling error were learnable): tau "
          f"{ceiling.tau_calibration_only:.3f}")
    print(ceiling.method)
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
