"""Summary statistics of timed runs: the value type every measurer returns and every report stores.

Its own module (numpy only) so that the agent client, the measurers and the edge agent share it
without importing one another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np

from hwnas.errors import MeasurementError

# The latency a table entry or a measured model is summarised by. The minimum over interleaved passes
# is what makes this shared 2-core VM reproducible: its speed drifts (other tenants only ever add
# time), and "min" agreed with 100 fresh subnets better than "median" did: the shares within +-10 %
# per statistic are in experiments/results/latency_<device>.json (``protocols``), written by
# experiments/latency_benchmark.py.
LATENCY_STATISTIC = "min"


@dataclass(frozen=True)
class LatencyStats:
    """Summary of ``repeats`` timed runs of one batch, in milliseconds per batch."""

    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    batch_size: int

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], batch_size: int) -> "LatencyStats":
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0 or not np.all(np.isfinite(a)):
            raise MeasurementError("no valid timing samples were recorded; rerun with repeats >= 1")
        p10, median, p90 = np.percentile(a, [10, 50, 90])
        return cls(median_ms=float(median), mean_ms=float(a.mean()),
                   std_ms=float(a.std(ddof=1)) if a.size > 1 else 0.0, min_ms=float(a.min()),
                   p10_ms=float(p10), p90_ms=float(p90), repeats=int(a.size), batch_size=int(batch_size))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def value(self, statistic: str = LATENCY_STATISTIC) -> float:
        """The headline number: ``statistic`` is one of median, min, mean, p10, p90."""
        return float(getattr(self, f"{statistic}_ms"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatencyStats":
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise MeasurementError(f"latency record lacks {', '.join(missing)}; it was not written by "
                                   "this hwnas version — re-measure it")
        try:
            return cls(**{n: (int(data[n]) if n in ("repeats", "batch_size") else float(data[n])) for n in names})
        except (TypeError, ValueError) as exc:
            raise MeasurementError(f"latency record has a non-numeric field ({exc}); re-measure it") from None
