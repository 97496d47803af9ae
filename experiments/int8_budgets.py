"""Best FP32 model vs best INT8 model under three latency budgets on one device (issue 21, part 4).

For each budget: the FP32 search's pick (FP32 table, FP32 predictor) and the INT8 search's pick
(INT8 table, INT8 predictor), both exported (BN recalibrated, the INT8 one quantised by ONNX
Runtime's static quantiser) and measured: test accuracy by ONNX Runtime on the exported file, and
latency with the device table's protocol, every model timed in the same interleaved passes
(``hwnas export``'s one timing path), so FP32 and INT8 see the same machine speed.

Budgets: ``--budgets auto`` (default) places three budgets at the quartiles (25 %, 50 %, 75 %) of the
predicted latencies of the front of an FP32 search under the largest subnet's latency on the device,
so they follow the machine's table instead of being typed in and each admits a different part of
the front (two of three budgets picked the same model when they were spread evenly up to the
largest subnet's latency, and again up to the front's most accurate model: the predicted front is
flat at its slow end); or pass three numbers in ms.

Needs the device's FP32 and INT8 tables (`hwnas profile --device D` and `... --precision int8`), the
FP32 predictor and the INT8 predictor (experiments/int8_predictor.py). Run on an idle machine:
  python experiments/int8_budgets.py --device cpu-1thread

Writes experiments/results/int8_budgets.json and prints the table; runs/int8_budgets/ holds the
searches (fp32/, int8/) and the export report.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas import paths
from hwnas.atomic_io import atomic_write_json
from hwnas.search.front import FrontRecord, Pick
from hwnas.search.precisions import MultiOutcome, execute_all, prepare_all, settings_per_precision, write_multi_run
from hwnas.search.runner import SearchSettings

PRECISIONS = ("fp32", "int8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", type=Path, default=paths.DEFAULT_SUPERNET)
    p.add_argument("--device", default="cpu-1thread")
    p.add_argument("--budgets", nargs="+", default=["auto"], help="auto, or three budgets in ms")
    p.add_argument("--evaluations", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-images", type=int, default=10_000, help="test images for measured accuracy")
    p.add_argument("--calib-images", type=int, default=2000, help="BN recalibration images per model")
    p.add_argument("--runs", type=Path, default=paths.RUNS_DIR / "int8_budgets")
    p.add_argument("--out", type=Path, default=Path("experiments/results/int8_budgets.json"))
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def auto_budgets(front: Sequence[FrontRecord], device: str) -> list[float]:
    """The quartiles of the front's predicted latencies on ``device`` (an unconstrained FP32 search's front)."""
    latencies = sorted({r.latency_ms[device] for r in front})
    if len(latencies) < 3:
        raise SystemExit(f"the FP32 front has {len(latencies)} distinct latencies on {device}: too few to place "
                         "three budgets on; pass --budgets A B C")
    return [round(float(q), 4) for q in np.quantile(latencies, [0.25, 0.5, 0.75])]


def search_both(args: argparse.Namespace) -> tuple[MultiOutcome, list[float]]:
    """The FP32 and the INT8 search under the same budgets; each precision's picks kept (not merged)."""
    base = SearchSettings(predictor=None, devices=[args.device], budgets_ms=[1.0], supernet=args.supernet,
                          evaluations=args.evaluations, seed=args.seed)
    budgets = _budgets(args, base)
    settings = settings_per_precision(dataclasses.replace(base, budgets_ms=budgets), PRECISIONS, {})
    outcome = execute_all(prepare_all(settings, log=print), progress=not args.no_progress, log=print)
    every_pick = [p for single in outcome.outcomes.values() for p in single.picks]
    return MultiOutcome(outcome.outcomes, outcome.front, every_pick), budgets


def _budgets(args: argparse.Namespace, base: SearchSettings) -> list[float]:
    if args.budgets != ["auto"]:
        budgets = sorted(float(b) for b in args.budgets)
        if len(budgets) != 3:
            raise SystemExit(f"--budgets needs three values in ms (or auto), got {args.budgets}")
        return budgets
    from hwnas.arch import largest_architecture
    from hwnas.encoding import GeneLayout
    from hwnas.search.runner import resolve_latency_source, resolve_space

    space, _ = resolve_space(base.supernet, None)
    table, layout = resolve_latency_source(args.device, space).table, GeneLayout(space)
    high = float(table.predict_genes(layout.encode(largest_architecture(space)))[0])
    loose = settings_per_precision(dataclasses.replace(base, budgets_ms=[high]), ("fp32",), {})
    return auto_budgets(execute_all(prepare_all(loose)).outcomes["fp32"].front, args.device)


def export_picks(args: argparse.Namespace, run: Path) -> list[Any]:
    """Every pick of both precisions exported and timed together (one interleaved group)."""
    from hwnas.export.pipeline import export_run
    from hwnas.export.settings import ExportSettings

    settings = ExportSettings(out=run / "export", pick="budget", measure=(args.device,), overwrite=True,
                              calib_images=args.calib_images, eval_images=args.eval_images,
                              progress=not args.no_progress)
    return export_run(run, settings).results


def rows(picks: dict[str, Sequence[Pick]], results: Sequence[Any], device: str,
         budgets: Sequence[float]) -> list[dict[str, Any]]:
    """Per budget: each precision's pick, predicted and measured (its deployed file); None where no
    subnet met the budget at that precision."""
    table = []
    for budget in budgets:
        row: dict[str, Any] = {"budget_ms": budget}
        for precision, pick in ((p, next(x for x in picks[p] if x.budget_ms == budget)) for p in picks):
            rec = pick.record
            if rec is None:
                row[precision] = None
                continue
            result = next(r for r in results if r.arch == rec.to_dict()["arch"] and r.precision == rec.precision)
            file = result.deployed
            row[rec.precision] = {
                "name": result.name, "arch": result.arch, "status": result.status,
                "predicted": {"accuracy": rec.accuracy, "latency_ms": rec.latency_ms[device]},
                "measured": {"accuracy": file.accuracy if file else None,
                             "latency_ms": file.latency_ms(device) if file else None},
                "macs": rec.macs, "params": rec.params}
        table.append(row)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outcome, budgets = search_both(args)
    write_multi_run(args.runs, outcome, plot=False)
    results = export_picks(args, args.runs)
    table = rows({p: single.picks for p, single in outcome.outcomes.items()}, results, args.device, budgets)
    from hwnas.export.report import latency_agreement

    # predicted vs measured over every exported model, and how much slower the machine ran the table's
    # reference subnet than when the table was profiled (the export report's diagnostic)
    agreement = latency_agreement(results, args.device)
    result = {"device": args.device, "supernet": str(args.supernet), "budgets_ms": budgets,
              "budgets_from": ("auto: quartiles of the predicted latencies of an FP32 search's front under the largest "
                               "subnet's latency")
              if args.budgets == ["auto"] else "given",
              "evaluations": args.evaluations, "seed": args.seed, "eval_images": args.eval_images,
              "rows": table, "latency_agreement": agreement, "report": str(args.runs / "export" / "report.md"),
              "command": "python experiments/int8_budgets.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    atomic_write_json(args.out, result)
    print_table(table, args.device)
    print(f"wrote {args.out}")
    return 0


def print_table(table: Sequence[dict[str, Any]], device: str) -> None:
    print(f"best model per budget on {device}: measured top-1 accuracy and latency (predicted in brackets)")
    print(f"{'budget ms':>9s} | {'FP32 acc %':>18s} {'FP32 ms':>16s} | {'INT8 acc %':>18s} {'INT8 ms':>16s}")
    for row in table:
        cells = []
        for p in PRECISIONS:
            m = row.get(p)
            if not m:
                cells += ["-", "-"]
                continue
            cells += [f"{_pct(m['measured']['accuracy'])} ({_pct(m['predicted']['accuracy'])})",
                      f"{_ms(m['measured']['latency_ms'])} ({_ms(m['predicted']['latency_ms'])})"]
        print(f"{row['budget_ms']:>9.3f} | {cells[0]:>18s} {cells[1]:>16s} | {cells[2]:>18s} {cells[3]:>16s}")


def _pct(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.2f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(main())
