"""What one elastic step costs a plain-family supernet's subnets: one layer or one width step less.

Scores, on the 10,000-image test set after BN recalibration (as ``supernet_quality.py`` does), the
largest subnet, the largest with one stage a layer shorter (each stage in turn), with one stage a
width step narrower (each in turn), the ``small-cnn``-like subnet (depth 2, 2, 1; widths 1.0, 1.0,
0.25) and the smallest. Trained alone, a network one layer shorter loses little; a supernet whose
shorter subnets lose points by the handful shares its weights badly. This is the measurement that
put identity skips into the plain family (``PlainSpace.residual``, the ``fmnist-resvgg`` space).

Run: ``python experiments/depth_sensitivity.py --supernet fmnist-vgg=checkpoints/fmnist-vgg.safetensors
--supernet probe-vgg=runs/probe-vgg4/supernet.safetensors ...`` -> ``experiments/results/depth_sensitivity.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import torch

from hwnas.atomic_io import atomic_write_json
from hwnas.data import load_dataset
from hwnas.plain_arch import PlainArchitecture, largest_plain_architecture, smallest_plain_architecture
from hwnas.supernet.checkpoint import load_supernet
from supernet_quality import test_accuracy  # experiments/ is the script's folder, so on sys.path

REPO = Path(__file__).resolve().parents[1]


def probes(space) -> dict[str, PlainArchitecture]:
    """The largest subnet, one elastic step away from it in each stage, a small-cnn-like one, the smallest."""
    big = largest_plain_architecture(space)
    archs = {"largest": big}
    for stage in range(space.num_stages):
        depth = tuple(d - (i == stage) for i, d in enumerate(big.depth))
        archs[f"stage{stage + 1} one layer fewer"] = PlainArchitecture(depth, big.kernel, big.width, big.resolution)
        width = tuple(w - (i == stage) for i, w in enumerate(big.width))
        archs[f"stage{stage + 1} one width step less"] = PlainArchitecture(big.depth, big.kernel, width, big.resolution)
    if space.num_stages == 3:
        full = len(space.width_mults) - 1
        archs["small-cnn-like"] = PlainArchitecture((2, 2, 1), big.kernel, (full, full, 0), big.resolution)
    archs["smallest"] = smallest_plain_architecture(space)
    return archs


def score(path: str, dataset) -> dict:
    net, extra = load_supernet(path)
    net.eval()
    rows = [{"subnet": name, "arch": arch.to_dict(), "test_accuracy": test_accuracy(net, arch, dataset)}
            for name, arch in probes(net.space).items()]
    for row in rows:
        row["minus_largest"] = round(row["test_accuracy"] - rows[0]["test_accuracy"], 4)
        print(f"{Path(path).name:28s} {row['subnet']:28s} {100 * row['test_accuracy']:6.2f} % "
              f"({100 * row['minus_largest']:+.2f})", flush=True)
    config = extra.get("train_config", {})
    return {"space": net.space.name, "epochs": config.get("epochs"), "threads": config.get("threads"),
            "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", action="append", required=True, metavar="LABEL=PATH",
                        help="a plain-family supernet checkpoint, labelled; repeat for several")
    parser.add_argument("--note", action="append", default=[], metavar="LABEL=TEXT",
                        help="how a supernet was trained (e.g. its hwnas train command); repeat")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "depth_sensitivity.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset("fashion-mnist", val_size=5000, seed=0)
    notes = dict(n.split("=", 1) for n in args.note)
    supernets = {}
    for item in args.supernet:
        label, _, path = item.partition("=")
        supernets[label] = {"checkpoint": path, "trained_by": notes.get(label), **score(path, dataset)}
    atomic_write_json(args.out, {
        "what": "test accuracy (10k images, BN recalibrated on 2,000 training images) of a plain supernet's "
                "largest subnet and of subnets one elastic step from it",
        "command": "python experiments/depth_sensitivity.py " + " ".join(
            [f"--supernet {s}" for s in args.supernet] + [f"--note '{n}'" for n in args.note]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "supernets": supernets})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
