"""Which family gives the better front on this CPU: exported models of several quickstart runs, timed together.

Issue 20 (item 5) asks for the MobileNetV3 space and a plain-convolution space on one Pareto plot;
issue 14 asks whether the searched front beats hand-designed networks. Each quickstart run exports its
front and measures each model's test accuracy (ONNX Runtime, official 10k test set); latencies of two
runs made at different moments are not comparable on this drifting VM, so this script times every
exported model of every run and the hand-designed references again, in one interleaved group (the
references' own timing path, :func:`hwnas.export.references.compare_with_references`), and plots
measured accuracy against measured latency.

    python experiments/family_fronts.py --run fmnist-mbv3=runs/qs-mbv3 --run fmnist-cnn=runs/qs-cnn
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from hwnas.atomic_io import atomic_write_json
from hwnas.export.references import compare_with_references, load_references
from hwnas.latency.device import load_device_profile
from hwnas.paths import REFERENCE_MODELS
from hwnas.quickstart import shipped
from hwnas.space import get_space

RESULTS = Path(__file__).parent / "results"


def exported_models(label: str, run: Path, batch: int) -> list[tuple[str, float, Any]]:
    """(name, test accuracy, (onnx bytes, input shape)) of every verified FP32 model a quickstart exported."""
    summary = json.loads((run / "export" / "summary.json").read_text())
    space = get_space(label)
    out = []
    for model in summary["models"]:
        fp32 = model.get("fp32")
        if model.get("status") != "ok" or not fp32 or fp32.get("accuracy") is None:
            continue
        res = model["arch"]["resolution"]
        out.append((f"{label}/{model['name']}", fp32["accuracy"],
                    (Path(fp32["path"]).read_bytes(), (batch, space.in_channels, res, res))))
    return out


def plot(rows: list[dict[str, Any]], path: Path, device: str) -> list[str]:
    """Measured accuracy against measured latency, one line per family, the references as stars;
    returns the legend's labels."""
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    families = sorted({r["model"].split("/")[0] for r in rows if r.get("exported")})
    for family, marker in zip(families, itertools.cycle("os^Dvp")):
        pts = sorted((r["latency_ms_now"], 100 * r["test_accuracy"]) for r in rows
                     if r.get("exported") and r["model"].startswith(family + "/"))
        ax.plot(*zip(*pts), marker=marker, label=f"{family} (searched, exported)")
    for r in rows:
        if not r.get("exported"):
            ax.scatter(r["latency_ms_now"], 100 * r["test_accuracy"], marker="*", s=160, color="black", zorder=5)
            ax.annotate(r["model"], (r["latency_ms_now"], 100 * r["test_accuracy"]), textcoords="offset points",
                        xytext=(6, -10))
    ax.set_xlabel(f"measured latency on {device} (ms, timed together)")
    ax.set_ylabel("test accuracy (%), ONNX Runtime, 10k images")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [text.get_text() for text in ax.get_legend().get_texts()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="SPACE=RUN_DIR",
                        help="a quickstart run folder and the space it searched (give two or more)")
    parser.add_argument("--device", default="cpu-1thread")
    parser.add_argument("--out", type=Path, default=RESULTS / "family_fronts.json")
    args = parser.parse_args()
    profile = load_device_profile(args.device)
    load_before = list(os.getloadavg())
    models = []
    for spec in args.run:
        label, _, run = spec.partition("=")
        models += exported_models(label, Path(run), profile.batch_size)
    rows = compare_with_references(load_references(shipped(REFERENCE_MODELS)), models, profile)
    for r in sorted(rows, key=lambda r: r["latency_ms_now"]):
        tag = "" if r.get("exported") else f"  beaten by {len(r['beaten_by'])}: {', '.join(r['beaten_by'])}"
        print(f"{r['model']:28s} {100 * r['test_accuracy']:6.2f} %  {r['latency_ms_now']:.4f} ms{tag}")
    plot(rows, args.out.with_suffix(".png"), args.device)
    atomic_write_json(args.out, {"what": "exported front models of each family and hand-designed references, test "
                                         "accuracy from their files, latency timed together in one interleaved group",
                                 "command": "python experiments/family_fronts.py " + " ".join(f"--run {r}" for r in args.run),
                                 "device": args.device, "loadavg_before": load_before, "rows": rows})
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
