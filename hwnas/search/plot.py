"""``pareto.png``: predicted accuracy against latency, one panel per device.

Every evaluated candidate is drawn in grey so the front can be judged against what the search
actually saw; the front is highlighted, the budget drawn as a vertical line and each budget's
pick starred. Rendered with matplotlib's Agg backend (no display needed) into PNG bytes, which
the caller writes atomically.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np

from hwnas.search.evaluated import Evaluated
from hwnas.search.front import Pick

# Drawing every evaluated candidate as a grey point costs time in proportion to the search and adds
# nothing a random subset of a few thousand does not show (the cloud keeps its shape); this keeps
# plotting out of the search rate.
MAX_CLOUD_POINTS = 4_000


def pareto_png(ev: Evaluated, budgets: Mapping[str, Sequence[float]], picks: Sequence[Pick], title: str,
               dpi: int = 110) -> bytes:
    """The figure as PNG bytes: ``budgets`` per device, ``picks`` starred, ``title`` above."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, no display needed

    devices = list(ev.latency_ms)
    fig = Figure(figsize=(5.2 * len(devices), 4.2), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(devices), squeeze=False)[0]
    cloud = np.arange(len(ev.accuracy))
    if len(cloud) > MAX_CLOUD_POINTS:
        cloud = np.sort(np.random.default_rng(0).choice(cloud, MAX_CLOUD_POINTS, replace=False))
    front = np.flatnonzero(ev.on_front)
    for ax, device in zip(axes, devices):
        lat = ev.latency_ms[device]
        acc = 100 * ev.accuracy
        ax.scatter(lat[cloud], acc[cloud], s=3, c="0.75", lw=0, label=f"evaluated ({len(ev.accuracy):,})",
                   rasterized=True)
        order = front[np.argsort(lat[front])]
        ax.plot(lat[order], acc[order], "o", ms=3.5, c="tab:blue", label=f"Pareto front ({len(front)})")
        for i, b in enumerate(budgets[device]):
            ax.axvline(b, c="tab:red", ls="--", lw=1, label="budget" if i == 0 else None)
        mine = [p.record for p in picks if p.device == device and p.record is not None]
        if mine:
            ax.plot([r.latency_ms[device] for r in mine], [100 * r.accuracy for r in mine], "*", ms=12,
                    c="tab:orange", mec="k", mew=0.6, label="pick under budget")
        # Keep the front readable: the largest subnets can sit far to the right of every budget.
        right = 1.3 * max(float(lat[front].max()) if len(front) else 0.0, max(budgets[device]))
        if lat.max() > 1.5 * right:
            ax.set_xlim(min(0.0, float(lat.min())), right)
        ax.set_xlabel(f"predicted latency on {device} (ms)")
        ax.set_ylabel("predicted top-1 accuracy (%)")
        ax.set_title(device)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
