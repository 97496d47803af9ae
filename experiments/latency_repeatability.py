"""How repeatable is one whole-subnet latency measurement, and what does that allow a table to score?

A table's validation counts the fresh subnets whose predicted latency is within +-10 % of one
measurement. On a shared VM that measurement is itself noisy, so even a perfect table misses some
subnets. This experiment re-times the table's own validation subnets (the architectures stored in
its report) ``--runs`` times, each run an independent call of the one timing path
(:func:`hwnas.latency.measure.time_models`, the table's protocol: statistic and burst, with the
table's speed reference beside them), and reports:

- ``runs``: the table's calibrated prediction against each run (share within +-10 %, MAPE, ...);
- ``run_pairs``: each pair of runs against each other (the same subnets, nothing predicted);
- ``noise``: the spread of one measurement, sigma of ``ln(run_a / run_b)`` over subnets divided by
  sqrt(2) (two independent measurements of equal noise), pooled over pairs; and the share of subnets
  a perfect predictor would get within +-10 % of one measurement with that spread (normal in log
  space), the ceiling of the table's score on this machine;
- ``vs_median``: the prediction against the median of the runs (less noise in the target);
- ``*_rescaled``: the same after each run is rescaled by the table's speed-reference subnet, timed in
  the same passes (``reference``): what is left once the machine's drift since profiling is removed.

Run on an idle machine (it is a timing run):
  python experiments/latency_repeatability.py --table latency_tables/cpu-1thread/ofa-mbv3-w1.0.json
Result: ``experiments/results/latency_repeatability_<device>_<space>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.arch import Architecture
from hwnas.atomic_io import atomic_write_json
from hwnas.latency.block_models import reference_graph, subnet_onnx
from hwnas.latency.device import load_device_profile
from hwnas.latency.measure import TimingProtocol, make_measurer, time_models
from hwnas.latency.profiler import accuracy_metrics
from hwnas.latency.table import LatencyTable, reference_architecture
from hwnas.supernet.network import build_supernet

REPO = Path(__file__).resolve().parents[1]
#: A prediction p is within +-10 % of a measurement m when ln(m / p) lies in (ln 1/1.1, ln 1/0.9).
WITHIN10_LOG = (math.log(1 / 1.1), math.log(1 / 0.9))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", type=Path, required=True, help="latency table JSON (its .report.json beside it)")
    ap.add_argument("--runs", type=int, default=3, help="independent timing runs of the same subnets (>= 2)")
    ap.add_argument("--out", type=Path, default=None,
                    help="default experiments/results/latency_repeatability_<device>_<space>.json")
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error("--runs must be at least 2: the spread needs two measurements of each subnet")
    if not args.table.is_file() or not args.table.with_suffix(".report.json").is_file():
        ap.error(f"{args.table} or its report {args.table.with_suffix('.report.json')} does not exist; "
                 "profile the device first (hwnas profile --device D --space S)")
    return args


def normal_share_within10(sigma: float) -> float:
    """Share of one measurement's log error ~ N(0, sigma) that leaves a perfect prediction within +-10 %."""
    lo, hi = WITHIN10_LOG
    cdf = lambda x: 0.5 * (1 + math.erf(x / (sigma * math.sqrt(2))))  # noqa: E731
    return 100 * (cdf(hi) - cdf(lo)) if sigma > 0 else 100.0


def single_noise_sigma(runs: np.ndarray) -> float:
    """Pooled sigma of one measurement's log latency from every pair of runs (rows: runs)."""
    diffs = [np.log(runs[a] / runs[b]) for a, b in itertools.combinations(range(len(runs)), 2)]
    return float(np.sqrt(np.mean([np.var(d) for d in diffs]) / 2))


def rescale_by_reference(runs: np.ndarray, reference_ms: list[float], table_reference_ms: float) -> np.ndarray:
    """Each run (row) at the table's machine speed: times (table reference / that run's reference)."""
    return np.asarray(runs) * (table_reference_ms / np.asarray(reference_ms, dtype=np.float64))[:, None]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = json.loads(args.table.read_text())
    if meta.get("protocol", {}).get("precision", "fp32") != "fp32":
        raise SystemExit(f"{args.table} is an INT8 table; this experiment re-times FP32 subnets only")
    report = json.loads(args.table.with_suffix(".report.json").read_text())
    table = LatencyTable.load(args.table, meta["space"]["name"])
    space = table.space
    profile = load_device_profile(meta["device"]["name"])
    points = report["validation"]["points"]
    archs = [Architecture.from_dict(p["arch"], space) for p in points]
    protocol = TimingProtocol.of_table(meta)
    supernet = build_supernet(space).eval()
    graphs = [subnet_onnx(supernet, a, profile.batch_size) for a in archs]
    ref = reference_graph(space, reference_architecture(space, table.resolutions), profile.batch_size)
    measurer = make_measurer(profile)
    load_before = os.getloadavg()
    runs, reference_ms = [], []
    for r in range(args.runs):
        stats = time_models(measurer, graphs, min_seconds=0.0, protocol=protocol, reference=ref)
        runs.append([s.value(protocol.statistic) for s in stats[:-1]])
        reference_ms.append(stats[-1].value(protocol.statistic))
        print(f"run {r + 1}/{args.runs} done (speed reference {reference_ms[-1]:.3f} ms)")
    measured = np.array(runs)
    predicted = [table.predict(a) for a in archs]
    sigma = single_noise_sigma(measured)
    table_reference_ms = float(meta["reference"]["ms"])
    rescaled = rescale_by_reference(measured, reference_ms, table_reference_ms)
    result: dict[str, Any] = {
        "table": str(args.table), "space": space.name, "device": profile.name, "n": len(archs),
        "protocol": {"statistic": protocol.statistic, "burst": protocol.burst, "passes": profile.repeats},
        "runs": [accuracy_metrics(predicted, list(m)) for m in measured],
        "run_pairs": [{"runs": [a, b], **accuracy_metrics(list(measured[a]), list(measured[b]))}
                      for a, b in itertools.combinations(range(len(measured)), 2)],
        "noise": {"sigma_log_single": sigma, "perfect_predictor_within10_pct": normal_share_within10(sigma),
                  "method": "sigma of ln(run_a/run_b) over subnets / sqrt(2), pooled over run pairs; the "
                            "within-10 share of a normal log error with that sigma"},
        "vs_median": accuracy_metrics(predicted, list(np.median(measured, axis=0))),
        "reference": {"table_ms": table_reference_ms, "runs_ms": [round(r, 5) for r in reference_ms],
                      "method": "each run's measurements times (table reference / the run's reference): the "
                                "speed-reference subnet, timed in the same passes, undoes the machine's drift "
                                "since the table was built (hwnas export reports the same ratio)"},
        "runs_rescaled": [accuracy_metrics(predicted, list(m)) for m in rescaled],
        "run_pairs_rescaled": [{"runs": [a, b], **accuracy_metrics(list(rescaled[a]), list(rescaled[b]))}
                               for a, b in itertools.combinations(range(len(rescaled)), 2)],
        "vs_median_rescaled": accuracy_metrics(predicted, list(np.median(rescaled, axis=0))),
        "report_validation": report["validation"]["calibrated"],
        "measured_ms": measured.round(5).tolist(), "predicted_ms": [round(p, 5) for p in predicted],
        "loadavg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python experiments/latency_repeatability.py " + " ".join(argv if argv is not None else
                                                                              sys.argv[1:])}
    out = args.out or REPO / "experiments" / "results" / f"latency_repeatability_{profile.name}_{space.name}.json"
    atomic_write_json(out, result)
    print(f"{space.name} on {profile.name}, {len(archs)} validation subnets, {args.runs} runs")
    for i, m in enumerate(result["runs"]):
        print(f"  table vs run {i + 1}: {m['within10_pct']:.0f} % within +-10 %, MAPE {m['mape_pct']:.1f} %")
    for pair in result["run_pairs"]:
        print(f"  run {pair['runs'][0] + 1} vs run {pair['runs'][1] + 1}: {pair['within10_pct']:.0f} % within +-10 %")
    print(f"  one measurement's spread: sigma {100 * sigma:.1f} % -> a perfect table scores "
          f"{result['noise']['perfect_predictor_within10_pct']:.0f} % within +-10 %")
    print(f"  table vs the median of the runs: {result['vs_median']['within10_pct']:.0f} % within +-10 %")
    for i, m in enumerate(result["runs_rescaled"]):
        print(f"  rescaled by the speed reference ({reference_ms[i]:.3f} ms vs the table's {table_reference_ms:.3f}):"
              f" table vs run {i + 1}: {m['within10_pct']:.0f} % within +-10 %, bias {m['bias_pct']:+.1f} %")
    print(f"  table vs the rescaled median: {result['vs_median_rescaled']['within10_pct']:.0f} % within +-10 % "
          f"(a uniform rescale leaves sigma as it is; it removes the drift, the bias); wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
