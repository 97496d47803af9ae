"""Hand-designed reference networks that a searched front has to beat.

A NAS tool whose exported models lose to a plain MLP or a small CNN at the same latency is not
credible, so the quickstart puts such references beside its exported models: their test accuracy
and measured latency come from ``experiments/reference_models.py`` (trained with hwnas's own data
pipeline and recipe, timed with the same protocol on the same device profile), which writes the
file through :func:`write_references`; everything else reads it through :func:`load_references`.

A reference is *beaten* by an exported model that is at least as fast on the device and strictly
more accurate on the same test set, both measured, never predicted. Latencies drift with the machine
(the quickstart has seen a CPU run at 0.85x its profiled speed), so :func:`compare_with_references`
times the references' architectures again beside the exported files, in one interleaved group, and
compares the latencies of that one group; the accuracies come from the files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from hwnas.atomic_io import atomic_write_json
from hwnas.errors import ConfigError

FORMAT = "hwnas-reference-models-v1"
INPUT_SHAPE = (1, 28, 28)  # the references are Fashion-MNIST networks: one grey 28 px channel


def mlp(classes: int = 10) -> Any:
    """784-512-256-10 with ReLU and dropout: the MLP row of Fashion-MNIST's benchmark table."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, classes))


def small_cnn(classes: int = 10) -> Any:
    """Two conv-conv-pool stages (32, 64 channels) and a 128-unit head: a plain VGG-style small CNN."""
    from torch import nn

    def conv(cin: int, cout: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(*conv(1, 32), *conv(32, 32), nn.MaxPool2d(2), *conv(32, 64), *conv(64, 64),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(128, classes))


# name -> builder; the names are the ``model`` keys of the reference file
ARCHITECTURES = {"mlp": mlp, "small-cnn": small_cnn}


def reference_onnx(name: str, seed: int = 0) -> bytes:
    """The reference's architecture as an ONNX model (eval mode, exported as hwnas exports subnets);
    seeded random weights: dense FP32 latency does not depend on the weights' values."""
    import torch

    from hwnas.export.onnx_export import to_onnx

    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown reference model {name!r}; known: {', '.join(ARCHITECTURES)}")
    torch.manual_seed(seed)
    return to_onnx(ARCHITECTURES[name]().eval(), INPUT_SHAPE).SerializeToString()


@dataclass(frozen=True)
class ReferencePoint:
    """One hand-designed network: test accuracy (fraction) and measured latency (ms) per device."""

    name: str
    accuracy: float
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # params, training time, ...

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.name, "test_accuracy": self.accuracy, "latency_ms": dict(self.latency_ms),
                **dict(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ReferencePoint":
        data = dict(data)
        try:
            name, accuracy, latency = data.pop("model"), float(data.pop("test_accuracy")), data.pop("latency_ms")
        except KeyError as missing:
            raise ConfigError(f"reference model entry lacks {missing}; regenerate the file with "
                              "python experiments/reference_models.py") from None
        return cls(str(name), accuracy, {str(d): float(v) for d, v in latency.items()}, data)


def write_references(path: str | Path, points: Sequence[ReferencePoint], context: Mapping[str, Any]) -> Path:
    """The reference file: ``context`` (what, command, date, device, ...) plus one entry per model."""
    return atomic_write_json(path, {"format": FORMAT, **dict(context), "models": [p.to_dict() for p in points]})


def load_references(path: str | Path) -> list[ReferencePoint]:
    """The reference points of a file written by :func:`write_references`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read reference models from {path}: {err}; regenerate it with "
                          "python experiments/reference_models.py") from None
    if data.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a reference-models file (format {data.get('format')!r}, expected "
                          f"{FORMAT!r}); regenerate it with python experiments/reference_models.py")
    return [ReferencePoint.from_dict(entry) for entry in data.get("models", [])]


def beaten_by(reference: ReferencePoint, models: Sequence[tuple[str, float | None, float | None]],
              device: str) -> list[str] | None:
    """Names of ``models`` ((name, measured test accuracy, measured latency ms) on ``device``) that are
    at least as fast as ``reference`` and strictly more accurate; None if the reference has no
    latency on that device (nothing can be said)."""
    limit = reference.latency_ms.get(device)
    if limit is None:
        return None
    return [name for name, accuracy, latency in models
            if accuracy is not None and latency is not None and math.isfinite(latency)
            and latency <= limit and accuracy > reference.accuracy]


def compare_with_references(references: Sequence[ReferencePoint], models: Sequence[tuple[str, float | None, Any]],
                            profile: Any, progress: Any = None, min_seconds: float | None = None
                            ) -> list[dict[str, Any]]:
    """Time the references' architectures and ``models`` ((name, measured test accuracy, (onnx, shape)))
    in one interleaved group on ``profile`` and say which models beat which reference.

    Returns one row per reference: its accuracy (from its file), its latency now, the latency it was
    recorded with, and ``beaten_by`` -- the models at least as fast now and strictly more accurate.
    """
    from hwnas.latency.measure import MIN_MEASURE_SECONDS, TimingProtocol, make_measurer, single_torch_thread, time_models

    known = [r for r in references if r.name in ARCHITECTURES]
    graphs = [(reference_onnx(r.name), (profile.batch_size, *INPUT_SHAPE)) for r in known]
    protocol = TimingProtocol()
    with single_torch_thread():
        stats = time_models(make_measurer(profile), graphs + [m[2] for m in models], progress=progress,
                            protocol=protocol, min_seconds=MIN_MEASURE_SECONDS if min_seconds is None else min_seconds)
    now = [s.value(protocol.statistic) for s in stats]
    measured = [(name, acc, ms) for (name, acc, _), ms in zip(models, now[len(known):])]
    rows = []
    for ref, ms in zip(known, now):
        rows.append({"model": ref.name, "test_accuracy": ref.accuracy, "latency_ms_now": round(ms, 5),
                     "latency_ms_recorded": ref.latency_ms.get(profile.name),
                     "beaten_by": beaten_by(ReferencePoint(ref.name, ref.accuracy, {profile.name: ms}), measured,
                                            profile.name)})
    return rows + [{"model": name, "test_accuracy": acc, "latency_ms_now": round(ms, 5), "exported": True}
                   for name, acc, ms in measured]
