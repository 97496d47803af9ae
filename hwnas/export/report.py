"""The export report: what the search predicted for each model next to what was measured.

A hardware-aware search is only as good as its predictors, so the report puts predicted and
measured latency (per device) and accuracy side by side, with the size on disk, MACs and
parameters, and draws the measured Pareto front over the predicted one. Written as Markdown (for
people), a PNG (matplotlib's Agg backend: no display needed) and ``summary.json`` (for scripts).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence


from hwnas.atomic_io import atomic_write_bytes, atomic_write_json, atomic_write_text


@dataclass
class ModelFile:
    """One exported file (FP32 or INT8): where, how big, how accurate, how fast per device."""

    path: str
    size_bytes: int
    accuracy: float | None = None
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> LatencyStats.to_dict()
    skipped: dict[str, str] = field(default_factory=dict)  # device -> why not measured

    def latency_ms(self, device: str) -> float | None:
        stats = self.latency.get(device)
        return None if stats is None else float(stats.get("ms", stats["median_ms"]))

    def latency_ms_at_profile_speed(self, device: str) -> float | None:
        """Measured latency with the machine's drift since profiling divided out (see ``speed``)."""
        stats = self.latency.get(device)
        return None if stats is None or "ms_at_profile_speed" not in stats else float(stats["ms_at_profile_speed"])


@dataclass
class ModelResult:
    """Everything known about one exported model; ``status`` is 'ok' or 'failed' (see ``error``)."""

    name: str
    arch: dict[str, Any]
    macs: int
    params: int
    predicted_accuracy: float | None = None
    predicted_latency_ms: dict[str, float] = field(default_factory=dict)
    # device -> where a prediction the search did not make came from (the device's latency table)
    predicted_latency_source: dict[str, str] = field(default_factory=dict)
    picked_for: list[str] = field(default_factory=list)  # the search's picks this model is ("dev <= 0.3 ms")
    status: str = "ok"
    error: str | None = None
    parity: dict[str, float] | None = None
    fp32: ModelFile | None = None
    int8: ModelFile | None = None
    precision: str = "fp32"  # what the search predicted for: the FP32 file or its INT8 quantisation
    # the subnet's training before export (fine-tune or retrain: hwnas.export.subnet_training), if any
    trained: dict[str, Any] | None = None

    @property
    def deployed(self) -> ModelFile | None:
        """The file the search's predictions describe, which the report compares them with."""
        return self.int8 if self.precision == "int8" else self.fp32

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelResult":
        data = dict(data)
        data.pop("front_flops", None)  # summaries written before picks were recorded
        data["trained"] = training_of(data)
        data.pop("finetuned", None)
        for key in ("fp32", "int8"):
            if data.get(key) is not None:
                data[key] = ModelFile(**data[key])
        return cls(**data)


def training_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    """A summary entry's training before export; entries written before retraining existed name it
    ``finetuned`` (always a fine-tune then)."""
    if entry.get("trained") or not entry.get("finetuned"):
        return entry.get("trained")
    return {"mode": "fine-tune", **entry["finetuned"]}


# ----------------------------------------------------------------------------------- fronts

def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (lower latency, higher accuracy), by increasing latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _points(results: Sequence[ModelResult], device: str, which: str) -> tuple[list[int], list[tuple[float, float]]]:
    ids, pts = [], []
    for i, r in enumerate(results):
        if which == "predicted":
            lat, acc = r.predicted_latency_ms.get(device), r.predicted_accuracy
        else:
            f = {"fp32": r.fp32, "int8": r.int8, "deployed": r.deployed}[which]
            lat, acc = (f.latency_ms(device), f.accuracy) if f is not None else (None, None)
        if lat is not None and acc is not None:
            ids.append(i)
            pts.append((float(lat), float(acc)))
    return ids, pts


def _step(ax: Any, pts: list[tuple[float, float]], **style: Any) -> None:
    front = [pts[i] for i in pareto_front(pts)]
    if front:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", **style)


def plot_report(path: str | Path, results: Sequence[ModelResult], devices: Sequence[str],
                references: Sequence[Any] = ()) -> Path:
    """PNG: per device, predicted (hollow) and measured (filled) models with both Pareto fronts, and
    ``references`` (:class:`hwnas.export.references.ReferencePoint`, hand-designed networks) marked where
    they have a latency on that device; without devices, predicted vs measured accuracy over MACs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(devices) or [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, device in zip(axes[0], panels):
        if device is None:
            _plot_macs(ax, results)
        else:
            _plot_device(ax, results, device)
            _plot_references(ax, references, device)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _plot_device(ax: Any, results: Sequence[ModelResult], device: str) -> None:
    p_ids, pred = _points(results, device, "predicted")
    _, meas = _points(results, device, "fp32")
    _, int8 = _points(results, device, "int8")
    by_model = dict(zip(p_ids, pred))
    for i, (x, y) in zip(*_points(results, device, "deployed")):  # predicted -> measured, per model
        if i in by_model:
            ax.plot([by_model[i][0], x], [by_model[i][1], y], color="0.75", lw=0.8, zorder=1)
    if pred:
        ax.scatter(*zip(*pred), facecolors="none", edgecolors="tab:blue", label="predicted", zorder=2)
        _step(ax, pred, color="tab:blue", ls="--", lw=1, label="predicted front")
    if meas:
        ax.scatter(*zip(*meas), color="tab:red", s=18, label="measured FP32", zorder=3)
        _step(ax, meas, color="tab:red", lw=1.5, label="measured front")
    if int8:
        ax.scatter(*zip(*int8), color="tab:green", marker="^", s=22, label="measured INT8", zorder=3)
    ax.set_xlabel(f"latency on {device} (ms per batch)")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title(device)


def _plot_references(ax: Any, references: Sequence[Any], device: str) -> None:
    points = [(r.name, r.latency_ms[device], r.accuracy) for r in references if device in r.latency_ms]
    for i, (name, latency, accuracy) in enumerate(points):
        ax.scatter([latency], [accuracy], marker="X", s=60, color="k", zorder=4,
                   label="hand-designed reference (measured)" if i == 0 else None)
        ax.annotate(name, (latency, accuracy), textcoords="offset points", xytext=(5, -10), fontsize=7)


def _plot_macs(ax: Any, results: Sequence[ModelResult]) -> None:
    pred = [(r.macs / 1e6, r.predicted_accuracy) for r in results if r.predicted_accuracy is not None]
    meas = [(r.macs / 1e6, r.fp32.accuracy) for r in results if r.fp32 and r.fp32.accuracy is not None]
    if pred:
        ax.scatter(*zip(*pred), facecolors="none", edgecolors="tab:blue", label="predicted")
    if meas:
        ax.scatter(*zip(*meas), color="tab:red", s=18, label="measured FP32 (ONNX Runtime)")
    ax.set_xlabel("MMACs")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title("accuracy (no device measured)")


# ----------------------------------------------------------------------------------- markdown

def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _error(pred: float | None, meas: float | None) -> str:
    return f"{100 * (pred - meas) / meas:+.1f}%" if pred is not None and meas else "–"


def latency_agreement(results: Sequence[ModelResult], device: str) -> dict[str, Any] | None:
    """Predicted vs measured latency of each model's deployed file (FP32, or INT8 for a model searched
    at INT8) (:func:`hwnas.metrics.prediction_agreement`); with a speed reference also the same
    numbers at the machine speed of profiling time (``at_profile_speed``)."""
    from hwnas.metrics import prediction_agreement

    def pairs(measured: Any) -> list[tuple[float, float]]:
        return [(r.predicted_latency_ms[device], measured(r)) for r in results
                if r.deployed is not None and device in r.predicted_latency_ms and measured(r) is not None]

    now = pairs(lambda r: r.deployed.latency_ms(device))
    if not now:
        return None
    out: dict[str, Any] = prediction_agreement(*zip(*now))
    at_ref = pairs(lambda r: r.deployed.latency_ms_at_profile_speed(device))
    if at_ref:
        speed = next(r.deployed.latency[device]["speed"] for r in results
                     if r.deployed is not None and "speed" in r.deployed.latency.get(device, {}))
        out.update(at_profile_speed=prediction_agreement(*zip(*at_ref)),
                   slowdown_since_profiling=float(speed["slowdown"]))
    return out


def accuracy_agreement(results: Sequence[ModelResult]) -> dict[str, Any] | None:
    """Predicted vs measured (ONNX Runtime, test split) accuracy of each model's deployed file, by the
    same function as latency (:func:`hwnas.metrics.prediction_agreement`, absolute errors unitless)."""
    from hwnas.metrics import prediction_agreement

    pairs = [(r.predicted_accuracy, r.deployed.accuracy) for r in results
             if r.deployed is not None and r.predicted_accuracy is not None and r.deployed.accuracy is not None]
    if not pairs:
        return None
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):  # a model measured at 0 % has no relative error
        return prediction_agreement(*zip(*pairs), unit="")


def render_markdown(results: Sequence[ModelResult], devices: Sequence[str], context: dict[str, Any],
                    plot_name: str | None = "report.png") -> str:
    """The report as Markdown text (see module docstring)."""
    lines = ["# hwnas export report", ""]
    lines += [f"- **{k}**: {v}" for k, v in context.items() if v is not None]
    ok = [r for r in results if r.status == "ok"]
    lines += ["", f"{len(ok)} of {len(results)} models exported and verified.", ""]
    if plot_name:
        lines += [f"![predicted vs measured]({plot_name})", ""]
    lines += _accuracy_table(results) + [""] + _training_lines(results)
    for device in devices:
        lines += _latency_table(results, device) + [""]
    failed = [r for r in results if r.status != "ok"]
    if failed:
        lines += ["## Failures", ""] + [f"- **{r.name}**: {r.error}" for r in failed] + [""]
    lines += ["Accuracy: top-1 on the test split, run by ONNX Runtime on the exported file. Latency: per "
              "batch, by the latency tables' protocol (local ONNX Runtime: minimum over interleaved passes "
              "through all exported models; other backends: each model's repeats in turn). Parity: max |ONNX - PyTorch| / max |PyTorch| over "
              "real test images (must be <= 1e-4). MACs count multiply-accumulates (FLOPs ~ 2 x MACs).", ""]
    return "\n".join(lines)


def _training_lines(results: Sequence[ModelResult]) -> list[str]:
    """Which models were fine-tuned or retrained before export, how, and why their accuracy is not the
    predicted one."""
    trained = [r for r in results if r.trained]
    if not trained:
        return []
    lines = ["## Training before export", "",
             "The accuracy predictor scores the supernet's shared weights; these models were trained alone before "
             "export (hwnas.export.subnet_training): fine-tuned from the supernet's weights or retrained from "
             "scratch, so their measured accuracy need not match the prediction.", "",
             "| model | how | epochs | lr | seed | distilled | train s | val acc after |",
             "|---|---|---|---|---|---|---|---|"]
    for r in trained:
        t = r.trained
        lines.append(f"| {r.name} | {t.get('mode', 'fine-tune')} | {t['epochs']} | {t['lr']:g} | {t.get('seed', '-')} | "
                     f"{'yes' if t['distilled'] else 'no'} | {t['train_seconds']:.0f} | {_pct(t['val_accuracy'])} |")
    return lines + [""]


def _accuracy_table(results: Sequence[ModelResult]) -> list[str]:
    rows = ["## Accuracy and size", "",
            "| model | searched at | res | depth | MMACs | params (M) | FP32 MB | predicted acc | ONNX FP32 acc "
            "| INT8 acc | INT8 MB | parity (rel) | status |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        fp32, int8 = r.fp32, r.int8
        rows.append(" | ".join([
            f"| {r.name}", r.precision.upper(), str(r.arch.get("resolution", "")),
            "-".join(map(str, r.arch.get("depth", []))),
            _fmt(r.macs / 1e6, ".1f"), _fmt(r.params / 1e6, ".2f"),
            _fmt(fp32.size_bytes / 1e6 if fp32 else None, ".2f"), _pct(r.predicted_accuracy),
            _pct(fp32.accuracy if fp32 else None), _pct(int8.accuracy if int8 else None),
            _fmt(int8.size_bytes / 1e6 if int8 else None, ".2f"),
            _fmt(r.parity["max_rel"] if r.parity else None, ".1e"), r.status]) + " |")
    agreement = accuracy_agreement(results)
    if agreement:
        tau = agreement["kendall_tau"]
        rows += ["", f"Predicted vs measured accuracy (each model at the precision it was searched at): mean "
                     f"absolute error {100 * agreement['mae']:.2f} points over {agreement['n']} models"
                     + (f", Kendall tau {tau:.2f}" if math.isfinite(tau) else "") + "."]
    return rows


def _latency_table(results: Sequence[ModelResult], device: str) -> list[str]:
    rows = [f"## Latency on {device} (ms)", "",
            "| model | searched at | predicted | measured | p10–p90 | error | at profiling speed | error there "
            "| FP32 | INT8 | INT8 speed-up |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        pred = r.predicted_latency_ms.get(device)
        file = r.deployed
        meas = file.latency_ms(device) if file else None
        at_ref = file.latency_ms_at_profile_speed(device) if file else None
        stats = file.latency.get(device) if file else None
        f32 = r.fp32.latency_ms(device) if r.fp32 else None
        q = r.int8.latency_ms(device) if r.int8 else None
        spread = f"{stats['p10_ms']:.3f}–{stats['p90_ms']:.3f}" if stats else "–"
        speedup = f"{f32 / q:.2f}x" if f32 and q else "–"
        rows.append(f"| {r.name} | {r.precision.upper()} | {_fmt(pred, '.3f')} | {_fmt(meas, '.3f')} | {spread} | "
                    f"{_error(pred, meas)} | {_fmt(at_ref, '.3f')} | {_error(pred, at_ref)} | {_fmt(f32, '.3f')} | "
                    f"{_fmt(q, '.3f')} | {speedup} |")
    agreement = latency_agreement(results, device)
    if agreement:
        tau = agreement["kendall_tau"]
        rows += ["", f"Predicted vs measured on {device}: mean absolute error {agreement['mape_pct']:.1f}%, "
                     f"{agreement['within10_pct']:.0f}% within ±10% over {agreement['n']} models"
                     + (f", Kendall tau {tau:.2f}" if math.isfinite(tau) else "") + "."]
        if "slowdown_since_profiling" in agreement:
            rows += ["", f"Machine speed (diagnostic): the table's reference subnet runs "
                         f"{agreement['slowdown_since_profiling']:.2f}x its profiling-time latency now; with that "
                         f"ratio divided out of every model (it need not hold for small ones), mean absolute error "
                         f"{agreement['at_profile_speed']['mape_pct']:.1f}%, "
                         f"{agreement['at_profile_speed']['within10_pct']:.0f}% within ±10%."]
    return rows


# ----------------------------------------------------------------------------------- files

def summary(results: Sequence[ModelResult], devices: Sequence[str], context: dict[str, Any]) -> dict[str, Any]:
    return {"context": context, "devices": list(devices),
            "latency_agreement": {d: latency_agreement(results, d) for d in devices},
            "accuracy_agreement": accuracy_agreement(results),
            "models": [asdict(r) for r in results]}


def write_report(out_dir: str | Path, results: Sequence[ModelResult], devices: Sequence[str],
                 context: dict[str, Any]) -> dict[str, Path]:
    """Write ``report.md``, ``report.png`` and ``summary.json`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    png = plot_report(out_dir / "report.png", results, devices)
    md = atomic_write_text(out_dir / "report.md", render_markdown(results, devices, context, png.name))
    js = atomic_write_json(out_dir / "summary.json", json.loads(json.dumps(summary(results, devices, context),
                                                                           default=str)))
    return {"markdown": md, "plot": png, "summary": js}
