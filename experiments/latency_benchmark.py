"""Latency-table benchmark: profiling time, prediction accuracy and batch-prediction throughput.

For each device (default: cpu-1thread and cpu-all) and the 'fmnist-mbv3' space:

* profile the whole space from scratch (every block/stem/head entry + the calibration subnets) and
  report the time it took (target <= 5 minutes);
* validate on 100 held-out random subnets measured end to end: RMSE, MAPE, Spearman and the share
  within +-5% / +-10%, for the plain LUT sum and for the calibrated prediction side by side
  (target >= 95% within +-10%; nn-Meter reports 99.0% for its kernel-level predictor on a phone
  CPU and 91.3% for a plain op-sum);
* batch-predict throughput of ``LatencyTable.predict_genes`` on 100k and 1M random gene rows
  (target >= 1M candidates/s), best of 3.

Measurement protocols are compared side by side in the same run (the machine is shared and noisy,
so only same-run comparisons mean anything; each run writes its result files afresh and never
merges entries of an earlier run): ``interleaved-min`` (hwnas's default: every graph timed
in shared round-robin passes, minimum over passes), ``interleaved-median`` and ``rounds-median``
(each graph's repeats back to back, best of 2 rounds: the usual protocol). Only the default
protocol's table is shipped; the others are written under /tmp.

The tables are written where ``hwnas profile`` puts them (``latency_tables/<device>/fmnist-mbv3.json``
plus reports), so a full run also refreshes the shipped tables. Results:
``experiments/results/latency_<device>.json``.

Run: ``python experiments/latency_benchmark.py`` (full, a few minutes per device on an idle machine)
or ``--quick`` for a small smoke run written under /tmp.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.atomic_io import atomic_write_json
from hwnas.encoding import GeneLayout
from hwnas.latency.device import load_device_profile
from hwnas.latency.profiler import Profiler, ProfileOptions
from hwnas.latency.table import LatencyTable

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"profile_seconds_max": 300.0, "within10_pct_min": 95.0, "throughput_per_s_min": 1e6}
NN_METER = {"kernel_predictor_within10_pct": 99.0, "op_sum_within10_pct": 91.3,
            "source": "nn-Meter (Zhang et al., MobiSys 2021), mobile CPU (Cortex-A76), +-10% accuracy"}


def throughput(table: LatencyTable, n: int, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` candidates/s of calibrated ``predict_genes`` on ``n`` random gene rows."""
    layout = GeneLayout(table.space)
    genes = layout.random(n, np.random.default_rng(n))
    profiled = np.flatnonzero(table.profiled)
    genes[:, layout.resolution_gene] = profiled[genes[:, layout.resolution_gene] % len(profiled)]
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        table.predict_genes(genes)
        best = min(best, time.perf_counter() - t0)
    return {"n": n, "seconds": best, "per_s": n / best}


PROTOCOLS = {  # name -> (interleave, statistic)
    "interleaved-min": (True, "min"),
    "interleaved-median": (True, "median"),
    "rounds-median": (False, "median"),
}
DEFAULT_PROTOCOL = "interleaved-min"


def bench_device(device: str, space: str, args: argparse.Namespace, protocol: str = DEFAULT_PROTOCOL) -> dict[str, Any]:
    profile = load_device_profile(device)
    interleave, statistic = PROTOCOLS[protocol]
    options = ProfileOptions(calibrate=args.calibrate, validate=args.validate, seed=args.seed,
                             force=not args.reuse, rounds=args.rounds, statistic=statistic, interleave=interleave)
    out = args.out if protocol == DEFAULT_PROTOCOL else f"/tmp/hwnas-latency-bench/{protocol}"
    t0 = time.perf_counter()
    result = Profiler(space, profile, out, options, progress=not args.no_progress).run()
    wall = time.perf_counter() - t0
    report = result.report
    speed = [throughput(result.table, n) for n in args.throughput_sizes]
    v = report["validation"]
    return {
        "protocol_name": protocol, "device": profile.to_dict(), "space": report["space"], "runtime": report["runtime"],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "table": str(result.table_path), "entries": report["entries"],
        "profile_seconds": report["seconds"]["profile_total"], "seconds": report["seconds"],
        "run_wall_seconds": wall, "reused_existing_table": result.reused,
        "protocol": report["protocol"], "correction": report["correction"],
        "calibration_candidates": report["calibration_candidates"],
        "validation": {"lut_sum": v["lut_sum"], "calibrated": v["calibrated"]},
        "min_latency_ms": report["min_latency_ms"], "throughput": speed,
        "targets": TARGETS, "reference": NN_METER,
        "meets": {"profile_time": report["seconds"]["profile_total"] <= TARGETS["profile_seconds_max"],
                  "within10": v["calibrated"].get("within10_pct", 0) >= TARGETS["within10_pct_min"],
                  "throughput": min(s["per_s"] for s in speed) >= TARGETS["throughput_per_s_min"]},
    }


def result_file(main_row: dict[str, Any], runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One device's result file from this run alone: the default protocol's row plus every protocol
    run now. Nothing from an earlier file is merged in, so the protocols compared in it were all
    timed in this run (``run_started``/``date`` say when)."""
    return {**main_row, "run_started": min(r["date"] for r in runs.values()),
            "protocols": {p: {"date": r["date"], "validation": r["validation"], "profile_seconds": r["profile_seconds"],
                              "correction": r["correction"]["model"]} for p, r in runs.items()}}


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("device", "protocol", "entries", "profile s", "predictor", "RMSE ms", "MAPE %", "Spearman", "<=5 %", "<=10 %",
            "predict/s")
    lines = [head]
    for r in rows:
        speed = f"{min(s['per_s'] for s in r['throughput']) / 1e6:.2f}M"
        for name, label in (("lut_sum", "plain sum"), ("calibrated", f"calibrated ({r['correction']['model']})")):
            m = r["validation"][name]
            lines.append((r["device"]["name"], r["protocol_name"], str(r["entries"]), f"{r['profile_seconds']:.0f}", label,
                          f"{m['rmse_ms']:.4f}", f"{m['mape_pct']:.2f}", f"{m['spearman']:.3f}",
                          f"{m['within5_pct']:.0f}", f"{m['within10_pct']:.0f}", speed))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"(nn-Meter reference: {NN_METER['kernel_predictor_within10_pct']}% within +-10% for its predictor, "
          f"{NN_METER['op_sum_within10_pct']}% for a plain op-sum)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="cpu-1thread,cpu-all")
    parser.add_argument("--space", default="fmnist-mbv3")
    parser.add_argument("--calibrate", type=int, default=60)
    parser.add_argument("--validate", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the rounds-median protocol")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS),
                        help=f"comma-separated, from {', '.join(PROTOCOLS)}")
    parser.add_argument("--out", default=str(REPO / "latency_tables"))
    parser.add_argument("--results", default=str(REPO / "experiments" / "results"))
    parser.add_argument("--reuse", action="store_true", help="keep an up-to-date table instead of re-profiling")
    parser.add_argument("--quick", action="store_true", help="small smoke run under /tmp (not the shipped tables)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    args.throughput_sizes = (100_000, 1_000_000)
    if args.quick:
        args.calibrate, args.validate, args.rounds = 12, 10, 1
        args.out, args.results = "/tmp/hwnas-latency-bench/tables", "/tmp/hwnas-latency-bench/results"
        args.throughput_sizes = (100_000,)
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        parser.error(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")
    rows = []
    for device in args.devices.split(","):
        runs = {p: bench_device(device.strip(), args.space, args, p) for p in protocols}
        main_row = runs.get(DEFAULT_PROTOCOL) or next(iter(runs.values()))
        path = Path(args.results) / f"latency_{load_device_profile(device.strip()).slug}.json"
        atomic_write_json(path, result_file(main_row, runs))
        rows.extend(runs.values())
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
