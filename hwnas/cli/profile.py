"""``hwnas profile``: measure a device's latency lookup table for a search space."""

from __future__ import annotations

import argparse

from hwnas.errors import ConfigError
from hwnas.paths import TABLE_PRECISIONS, TABLES_DIR

EXAMPLES = """\
Measures every distinct block of the space (one small ONNX graph each) on the device, fits a
correction of the block sum on whole subnets measured end to end, and validates it on other
subnets. Writes <out>/<device>/<space>.json plus <space>.report.json/.md. Interrupted runs resume.
With --precision int8 every graph is ONNX Runtime static-quantised (QDQ, per-channel) first, as
'hwnas export --int8' quantises models, and the table is <space>.int8.json beside the FP32 one;
its report gives the FP32/INT8 speed ratio per block type when the FP32 table exists.

Examples:
  hwnas profile --device cpu-1thread --space fmnist-mbv3
  hwnas profile --device devices/cpu-all.yaml --space fmnist-mbv3 --validate 100
  hwnas profile --device cpu-1thread --space fmnist-mbv3 --resolutions 24,28 --fast
  hwnas profile --device edge-agent --space fmnist-mbv3 --out latency_tables   # via 'hwnas agent serve'
  hwnas profile --device cpu-1thread --space fmnist-mbv3 --precision int8
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure a per-device latency lookup table",
                       description="Measure a per-device latency lookup table.\n\n" + EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True, help="device profile: a name from devices/ or a .yaml path")
    p.add_argument("--space", default="fmnist-mbv3", help="search-space preset (see 'hwnas spaces')")
    p.add_argument("--resolutions", type=_int_list, default=None, metavar="R1,R2",
                   help="comma-separated subset of the space's resolutions (default: all)")
    p.add_argument("--calibrate", type=int, default=None, metavar="N",
                   help="whole subnets measured to fit the sum correction (default 60; 30 with --fast)")
    p.add_argument("--validate", type=int, default=None, metavar="N",
                   help="other subnets measured to report accuracy (default 50; 20 with --fast)")
    p.add_argument("--out", default=str(TABLES_DIR), help=f"output folder (default: {TABLES_DIR})")
    p.add_argument("--fast", action="store_true",
                   help="3 warm-up / 10 timed passes and fewer subnets (quickstart); the report states its accuracy")
    p.add_argument("--rounds", type=int, default=None, metavar="N",
                   help="torch-cuda profiles: passes over all graphs, keeping each graph's best: robust to "
                        "load bursts (default 2; 1 with --fast). ONNX Runtime profiles (local or an agent) time "
                        "all graphs together in interleaved passes instead")
    p.add_argument("--statistic", choices=("median", "min"), default="min",
                   help="per-graph latency: minimum of the timed runs (default: far more stable on a busy or "
                        "virtualised machine, where other tenants only ever add time) or their median")
    p.add_argument("--burst", type=int, default=None, metavar="N",
                   help="ONNX Runtime: back-to-back runs per graph in each interleaved pass, the fastest kept "
                        "(more = warmer caches, closer to a model running alone)")
    p.add_argument("--precision", choices=TABLE_PRECISIONS, default="fp32",
                   help="fp32 (default) or int8: time ONNX Runtime static-quantised (QDQ, per-channel) graphs, "
                        "written as <space>.int8.json (ONNX Runtime devices: local or an agent)")
    p.add_argument("--build-workers", type=int, default=None, metavar="N",
                   help="processes exporting whole subnets while the block graphs are built, before any timing "
                        "(default: one per core when there are enough subnets to pay their start-up; 1: none)")
    p.add_argument("--seed", type=int, default=0, help="seed for the calibration/validation subnets")
    p.add_argument("--force", action="store_true", help="re-measure even if an up-to-date table or checkpoint exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 24,28, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from hwnas.latency.device import load_device_profile
    from hwnas.latency.profiler import Profiler, ProfileOptions, metrics_table, speedup_lines
    from hwnas.space import get_space

    space = get_space(args.space)
    profile = load_device_profile(args.device)
    if args.calibrate is not None and args.calibrate < 0 or args.validate is not None and args.validate < 0:
        raise ConfigError("--calibrate and --validate take a count >= 0")
    options = ProfileOptions(resolutions=args.resolutions, calibrate=args.calibrate, validate=args.validate,
                             seed=args.seed, fast=args.fast, force=args.force, rounds=args.rounds,
                             statistic=args.statistic, precision=args.precision, build_workers=args.build_workers,
                             **({"burst": args.burst} if args.burst is not None else {}))
    result = Profiler(space, profile, args.out, options, progress=not args.no_progress).run()
    report = result.report
    if result.reused:
        print(f"up-to-date table {result.table_path} kept (same device, space and protocol; --force re-measures)")
    sec = report.get("seconds") or {}
    print(f"latency table: {result.table_path} ({report['entries']} entries, profiled in "
          f"{sec.get('profile_total', 0):.0f} s)")
    print(f"report: {result.report_paths[1]}")
    print(f"correction: {report['correction']['model']}; fastest subnet {report['min_latency_ms']:.4f} ms")
    print(metrics_table(report))
    if report.get("speedup_vs_fp32"):
        print("\n".join(speedup_lines(report["speedup_vs_fp32"])[2:]))
    return 0
