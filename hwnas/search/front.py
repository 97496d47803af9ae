"""The one record of a searched architecture: what ``hwnas search`` writes and every reader reads.

``front.json`` is a list of :class:`FrontRecord`, ``picks.json`` a list of :class:`Pick` (a record
plus the device and budget it was picked for). Search writes them; ``hwnas predict --json``
prints a record; ``hwnas export`` and the tests read them back through :meth:`FrontRecord.from_dict`,
so a record is built and checked in exactly one place.

Format versions: 3 (this one) adds ``precision``: the deployment precision (``fp32``, or ``int8`` for
ONNX Runtime static quantisation) whose latency table and accuracy predictor the prediction comes
from (``hwnas search --precision``); 2 stored ``"format": 2`` and ``macs``; version 1 had no
``format`` key and stored MACs as ``flops``. Records of formats 1 and 2 were all FP32 and load as
such; anything else is refused with a message naming the file, the record and what to do.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from hwnas.atomic_io import atomic_write_json
from hwnas.errors import ArchitectureError, ConfigError, HwnasError
from hwnas.paths import check_precision

FRONT_FORMAT = 3
READ_FORMATS = (1, 2, FRONT_FORMAT)
ARCH_KEYS = ("kernel", "expand", "depth", "resolution")


def _frozen_arch(arch: Mapping[str, Any]) -> Mapping[str, Any]:
    """An architecture dict as an immutable mapping (lists become tuples)."""
    return MappingProxyType({k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in arch.items()})


def _arch_json(arch: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in arch.items()}


@dataclass(frozen=True, eq=False)
class FrontRecord:
    """One architecture with its predicted accuracy, per-device latency (ms), MACs and parameters.

    ``arch`` is :meth:`hwnas.arch.Architecture.to_dict` (kernel, expand, depth, resolution);
    validating it against a space is the reader's job (it knows the space).
    """

    arch: Mapping[str, Any]
    accuracy: float | None  # None: searched without an accuracy predictor (latency/MACs/params only)
    latency_ms: Mapping[str, float]
    macs: int
    params: int
    precision: str = "fp32"  # what the predictions are for: the FP32 model or its INT8 quantisation

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", _frozen_arch(self.arch))
        object.__setattr__(self, "latency_ms", MappingProxyType({str(d): float(v) for d, v in self.latency_ms.items()}))
        accuracy = None if self.accuracy is None else float(self.accuracy)
        object.__setattr__(self, "accuracy", None if accuracy is None or math.isnan(accuracy) else accuracy)
        object.__setattr__(self, "macs", int(self.macs))
        object.__setattr__(self, "params", int(self.params))
        check_precision(self.precision)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrontRecord) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def same_arch(self, other: "FrontRecord") -> bool:
        return dict(self.arch) == dict(other.arch)

    def same_model(self, other: "FrontRecord") -> bool:
        """The same deployable model: the same network at the same precision."""
        return self.same_arch(other) and self.precision == other.precision

    def to_dict(self) -> dict[str, Any]:
        return {"format": FRONT_FORMAT, "arch": _arch_json(self.arch), "precision": self.precision,
                "predicted": {"accuracy": self.accuracy, "latency_ms": dict(self.latency_ms)},
                "macs": self.macs, "params": self.params}

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> "FrontRecord":
        """Read a record of format 3, 2 or 1 (``flops`` for MACs; both FP32); :class:`ConfigError` names
        what is wrong."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where} is not a JSON object; expected a record written by `hwnas search`")
        version = data.get("format", 1)
        if version not in READ_FORMATS:
            raise ConfigError(f"{where} has format {version!r}; this hwnas reads formats "
                              f"{', '.join(map(str, READ_FORMATS))}: upgrade hwnas or rerun the search with this version")
        macs_key = "flops" if version == 1 else "macs"
        predicted = data.get("predicted")
        missing = [k for k in ("arch", "predicted", macs_key, "params") if k not in data]
        if isinstance(predicted, dict):
            missing += [f"predicted.{k}" for k in ("accuracy", "latency_ms") if k not in predicted]
        elif "predicted" in data:
            missing.append("predicted.accuracy")
        if not isinstance(data.get("arch"), dict):
            missing.append("arch (an object)")
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(dict.fromkeys(missing))}; expected "
                              f"{{arch, predicted: {{accuracy, latency_ms}}, {macs_key}, params}} as `hwnas search` "
                              "writes it; rerun the search")
        try:
            return cls(arch=data["arch"], accuracy=predicted["accuracy"], latency_ms=dict(predicted["latency_ms"]),
                       macs=data[macs_key], params=data["params"],
                       precision=data.get("precision", "fp32") if version == FRONT_FORMAT else "fp32")
        except HwnasError as exc:  # an unknown precision
            raise ConfigError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} has a value of the wrong type ({exc}); rerun the search") from None


@dataclass(frozen=True)
class Pick:
    """The best predicted accuracy under one latency budget of one device (``record`` None: nothing met it)."""

    device: str
    budget_ms: float
    record: FrontRecord | None
    eval_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        base: dict[str, Any] = {"device": self.device, "budget_ms": float(self.budget_ms)}
        if self.record is None:
            return {"format": FRONT_FORMAT, **base, "arch": None}
        return {**self.record.to_dict(), **base, "eval_index": self.eval_index}

    @classmethod
    def from_dict(cls, data: Any, where: str = "pick") -> "Pick":
        if not isinstance(data, dict) or "device" not in data or "budget_ms" not in data:
            raise ConfigError(f"{where} lacks 'device' or 'budget_ms'; expected a pick written by `hwnas search`")
        record = None if data.get("arch") is None else FrontRecord.from_dict(data, where)
        index = data.get("eval_index")
        return cls(device=str(data["device"]), budget_ms=float(data["budget_ms"]), record=record,
                   eval_index=None if index is None else int(index))


def read_json(path: Path, what: str, fix: str, error: type[HwnasError] = ConfigError) -> Any:
    """A JSON file's content; a missing or malformed file raises ``error`` naming it and the ``fix``."""
    if not path.is_file():
        raise error(f"{what} {path} does not exist; {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is not valid JSON ({exc}); {fix}") from None


def _read_list(path: Path, what: str) -> list[Any]:
    data = read_json(path, what, "pass the --out folder of a finished `hwnas search` (or rerun it)")
    if not isinstance(data, list):
        raise ConfigError(f"{path} is not a list of records; it was not written by `hwnas search`")
    return data


def load_arch_file(path: Path, space: Any, index: int | None = None) -> Any:
    """An architecture of ``space``'s family from a file: hwnas's or once-for-all's JSON form, a record
    (front.json / picks.json entry), or a list of records with ``index`` choosing one."""
    from hwnas.families import architecture_from_dict

    data = read_json(path, "architecture file", "check the --arch path and the file", ArchitectureError)
    if isinstance(data, list):
        if index is None or not -len(data) <= index < len(data):
            raise ArchitectureError(f"{path} holds a list of {len(data)} records; choose one with --index "
                                    f"0..{len(data) - 1}")
        data = data[index]
    if isinstance(data, dict) and isinstance(data.get("arch"), dict):
        data = data["arch"]  # a front.json / picks.json record
    try:
        return architecture_from_dict(data, space)
    except ArchitectureError as exc:
        raise ArchitectureError(f"architecture file {path}: {exc}") from None


def read_front(path: str | Path) -> list[FrontRecord]:
    """``front.json`` (format 1 or 2) as records."""
    path = Path(path)
    return [FrontRecord.from_dict(r, f"{path} record {i}") for i, r in enumerate(_read_list(path, "front file"))]


def read_picks(path: str | Path) -> list[Pick]:
    """``picks.json`` as picks; a run folder without one gets a message saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} is missing: the run folder predates picks.json or is incomplete, so the "
                          "search's picks are unknown; rerun `hwnas search`, or export with --pick all or --pick N")
    return [Pick.from_dict(r, f"{path} pick {i}") for i, r in enumerate(_read_list(path, "picks file"))]


def write_records(path: str | Path, items: Sequence[FrontRecord | Pick]) -> Path:
    """Atomically write records or picks as a JSON list."""
    return atomic_write_json(path, [item.to_dict() for item in items])
