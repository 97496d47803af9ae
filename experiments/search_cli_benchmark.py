"""``hwnas search`` end to end, timed as a user times the command: the marginal candidates per second.

The engine benchmark (``experiments/search_benchmark.py``) times NSGA-II in-process. A user runs
the command: Python start-up, imports, loading the predictor and table, the search, scoring the
report, writing the run folder (``evaluated.npz``, ``pareto.png``, ...). Start-up and loading cost
the same whatever the budget, so the rate a user sees for a larger search is the marginal one:

    marginal = (LARGE - SMALL) / (t(LARGE) - t(SMALL))

with ``t`` the median wall time of ``--repeats`` runs of ``hwnas search`` in a subprocess (the
two sizes interleaved, so a drifting machine slows both alike), pinned to one core where the OS
allows. The machine's load average is stored with the result: on a shared machine the wall-clock
rate drops with the load (other processes take turns on the core), so the same marginal is also
given in CPU time (user + system seconds of the subprocess), which waiting for the core does not
inflate; on a quiet machine the two agree. For scale, the NSGA-II engine alone (in-process, the
same problem, CPU time) is timed in the same run: the ratio of the two rates says how much of the
command's time is the engine, whatever the machine's load.

Run: ``python experiments/search_cli_benchmark.py`` (about 2 minutes)
Result: ``experiments/results/search_cli.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hwnas.atomic_io import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
COMMAND = ["search", "--device", "cpu-1thread", "--budget-ms", "0.35", "--seed", "0", "--no-progress"]


def time_search(evaluations: int, out: Path, core: int | None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one ``hwnas search`` subprocess, start-up included."""
    argv = [sys.executable, "-m", "hwnas.cli", *COMMAND, "--evaluations", str(evaluations), "--out", str(out),
            "--overwrite"]
    if core is not None:
        argv = ["taskset", "-c", str(core), *argv]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"hwnas search failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def engine_cpu_seconds(evaluations: int, core: int | None) -> float:
    """CPU seconds of the NSGA-II engine alone on the command's problem (in-process, pinned)."""
    from hwnas.search import runner

    settings = runner.SearchSettings(predictor=runner.default_predictor_path("fmnist-mbv3"),
                                     devices=["cpu-1thread"], budgets_ms=[0.35], evaluations=evaluations, seed=0)
    prep = runner.prepare_search(settings)
    started = time.process_time()
    runner.NSGA2(prep.problem, prep.config).run()
    return time.process_time() - started


def shipped_predictor_size() -> dict[str, int]:
    """Trees and depth of the shipped predictor: its scoring is a large share of a generation, so a refit
    with more or deeper trees moves this benchmark (the number is meaningless without it)."""
    from hwnas.accuracy.model_file import read_predictor_file
    from hwnas.search import runner

    meta = read_predictor_file(runner.default_predictor_path("fmnist-mbv3")).meta
    hp = meta["hyperparameters"]
    return {"trees": int(hp["num_boost_round"]), "max_depth": int(hp["max_depth"]),
            "n_train": int(meta["n_train"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=2_000)
    ap.add_argument("--large", type=int, default=102_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--core", type=int, default=0, help="CPU core to pin to with taskset (-1: no pinning)")
    ap.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "search_cli.json")
    args = ap.parse_args()
    core = None if args.core < 0 or not _has_taskset() else args.core
    load_before = os.getloadavg()
    times: dict[int, list[float]] = {args.small: [], args.large: []}
    cpu: dict[int, list[float]] = {args.small: [], args.large: []}
    with tempfile.TemporaryDirectory() as tmp:
        time_search(args.small, Path(tmp) / "warm", core)  # numba's on-disk cache and the OS file cache
        for _ in range(args.repeats):
            for n in (args.small, args.large):
                wall, used = time_search(n, Path(tmp) / f"run{n}", core)
                times[n].append(wall)
                cpu[n].append(used)
    marginal, marginal_cpu = (marginal_rate(t, args.small, args.large) for t in (times, cpu))
    os.chdir(REPO)
    if core is not None:
        os.sched_setaffinity(0, {core})
    engine: dict[int, list[float]] = {n: [engine_cpu_seconds(n, core) for _ in range(args.repeats)]
                                      for n in (args.small, args.large)}
    marginal_engine = marginal_rate(engine, args.small, args.large)
    result = {"command": "hwnas " + " ".join(COMMAND) + " --evaluations N --out DIR",
              "small": args.small, "large": args.large, "repeats": args.repeats, "pinned_core": core,
              "wall_s": {str(n): [round(t, 3) for t in ts] for n, ts in times.items()},
              "cpu_s": {str(n): [round(t, 3) for t in ts] for n, ts in cpu.items()},
              "median_wall_s": {str(n): round(statistics.median(ts), 3) for n, ts in times.items()},
              "median_cpu_s": {str(n): round(statistics.median(ts), 3) for n, ts in cpu.items()},
              "marginal_candidates_per_s": round(marginal), "marginal_candidates_per_cpu_s": round(marginal_cpu),
              "engine_cpu_s": {str(n): [round(t, 3) for t in ts] for n, ts in engine.items()},
              "engine_marginal_candidates_per_cpu_s": round(marginal_engine),
              "command_over_engine_rate": round(marginal_cpu / marginal_engine, 3),
              "predictor": shipped_predictor_size(),
              "loadavg_before": [round(x, 2) for x in load_before],
              "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(args.out, result)
    print(f"{'evaluations':>12} {'wall s':>7} {'CPU s':>7}  wall runs")
    for n in (args.small, args.large):
        print(f"{n:>12,} {statistics.median(times[n]):>7.2f} {statistics.median(cpu[n]):>7.2f}  "
              f"{' '.join(f'{t:.2f}' for t in times[n])}")
    print(f"engine alone (in-process): {marginal_engine:,.0f} candidates per CPU second; the command runs at "
          f"{marginal_cpu / marginal_engine:.0%} of it")
    print(f"marginal rate: {marginal:,.0f} candidates/s wall clock, {marginal_cpu:,.0f} per CPU second (load "
          f"average {load_before[0]:.1f} before, {result['loadavg_after'][0]:.1f} after, {os.cpu_count()} CPUs); "
          f"wrote {args.out}")
    return 0


def marginal_rate(seconds: dict[int, list[float]], small: int, large: int) -> float:
    """Candidates per second the larger search adds: (large - small) / (median t(large) - median t(small))."""
    return (large - small) / (statistics.median(seconds[large]) - statistics.median(seconds[small]))


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None


if __name__ == "__main__":
    sys.exit(main())
