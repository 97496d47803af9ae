"""``hwnas search``: NSGA-II over a supernet's space with an accuracy predictor and latency tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from hwnas import paths

EXAMPLES = """\
Examples:
  # best accuracy/latency trade-offs on one CPU thread, budget 2 ms
  hwnas search --device cpu-1thread --budget-ms 2 --out runs/search-cpu

  # one search, a pick for each device (latency objective per device)
  hwnas search --device cpu-1thread --device cpu-all --budget-ms 2 1 --out runs/search-2dev

  # several budgets on one device, a parameter cap, MACs as a third objective
  hwnas search --device cpu-1thread --budget-ms 1 2 4 --params-cap 1.5 \\
      --objectives accuracy,latency,macs --evaluations 20000 --out runs/search-3obj

  # once-for-all's own accuracy predictor and latency tables (a folder of <r>_lookup_table.yaml)
  hwnas search --space ofa-mbv3-w1.2 --predictor acc_predictor.pth --device note10_lookup_tables \\
      --budget-ms 25 --out runs/search-ofa

  # no accuracy predictor: the fewest MACs and lowest latency (each budget's pick: most MACs under it)
  hwnas search --space ofa-mbv3-w1.0 --device cpu-1thread --objectives latency,macs --budget-ms 20 \\
      --out runs/search-latency-only

  # once-for-all's ResNet50 space, no table and no predictor: the MACs/params trade-off
  hwnas search --space ofa-resnet50 --objectives macs,params --out runs/search-resnet-macs

  # a table file instead of a profile; check 5 front models on the real supernet
  hwnas search --device latency_tables/cpu-1thread/fmnist-mbv3.json --budget-ms 2 \\
      --validate-front 5 --out runs/search-checked

  # INT8 deployment: the INT8 table (hwnas profile --precision int8) and INT8 predictor; or both
  # precisions, keeping the best model per budget (each precision's own run in runs/search-q/fp32|int8/)
  hwnas search --device cpu-1thread --budget-ms 0.3 --precision int8 --out runs/search-int8
  hwnas search --device cpu-1thread --budget-ms 0.3 --precision fp32,int8 --out runs/search-q

Outputs in --out: front.json and picks.json (records read by `hwnas export`), front.csv,
evaluated.npz (every candidate; hwnas.search.evaluated.read_evaluated), config.json, pareto.png,
log.txt (+ validation.json).
A budget no subnet can meet stops with exit code 2 and the smallest reachable latency.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search Pareto-optimal subnets under latency budgets",
                       description="Multi-objective search (NSGA-II) over the supernet's subnets, scored by "
                                   "the accuracy predictor and per-device latency tables.\n\n" + EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", type=Path, default=None,
                   help="supernet checkpoint; its metadata names the space "
                        f"(default {paths.DEFAULT_SUPERNET})")
    p.add_argument("--space", default=None, help="search space name (instead of reading it from --supernet)")
    p.add_argument("--predictor", type=Path, default=None,
                   help="accuracy predictor: an hwnas one or once-for-all's acc_predictor.pth "
                        "(default predictors/<space>/accuracy_xgb.json; not needed without an accuracy objective)")
    p.add_argument("--precision", default="fp32",
                   help="deployment precision: fp32, int8 (ONNX Runtime static quantisation: the devices' "
                        "<space>.int8.json tables and the INT8 predictor predictors/<space>/int8/accuracy_xgb.json) "
                        "or fp32,int8 (search both, keep the best per budget; default fp32)")
    p.add_argument("--int8-predictor", type=Path, default=None,
                   help="INT8 accuracy predictor when both precisions are searched (default "
                        "predictors/<space>/int8/accuracy_xgb.json); with --precision int8 alone --predictor does")
    p.add_argument("--device", action="append", default=[], metavar="D",
                   help="device profile name or .yaml (table at latency_tables/<slug>/<space>.json), a "
                        "latency table .json, or a folder of once-for-all's <r>_lookup_table.yaml; repeat "
                        "for several devices (not needed by a MACs/params-only search)")
    p.add_argument("--budget-ms", type=float, nargs="+", default=[], metavar="X",
                   help="latency budget(s) in ms: one per device, one for all, or several for one device "
                        "(with --device)")
    p.add_argument("--budget-mode", choices=("any", "all"), default="any",
                   help="several devices: keep candidates meeting any device's budget (a pick per device, "
                        "default) or all budgets (one network for every device)")
    p.add_argument("--objectives", default="accuracy,latency",
                   help="comma list from accuracy,latency,params,macs (default accuracy,latency; "
                        "latency = one objective per device; 'flops' is read as macs)")
    p.add_argument("--evaluations", type=int, default=10_000, help="distinct candidates to score (default 10000)")
    p.add_argument("--population", type=int, default=64, help="NSGA-II population size (default 64)")
    p.add_argument("--params-cap", type=float, default=None, metavar="M", help="max parameters, in millions")
    p.add_argument("--macs-cap", "--flops-cap", dest="macs_cap", type=float, default=None, metavar="M",
                   help="max MACs, in millions (--flops-cap is the old name)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same front)")
    p.add_argument("--out", type=Path, required=True, help="run folder to create, e.g. runs/<name>")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--validate-front", type=int, default=0, metavar="K",
                   help="re-evaluate K front models on the real supernet (validation split, BN recalibrated) "
                        "and measure their latency; off by default (slow)")
    p.add_argument("--no-plot", action="store_true", help="skip pareto.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hwnas.atomic_io import atomic_write_json
    from hwnas.errors import ConfigError
    from hwnas.run_folder import prepare_run_dir, run_logger
    from hwnas.search import runner
    from hwnas.search.precisions import parse_precisions

    precisions = parse_precisions(args.precision)
    if args.validate_front > 0 and precisions != ("fp32",):
        raise ConfigError("--validate-front measures FP32 models; check INT8 models with `hwnas export RUN_DIR "
                          "--measure DEVICE`, which quantises them and reports predicted vs measured")
    space, _ = runner.resolve_space(args.supernet, args.space)
    needs_predictor = "accuracy" in runner.parse_objectives(args.objectives)
    default = runner.default_predictor_path(space, precisions[0]) if needs_predictor else None
    settings = runner.SearchSettings(
        predictor=args.predictor or (args.int8_predictor if precisions == ("int8",) else None) or default,
        devices=list(args.device),
        budgets_ms=list(args.budget_ms), supernet=args.supernet, space=args.space, objectives=args.objectives,
        evaluations=args.evaluations, population=args.population, params_cap_m=args.params_cap,
        macs_cap_m=args.macs_cap, seed=args.seed, budget_mode=args.budget_mode, precision=precisions[0])
    if len(precisions) > 1:
        return _run_precisions(args, settings, precisions)
    early: list[str] = []
    prepared = runner.prepare_search(settings, log=early.append)  # bad input fails before --out is touched
    out = prepare_run_dir(args.out, args.overwrite)
    log = run_logger(out, "hwnas.search")
    try:
        for message in early:
            log.info(message)
        outcome = runner.execute_search(prepared, progress=not args.no_progress, log=log.info)
        runner.write_run_folder(out, outcome, plot=not args.no_plot)
        devices = [s.device for s in outcome.sources]
        log.info(f"Pareto front ({len(outcome.front)} networks):\n" + runner.format_front(outcome.front, devices))
        log.info("Picks:\n" + runner.format_picks(outcome.picks))
        if args.validate_front > 0:
            report = runner.validate_front(outcome, args.validate_front, progress=not args.no_progress,
                                           log=log.info)
            atomic_write_json(out / "validation.json", report)
            log.info("Predicted vs true:\n" + runner.format_validation(report))
        plotted = (out / "pareto.png").is_file() and not args.no_plot
        log.info(f"wrote {out}/ (front.json, front.csv, picks.json, evaluated.npz, config.json"
                 f"{', pareto.png' if plotted else ''}, log.txt)")
    finally:
        _close(log)
    if not outcome.front:
        print("hwnas search: no candidate met every constraint; raise --budget-ms or the caps "
              "(or use --budget-mode any)", flush=True)
        return 1
    return 0


def _run_precisions(args: argparse.Namespace, settings, precisions: tuple[str, ...]) -> int:
    """``--precision fp32,int8``: a search per precision, the best per budget kept (hwnas.search.precisions)."""
    from hwnas.run_folder import prepare_run_dir, run_logger
    from hwnas.search import runner
    from hwnas.search.precisions import execute_all, prepare_all, settings_per_precision, write_multi_run

    given = {"fp32": args.predictor, "int8": args.int8_predictor}
    early: list[str] = []
    prepared = prepare_all(settings_per_precision(settings, precisions, given), log=early.append)
    out = prepare_run_dir(args.out, args.overwrite)
    log = run_logger(out, "hwnas.search")
    try:
        for message in early:
            log.info(message)
        outcome = execute_all(prepared, progress=not args.no_progress, log=log.info)
        write_multi_run(out, outcome, plot=not args.no_plot)
        log.info(f"Pareto front over {', '.join(precisions)} ({len(outcome.front)} networks):\n"
                 + runner.format_front(outcome.front, outcome.devices))
        log.info("Picks (best precision per budget):\n" + runner.format_picks(outcome.picks))
        log.info(f"wrote {out}/ (front.json, front.csv, picks.json, config.json, log.txt; each precision's run in "
                 f"{', '.join(f'{p}/' for p in precisions)})")
    finally:
        _close(log)
    if not outcome.front:
        print("hwnas search: no candidate met every constraint; raise --budget-ms or the caps", flush=True)
        return 1
    return 0


def _close(log) -> None:
    """Release log.txt (the logger is cached per folder; a rerun with --overwrite opens a new file)."""
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)
