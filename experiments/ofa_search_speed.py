"""Search speed of ``hwnas search`` with once-for-all's accuracy predictor (issue 19).

The search a once-for-all user runs: space ``ofa-mbv3-w1.2``, once-for-all's tutorial MLP predictor
(the published ``acc_predictor.pth`` layout: 128 inputs, three hidden layers of 400) and a latency
table in once-for-all's YAML format covering all 25 resolutions. Weights and table means are seeded
random numbers: speed does not depend on them. The predictor is scored batched (one-hot matrix and
dense layers in numpy for a whole population; no per-architecture Python loop), so the search's rate
is that of the engine. Timed: the library call ``hwnas.search.runner.execute_search`` (NSGA-II, then
scoring every candidate and picking), median of REPEATS runs per setting, candidates per second of
the search alone (``SearchResult.evaluations_per_s``) and of the whole call, and the predictor alone
on the same number of rows.

The machine is shared (2 cores, a training job and other helpers), so the load average before and
after is recorded beside the numbers.

Run: ``python experiments/ofa_search_speed.py``; writes ``experiments/results/ofa_search_speed.json``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.atomic_io import atomic_write_json
from hwnas.encoding import GeneLayout
from hwnas.search import runner
from hwnas.space import get_space

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
SPACE = get_space("ofa-mbv3-w1.2")
SETTINGS = ((64, 10_000), (64, 100_000), (256, 100_000))  # (population, evaluations)
REPEATS = 3
HIDDEN, LAYERS = 400, 3


def tutorial_state(seed: int = 0) -> dict[str, Any]:
    """``ofa.tutorial.AccuracyPredictor``'s ``nn.Sequential`` state dict (128-400-400-400-1), random."""
    import torch

    g = torch.Generator().manual_seed(seed)
    widths = [128] + [HIDDEN] * LAYERS + [1]
    state = {}
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        state[f"{2 * i}.weight"] = torch.randn(b, a, generator=g) * (2.0 / a) ** 0.5
        state[f"{2 * i}.bias"] = 0.1 * torch.randn(b, generator=g)
    return state


def main() -> None:
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from test_ofa_cli import write_ofa_tables  # the YAML writer the CLI tests use

    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="ofa_search_speed_"))
    torch.save(tutorial_state(), folder / "acc_predictor.pth")
    tables = write_ofa_tables(folder / "note10-like", resolutions=SPACE.resolutions, space=SPACE)
    runs: list[dict[str, Any]] = []
    for population, evaluations in SETTINGS:
        settings = runner.SearchSettings(predictor=folder / "acc_predictor.pth", devices=[str(tables)],
                                         budgets_ms=[1e9], space=SPACE.name, evaluations=evaluations,
                                         population=population, seed=0)
        prepared = runner.prepare_search(settings)
        runner.run_search(dataclasses.replace(settings, evaluations=1000))  # warm-up (numba caches, BLAS)
        search_rates, call_rates = [], []
        for _ in range(REPEATS):
            start = time.perf_counter()
            outcome = runner.execute_search(prepared)
            call_rates.append(outcome.result.n_evaluations / (time.perf_counter() - start))
            search_rates.append(outcome.result.evaluations_per_s)
        runs.append({"population": population, "evaluations": evaluations,
                     "search_candidates_per_s_median": float(np.median(search_rates)),
                     "execute_search_candidates_per_s_median": float(np.median(call_rates)),
                     "search_candidates_per_s_repeats": [float(r) for r in search_rates]})
        print(runs[-1], flush=True)
    predictor = runner.load_accuracy_predictor(folder / "acc_predictor.pth", SPACE)
    genes = GeneLayout(SPACE).random(100_000, rng=0)
    start = time.perf_counter()
    predictor.predict(genes)
    predictor_rate = len(genes) / (time.perf_counter() - start)
    out = {
        "what": "hwnas search speed with once-for-all's tutorial MLP accuracy predictor (128-400-400-400-1, "
                "random weights) and a once-for-all YAML latency table (25 resolutions, random means) on "
                "ofa-mbv3-w1.2; NSGA-II candidates/s (SearchResult.evaluations_per_s) and of the whole "
                "execute_search call, median of REPEATS; the predictor alone on 100,000 rows in one call",
        "command": "python experiments/ofa_search_speed.py",
        "runs": runs,
        "predictor_rows_per_s_100k_batch": predictor_rate,
        "repeats": REPEATS,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    path = atomic_write_json(RESULTS / "ofa_search_speed.json", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
