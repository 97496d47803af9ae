"""Does a latency table predict what a deployed model measures? Fresh subnets, timed as `hwnas export` does.

A table's own validation times its subnets in the same interleaved passes as its entries. A user,
though, compares the table with a model measured later, on its own or with a few others (``hwnas
export`` times the exported models of a run together for >= 5 s). This benchmark does exactly that:
``--n`` fresh random subnets (a seed the profile never used) are exported and timed in groups of
``--group`` with :func:`hwnas.latency.measure.time_models`, and compared with the table's
predictions: share within +-5 % / +-10 %, MAPE, bias, Spearman. Run it for several tables (e.g.
profiled with different interleaving bursts) to compare them in the same run.

Run: ``python experiments/deployment_agreement.py --tables latency_tables/cpu-1thread/fmnist-mbv3.json``
Result: ``experiments/results/deployment_agreement.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import torch

from hwnas.atomic_io import atomic_write_json
from hwnas.latency.block_models import export_onnx
from hwnas.latency.device import load_device_profile
from hwnas.latency.measure import make_measurer, time_models
from hwnas.latency.profiler import accuracy_metrics, sample_distinct
from hwnas.latency.table import LatencyTable
from hwnas.space import get_space
from hwnas.supernet.network import ElasticMobileNetV3

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", nargs="+", required=True, help="latency table JSON files (same space and device)")
    ap.add_argument("--device", default="cpu-1thread")
    ap.add_argument("--space", default="fmnist-mbv3")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--group", type=int, default=5, help="models timed together, as one export run")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "deployment_agreement.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = get_space(args.space)
    tables = {t: LatencyTable.load(t, space) for t in args.tables}
    resolutions = sorted(set.intersection(*(set(t.resolutions) for t in tables.values())))
    archs = sample_distinct(space, args.n, (args.seed, 3), resolutions)
    net = ElasticMobileNetV3(space).eval()
    measurer = make_measurer(load_device_profile(args.device))
    graphs = []
    for a in archs:
        shape = (measurer.profile.batch_size, space.in_channels, a.resolution, a.resolution)
        graphs.append((export_onnx(net.extract(a).eval(), shape), shape))
    measured = []
    for start in range(0, len(graphs), args.group):
        measured += [s.min_ms for s in time_models(measurer, graphs[start:start + args.group])]
    rows = []
    for path, table in tables.items():
        predicted = [table.predict(a) for a in archs]
        m = accuracy_metrics(predicted, measured)
        rows.append({"table": str(path), "protocol": table.meta.get("protocol"), **m})
        print(f"{path}: within10 {m['within10_pct']:.0f}%  within5 {m['within5_pct']:.0f}%  MAPE {m['mape_pct']:.1f}%"
              f"  bias {m['bias_pct']:+.1f}%  Spearman {m['spearman']:.3f}")
    atomic_write_json(args.out, {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                 "device": args.device, "space": args.space, "n": args.n, "group": args.group,
                                 "seed": args.seed, "measured_ms": measured,
                                 "archs": [a.to_dict() for a in archs], "tables": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
