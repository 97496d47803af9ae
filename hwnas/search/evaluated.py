"""Every candidate a search evaluated, in natural units, and its file ``evaluated.npz``.

Why a binary columnar file: writing the candidates as CSV through zlib's highest level took most of
a user-facing ``hwnas search`` and capped the rate a user saw far below the engine's (issue 18);
``numpy.savez`` (uncompressed, one ``.npy`` per column) costs a small share of it
(experiments/search_cli_benchmark.py times the command beside the engine alone:
experiments/results/search_cli.json) and loads straight back into arrays with :func:`read_evaluated`;
``numpy.load("evaluated.npz")`` works too. Older run folders hold ``evaluated.csv.gz`` instead,
which :func:`read_evaluated` still reads.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np

from hwnas.atomic_io import atomic_write_stream
from hwnas.encoding import GeneLayoutBase
from hwnas.errors import ConfigError
from hwnas.search.front import FrontRecord

EVALUATED_FILE = "evaluated.npz"
LEGACY_EVALUATED_FILE = "evaluated.csv.gz"
ARCH_COLUMNS = ("kernel", "expand", "depth", "resolution")


@dataclass(frozen=True)
class Scores:
    """Per-candidate columns in natural units (evaluation order); ``latency_ms`` per device."""

    accuracy: np.ndarray
    latency_ms: dict[str, np.ndarray]
    macs: np.ndarray
    params: np.ndarray
    violation: np.ndarray
    feasible: np.ndarray
    on_front: np.ndarray

    def __len__(self) -> int:
        return len(self.accuracy)


@dataclass(frozen=True)
class Evaluated(Scores):
    """Every evaluated candidate of a search, with its ``genes`` in the search layout's encoding."""

    genes: np.ndarray

    def record(self, i: int, layout: GeneLayoutBase, precision: str = "fp32") -> FrontRecord:
        """Row ``i`` as the record ``front.json`` and ``picks.json`` hold (scored for ``precision``)."""
        return self.records([i], layout, precision)[0]

    def records(self, rows: Sequence[int] | np.ndarray, layout: GeneLayoutBase,
                precision: str = "fp32") -> list[FrontRecord]:
        """:meth:`record` of several rows, their genes decoded in one call (a large front decoded
        row by row cost a share of a search's marginal time)."""
        rows = np.asarray(rows, dtype=np.int64)
        archs = layout.decode(self.genes[rows])
        return [FrontRecord(arch=arch.to_dict(), accuracy=self.accuracy[i],
                            latency_ms={d: v[i] for d, v in self.latency_ms.items()},
                            macs=self.macs[i], params=self.params[i], precision=precision)
                for i, arch in zip(rows.tolist(), archs)]


@dataclass(frozen=True)
class EvaluatedTable(Scores):
    """What :func:`read_evaluated` returns: the scores and each candidate's architecture as columns,
    one per field of the family's architecture (``arch``; mbconv: kernel, expand, depth, resolution,
    resnet: depth, expand, width, resolution), also readable as attributes (``table.kernel``).
    Inactive blocks' columns hold the smallest choice."""

    arch: dict[str, np.ndarray]

    def __getattr__(self, name: str) -> np.ndarray:
        arch = self.__dict__.get("arch") or {}
        if name in arch:
            return arch[name]
        raise AttributeError(name)


def evaluated_columns(ev: Evaluated, layout: GeneLayoutBase) -> dict[str, Any]:
    """The arrays of ``evaluated.npz`` by member name (written uncompressed: fast, deterministic for
    the same search).

    Architectures are stored as the genes (int8) plus each gene group's choice values, decoded by
    :func:`read_evaluated`: writing the genes as they are costs nothing, decoding 100k rows here
    cost a third of the file's writing time. ``arch_fields`` names the groups (files without it hold
    mbconv's :data:`ARCH_COLUMNS`); a group's values are one row for all its genes, or one per gene.
    """
    devices = list(ev.latency_ms)
    groups = layout.arch_columns()
    latency = (np.stack([ev.latency_ms[d] for d in devices], axis=1) if devices
               else np.empty((len(ev.genes), 0), dtype=np.float64))
    columns: dict[str, Any] = {
        "devices": np.array(devices, dtype=np.str_),
        "accuracy": ev.accuracy, "latency_ms": latency,
        "macs": ev.macs, "params": ev.params, "violation": ev.violation, "feasible": ev.feasible,
        "on_front": ev.on_front, "genes": ev.genes,
        "arch_fields": np.array([name for name, _, _ in groups], dtype=np.str_),
        "gene_columns": np.array([n for _, n, _ in groups], dtype=np.int64)}
    for name, _, values in groups:
        columns[f"{name}_values"] = values
    return columns


def write_npz(fh: BinaryIO, columns: dict[str, Any]) -> None:
    """An uncompressed ``.npz`` (what ``numpy.savez`` writes) into seekable ``fh``, with fixed member
    timestamps, so reruns of a seed are byte-identical."""
    import zipfile

    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as z:
        for name, value in columns.items():
            with z.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)


def write_evaluated(path: str | Path, ev: Evaluated, layout: GeneLayoutBase) -> Path:
    """``evaluated.npz``, written straight into the file: through an in-memory buffer (grown while
    written, then copied out) it cost most of the file's writing time."""
    columns = evaluated_columns(ev, layout)
    return atomic_write_stream(path, lambda fh: write_npz(fh, columns))


def read_evaluated(run_dir: str | Path) -> EvaluatedTable:
    """The evaluated candidates of a run folder (``evaluated.npz``, or an older ``evaluated.csv.gz``)."""
    run_dir = Path(run_dir)
    if (run_dir / EVALUATED_FILE).is_file():
        with np.load(run_dir / EVALUATED_FILE, allow_pickle=False) as z:
            lat = z["latency_ms"]
            return EvaluatedTable(latency_ms={str(d): lat[:, j] for j, d in enumerate(z["devices"])},
                                  arch=_decoded_genes(z),
                                  **{k: z[k] for k in ("accuracy", "macs", "params", "violation", "feasible",
                                                       "on_front")})
    if (run_dir / LEGACY_EVALUATED_FILE).is_file():
        return _read_legacy_csv(run_dir / LEGACY_EVALUATED_FILE)
    raise ConfigError(f"{run_dir} holds neither {EVALUATED_FILE} nor {LEGACY_EVALUATED_FILE}; pass the --out "
                      "folder of a finished `hwnas search`")


def _decoded_genes(z: Any) -> dict[str, np.ndarray]:
    """The architecture's columns from the stored genes and choice values."""
    genes, bounds = z["genes"], np.cumsum(np.concatenate([[0], z["gene_columns"]]))
    names = [str(n) for n in z["arch_fields"]] if "arch_fields" in z else list(ARCH_COLUMNS)
    out = {}
    for i, name in enumerate(names):
        values, chosen = z[f"{name}_values"], genes[:, bounds[i]:bounds[i + 1]]
        out[name] = values[np.arange(chosen.shape[1])[None, :], chosen] if values.ndim == 2 else values[chosen]
    out["resolution"] = out["resolution"][:, 0]
    return out


def _read_legacy_csv(path: Path) -> EvaluatedTable:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    devices = [k[len("latency_ms["):-1] for k in (rows[0] if rows else {}) if k.startswith("latency_ms[")]

    def col(key: str, dtype: Any) -> np.ndarray:
        return np.array([r[key] for r in rows], dtype=dtype)

    def dashed(key: str) -> np.ndarray:
        return np.array([[int(x) for x in r[key].split("-")] for r in rows], dtype=np.int8)

    return EvaluatedTable(accuracy=col("accuracy", float), latency_ms={d: col(f"latency_ms[{d}]", float) for d in devices},
                          macs=col("flops", np.int64), params=col("params", np.int64),
                          violation=col("violation", float), feasible=col("feasible", int).astype(bool),
                          on_front=col("on_front", int).astype(bool),
                          arch={"kernel": dashed("kernel"), "expand": dashed("expand"), "depth": dashed("depth"),
                                "resolution": col("resolution", np.int16)})
