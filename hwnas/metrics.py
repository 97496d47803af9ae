"""How well predictions agree with measurements: one function, the same keys in every report.

Used by the latency-table validation (``hwnas profile``), the export report (predicted vs measured
latency), ``hwnas search --validate-front`` (accuracy and latency) and the experiments. Absolute
errors carry their unit in the key (``rmse_ms`` for latency); relative errors are in percent.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Keys besides rmse_<unit> and mae_<unit>.
RELATIVE_KEYS = ("n", "mape_pct", "bias_pct", "max_abs_err_pct", "within5_pct", "within10_pct", "spearman",
                 "kendall_tau")


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (Spearman's convention), without importing scipy.stats (slow)."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    start = np.cumsum(counts) - counts
    return (start + (counts - 1) / 2.0)[inverse]


def _kendall_tau(p: np.ndarray, m: np.ndarray) -> float:
    """Kendall's tau-b (ties in either list handled), O(n^2): reports hold at most a few hundred models."""
    dp = np.sign(p[:, None] - p[None, :])
    dm = np.sign(m[:, None] - m[None, :])
    upper = np.triu_indices(len(p), 1)
    dp, dm = dp[upper], dm[upper]
    denom = np.sqrt(np.count_nonzero(dp) * np.count_nonzero(dm))
    return float(np.sum(dp * dm) / denom) if denom > 0 else float("nan")


def prediction_agreement(predicted: Sequence[float], measured: Sequence[float], unit: str = "ms") -> dict[str, float]:
    """Predicted vs measured: RMSE and MAE (in ``unit``, keys ``rmse_<unit>``/``mae_<unit>``), MAPE, mean
    bias and largest error (%, relative to measured), share within +-5 % / +-10 % (%), Spearman's rho and
    Kendall's tau (NaN where undefined: fewer than 3 values or a constant list). Empty input -> ``{}``."""
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if len(m) == 0:
        return {}
    rel = (p - m) / m
    ranked = len(m) > 2 and np.ptp(p) > 0 and np.ptp(m) > 0
    suffix = f"_{unit}" if unit else ""
    return {"n": int(len(m)), f"rmse{suffix}": float(np.sqrt(np.mean((p - m) ** 2))),
            f"mae{suffix}": float(np.mean(np.abs(p - m))),
            "mape_pct": float(100 * np.mean(np.abs(rel))), "bias_pct": float(100 * np.mean(rel)),
            "max_abs_err_pct": float(100 * np.max(np.abs(rel))),
            "within5_pct": float(100 * np.mean(np.abs(rel) <= 0.05)),
            "within10_pct": float(100 * np.mean(np.abs(rel) <= 0.10)),
            "spearman": float(np.corrcoef(_ranks(p), _ranks(m))[0, 1]) if ranked else float("nan"),
            "kendall_tau": _kendall_tau(p, m) if ranked else float("nan")}
