"""Scoring speed of once-for-all's MLP accuracy predictor in hwnas (batched numpy, float64).

A search scores its population once per generation (64 rows by default) and whole candidate sets
at once (tens of thousands of rows), so both batch sizes are timed. The predictor has once-for-all's
default shape (``MobileNetArchEncoder`` over the 25 resolutions of ``ofa-mbv3-w1.0``: 145 inputs,
three hidden layers of 400, one output) with seeded random weights: speed does not depend on the
weights. Reported: rows per second, the median of 5 repeats, of ``predict`` (which limits BLAS to
one thread) and, to show why it does, of the bare MLP forward with BLAS's default thread count. When the ``ofa`` package is importable,
once-for-all's own ``AccuracyPredictor.predict_acc`` (a Python loop encoding each architecture,
then torch in float32) is timed on the same rows for comparison.

The machine is shared (2 cores, other jobs running), so the load average before and after is
recorded beside the numbers.

Run: ``python experiments/ofa_predictor_speed.py``; writes
``experiments/results/ofa_predictor_speed.json``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from hwnas.accuracy.ofa_predictor import ofa_predictor_from_state_dict
from hwnas.atomic_io import atomic_write_json
from hwnas.encoding import GeneLayout
from hwnas.space import get_space

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
SPACE = get_space("ofa-mbv3-w1.0")
BATCHES = (64, 16384)
REPEATS = 5
MIN_SECONDS = 0.5  # a repeat calls the scorer until this much time has passed (small batches)
HIDDEN, LAYERS = 400, 3


def random_state(seed: int = 0) -> dict[str, np.ndarray]:
    """An ofa.nas ``AccuracyPredictor`` state dict (default shape) with He-scaled random weights."""
    rng = np.random.default_rng(seed)
    n_in = len(SPACE.resolutions) + SPACE.num_block_slots * (len(SPACE.kernel_sizes) + len(SPACE.expand_ratios))
    state: dict[str, np.ndarray] = {"base_acc": np.array([0.7])}
    widths = [n_in] + [HIDDEN] * LAYERS
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        state[f"layers.{i}.0.weight"] = rng.standard_normal((b, a)) * np.sqrt(2.0 / a)
        state[f"layers.{i}.0.bias"] = 0.1 * rng.standard_normal(b)
    state[f"layers.{LAYERS}.weight"] = rng.standard_normal((1, HIDDEN)) * np.sqrt(2.0 / HIDDEN)
    return state


def rows_per_second(score: Callable[[], Any], rows: int) -> dict[str, Any]:
    """Median over REPEATS of rows/s, each repeat running ``score`` for at least MIN_SECONDS."""
    score()  # warm-up
    rates = []
    for _ in range(REPEATS):
        calls, start = 0, time.perf_counter()
        while True:
            score()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= MIN_SECONDS:
                break
        rates.append(rows * calls / elapsed)
    return {"rows_per_s_median": float(np.median(rates)), "rows_per_s_repeats": [float(r) for r in rates]}


def ofa_reference(state: dict[str, np.ndarray]) -> Callable[[list[dict]], Any] | None:
    """once-for-all's own predictor with the same weights, or None without the ofa package."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import torch
        from ofa_stub import import_ofa

        module = import_ofa("ofa.nas.accuracy_predictor")
    except ImportError:
        return None
    encoder = module.MobileNetArchEncoder(image_size_list=list(SPACE.resolutions))
    model = module.AccuracyPredictor(encoder, hidden_size=HIDDEN, n_layers=LAYERS, device="cpu")
    model.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in state.items()})
    model.eval()

    def predict(dicts: list[dict]) -> Any:
        with torch.no_grad():
            return model.predict_acc(dicts)

    return predict


def main() -> None:
    load_before = os.getloadavg()
    state = random_state()
    predictor = ofa_predictor_from_state_dict(state, SPACE, source="random-weight predictor")
    layout = GeneLayout(SPACE)
    reference = ofa_reference(state)
    results: dict[str, Any] = {}
    for batch in BATCHES:
        genes = layout.random(batch, rng=batch)
        entry: dict[str, Any] = {}
        entry["hwnas_predict"] = rows_per_second(lambda: predictor.predict(genes), batch)
        features = predictor.features(genes)
        entry["hwnas_forward_default_blas_threads"] = rows_per_second(lambda: predictor.forward(features), batch)
        if reference is not None:
            import torch

            dicts = [{**a.to_ofa_dict(), "image_size": a.resolution} for a in layout.decode(genes)]
            with threadpool_limits(limits=1):
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                entry["ofa_predict_acc_1_thread"] = rows_per_second(lambda: reference(dicts), batch)
                torch.set_num_threads(threads)
        results[str(batch)] = entry
        print(batch, {k: round(v["rows_per_s_median"]) for k, v in entry.items()}, flush=True)
    out = {
        "what": "rows/s of once-for-all's MLP accuracy predictor (145-400-400-400-1) scored by hwnas "
                "(predict: encoding + float64 MLP, one BLAS thread), median of 5 repeats; the bare MLP forward "
                "with BLAS's default threads; OFA's own predict_acc (torch, one thread) for comparison",
        "command": "python experiments/ofa_predictor_speed.py",
        "batches": results,
        "repeats": REPEATS,
        "min_seconds_per_repeat": MIN_SECONDS,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "blas": [{k: i.get(k) for k in ("internal_api", "version", "num_threads")} for i in threadpool_info()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    path = atomic_write_json(RESULTS / "ofa_predictor_speed.json", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
