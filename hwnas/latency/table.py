"""Per-device latency lookup tables: predict a subnet's latency as a (calibrated) sum of its blocks.

The table holds one measured latency per distinct block configuration of a search space (keyed
by everything that changes the block's computation, input size included) plus the stem and head
per resolution. Predicting an architecture is then a sum of lookups, as in once-for-all and
nn-Meter. A plain sum is biased (every isolated measurement carries the runtime's per-call
overhead; fused graphs run a little differently), so a small linear correction fitted on whole
subnets measured end to end turns the sum into the final prediction.

Search scores 100k+ candidates at a time, so :meth:`LatencyTable.predict_genes` works on integer
gene matrices (:class:`~hwnas.encoding.GeneLayout`): the table is precomputed as a dense array
indexed ``[slot, kernel, expand, resolution]`` and the correction is folded into it, so a batch
prediction is one gather and one masked sum. No torch here.

A ``resnet``-family table (:class:`ResNetLatencyTable`, what ``LatencyTable(space, ...)`` builds for
such a space) is the same file type with the same correction and report. A bottleneck block's cost
depends on its own expand ratio *and* on the widths of its input and output, so its entries are keyed
by the layer shapes it runs (input, hidden and output channels, stride, shortcut kind, input size);
the stem (its widths, whether its middle conv runs) and the head (last width) are entries too. The
dense form is :meth:`~hwnas.resnet_encoding.ResNetGeneLayout.additive_sum`'s stem / block / head tables.

A ``plain``-family table (:class:`PlainLatencyTable`) is keyed the same way: one entry per conv layer
shape (input and output channels, kernel, whether 2x2 max pooling runs first, input size) and one per
head shape (last width, final size); its dense form is
:meth:`~hwnas.plain_encoding.PlainGeneLayout.additive_sum`'s layer / head tables.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.additive import slot_sum
from hwnas.arch import Architecture
from hwnas.atomic_io import atomic_write_json
from hwnas.errors import ArchitectureError, ConfigError, MeasurementError
from hwnas.families import AnyArchitecture, gene_layout, largest_architecture
from hwnas.plain_arch import ConvLayerSpec, PlainArchitecture, plain_plan
from hwnas.plain_encoding import PlainGeneLayout
from hwnas.plan import (BlockSpec, block_plan, conv_out, elastic_block_spec, final_size, first_block_spec,
                        stage_input_sizes, stem_output_size)
from hwnas.resnet_arch import BottleneckSpec, ResNetArchitecture, resnet_plan
from hwnas.resnet_encoding import ResNetGeneLayout
from hwnas.space import AnySpace, PlainSpace, ResNetSpace, SearchSpace, get_space

TABLE_FORMAT = "hwnas-latency-table"
TABLE_VERSION = 1


# ------------------------------------------------------------------------------------- keys

def block_key(spec: BlockSpec, input_size: int) -> str:
    """OFA-style key, e.g. ``mbconv:in16:out24:mid96:k7:s2:relu:se0:res32`` (residual follows from in/out/s)."""
    key = (f"mbconv:in{spec.in_channels}:out{spec.out_channels}:mid{spec.mid_channels}:k{spec.kernel}"
           f":s{spec.stride}:{spec.act}:se{spec.se_channels}:res{input_size}")
    return key if spec.expand_conv else key + ":noexp"


OVERHEAD_KEY = "overhead"  # a trivial graph: the runtime's fixed cost per call


def stem_key(resolution: int) -> str:
    return f"stem:res{resolution}"


def head_key(resolution: int) -> str:
    """The head of a network whose *input* resolution is ``resolution``."""
    return f"head:res{resolution}"


@dataclass(frozen=True)
class TableEntry:
    """One thing to measure: a block, the stem or the head, with its input shape (C, H, W).

    ``block`` is the block's spec (an MBConv :class:`BlockSpec`, a ResNet :class:`BottleneckSpec` or a
    plain CNN's conv layer, :class:`ConvLayerSpec`); ``stem`` a ResNet stem's (mid width, out width,
    middle conv skipped)."""

    key: str
    kind: str  # "overhead" | "stem" | "block" | "head"
    input_shape: tuple[int, int, int]
    block: BlockSpec | BottleneckSpec | ConvLayerSpec | None = None
    stem: tuple[int, int, bool] | None = None


def enumerate_entries(space: AnySpace | str, resolutions: Sequence[int] | None = None) -> list[TableEntry]:
    """Every distinct block configuration the space can produce at ``resolutions`` (default: all), deduped."""
    space = get_space(space)
    return _ENTRIES[space.family](space, resolutions)


def _mbconv_entries(space: SearchSpace, resolutions: Sequence[int] | None) -> list[TableEntry]:
    resolutions = check_resolutions(space, resolutions)
    entries: dict[str, TableEntry] = {}

    def add(entry: TableEntry) -> None:
        entries.setdefault(entry.key, entry)

    add(TableEntry(OVERHEAD_KEY, "overhead", (1, 1, 1)))
    for r in resolutions:
        add(TableEntry(stem_key(r), "stem", (space.in_channels, r, r)))
        size = stem_output_size(space, r)
        first = first_block_spec(space)
        add(TableEntry(block_key(first, size), "block", (first.in_channels, size, size), first))
        for stage, size in enumerate(stage_input_sizes(space, r)):
            for index in range(max(space.stage_depths(stage))):
                in_size = size if index == 0 else conv_out(size, space.stages[stage].stride)
                for k in space.kernel_sizes:
                    for e in space.expand_ratios:
                        spec = elastic_block_spec(space, stage, index, k, e)
                        add(TableEntry(block_key(spec, in_size), "block", (spec.in_channels, in_size, in_size), spec))
        f = final_size(space, r)
        add(TableEntry(head_key(r), "head", (space.stages[-1].width, f, f)))
    return list(entries.values())


def arch_keys(space: AnySpace | str, arch: Architecture | ResNetArchitecture) -> list[str]:
    """Keys of the entries an architecture runs: stem, every block (first fixed block included), head."""
    space = get_space(space)
    return _ARCH_KEYS[space.family](space, arch)


def _mbconv_arch_keys(space: SearchSpace, arch: Architecture) -> list[str]:
    blocks = [block_key(b.spec, b.input_size) for b in block_plan(space, arch)]
    return [stem_key(arch.resolution), *blocks, head_key(arch.resolution)]


# ------------------------------------------------------------------------------------- resnet keys

def bottleneck_key(spec: BottleneckSpec) -> str:
    """e.g. ``bottleneck:in64:mid16:out256:s1:ds:res56`` (``ds``: avg-pool + 1x1 conv shortcut, ``id``: identity)."""
    return (f"bottleneck:in{spec.in_channels}:mid{spec.mid_channels}:out{spec.out_channels}:s{spec.stride}"
            f":{'ds' if spec.downsample else 'id'}:res{spec.input_size}")


def resnet_stem_key(space: ResNetSpace, mid: int, out: int, skip: bool, resolution: int) -> str:
    """The stem convs and max pooling; ``skip``: without the middle conv."""
    return f"resnet-stem:in{space.in_channels}:mid{mid}:out{out}:{'skip' if skip else 'full'}:res{resolution}"


def resnet_head_key(features: int, size: int) -> str:
    """Global pooling and the classifier on a ``features`` x ``size`` x ``size`` map."""
    return f"resnet-head:in{features}:res{size}"


def _resnet_entries(space: ResNetSpace, resolutions: Sequence[int] | None) -> list[TableEntry]:
    """Every stem, block and head shape a subnet of ``space`` runs at ``resolutions``, one entry per key."""
    resolutions = check_resolutions(space, resolutions)
    layout = ResNetGeneLayout(dataclasses.replace(space, resolutions=resolutions))
    tables = layout.part_tables(
        lambda mid, out, skip, r: TableEntry(resnet_stem_key(space, mid, out, skip, r), "stem",
                                             (space.in_channels, r, r), stem=(mid, out, skip)),
        lambda b: TableEntry(bottleneck_key(b), "block", (b.in_channels, b.input_size, b.input_size), b),
        lambda features, size: TableEntry(resnet_head_key(features, size), "head", (features, size, size)))
    return _distinct_entries(tables)


def _resnet_arch_keys(space: ResNetSpace, arch: ResNetArchitecture) -> list[str]:
    plan = resnet_plan(space, arch)
    last = plan.blocks[-1]
    return [resnet_stem_key(space, plan.stem_mid, plan.stem_out, plan.stem_skip, arch.resolution),
            *(bottleneck_key(b) for b in plan.blocks),
            resnet_head_key(plan.features, conv_out(last.input_size, last.stride))]


# ------------------------------------------------------------------------------------- plain keys

def plain_conv_key(spec: ConvLayerSpec) -> str:
    """e.g. ``plain-conv:in32:out64:k3:pool:res28`` (``pool``: 2x2 max pooling first; ``res``: the size
    entering it; a ``:skip`` suffix for a layer with an identity skip, so tables without skips keep their keys)."""
    return (f"plain-conv:in{spec.in_channels}:out{spec.out_channels}:k{spec.kernel}"
            f":{'pool' if spec.pool else 'nopool'}:res{spec.input_size}{':skip' if spec.residual else ''}")


def plain_head_key(features: int, size: int) -> str:
    """Global pooling, dropout and the classifier on a ``features`` x ``size`` x ``size`` map."""
    return f"plain-head:in{features}:res{size}"


def _plain_entries(space: PlainSpace, resolutions: Sequence[int] | None) -> list[TableEntry]:
    """Every conv layer and head shape a subnet of ``space`` runs at ``resolutions``, one entry per key
    (layers of one shape at different positions share it)."""
    resolutions = check_resolutions(space, resolutions)
    layout = PlainGeneLayout(dataclasses.replace(space, resolutions=resolutions))
    tables = layout.part_tables(
        lambda spec: TableEntry(plain_conv_key(spec), "block", (spec.in_channels, spec.input_size, spec.input_size),
                                spec),
        lambda features, size: TableEntry(plain_head_key(features, size), "head", (features, size, size)))
    return _distinct_entries(tables)


def _distinct_entries(tables: Sequence[np.ndarray]) -> list[TableEntry]:
    """The overhead entry and every entry of ``tables`` (object arrays, None where no subnet goes),
    the first of each key."""
    entries = {OVERHEAD_KEY: TableEntry(OVERHEAD_KEY, "overhead", (1, 1, 1))}
    for table in tables:
        for entry in table.ravel():
            if entry is not None:
                entries.setdefault(entry.key, entry)
    return list(entries.values())


def _plain_arch_keys(space: PlainSpace, arch: PlainArchitecture) -> list[str]:
    plan = plain_plan(space, arch)
    return [*(plain_conv_key(layer) for layer in plan.layers), plain_head_key(plan.features, plan.final_size)]


_ENTRIES: dict[str, Callable[[Any, Sequence[int] | None], list[TableEntry]]] = {
    "mbconv": _mbconv_entries, "resnet": _resnet_entries, "plain": _plain_entries}
_ARCH_KEYS: dict[str, Callable[[Any, Any], list[str]]] = {"mbconv": _mbconv_arch_keys, "resnet": _resnet_arch_keys,
                                                          "plain": _plain_arch_keys}


def reference_architecture(space: AnySpace, resolutions: Sequence[int]) -> AnyArchitecture:
    """The machine-speed reference ("canary") of a table, in every family: the largest subnet at the smallest profiled
    resolution. Its latency is stored with the table and re-measured beside exported models, so a
    later measurement on a machine whose speed has drifted can be told apart from a wrong prediction."""
    return largest_architecture(space, min(resolutions))


def entry_ms(entry: dict[str, Any]) -> float:
    """An entry's latency: ``ms`` (the statistic the profile chose, see ``protocol.statistic``), else the median."""
    return float(entry["ms"] if "ms" in entry else entry["median_ms"])


def check_resolutions(space: AnySpace, resolutions: Sequence[int] | None) -> tuple[int, ...]:
    if resolutions is None:
        return space.resolutions
    resolutions = tuple(sorted({int(r) for r in resolutions}))
    bad = [r for r in resolutions if r not in space.resolutions]
    if bad or not resolutions:
        raise ConfigError(f"resolution(s) {bad or '(none)'} not in space {space.name!r}; "
                          f"choose from {', '.join(map(str, space.resolutions))}")
    return resolutions


# ------------------------------------------------------------------------------------- correction

# Candidate correction models, simplest first: (feature patterns, fitted intercept). All are linear
# in features that are sums of table entries *net of the per-call overhead* (so a correction folds
# into the dense table), with non-negative weights on latency sums; ``res*`` adds one offset per
# resolution. "net" is not fitted at all: the overhead-corrected sum itself.
CANDIDATE_MODELS: dict[str, tuple[tuple[str, ...], bool]] = {
    "net": (("total",), False),
    "scale": (("total",), False),
    "linear": (("total",), True),
    "split": (("blocks", "stem_head"), True),
    "linear+res": (("total", "res*"), True),
    "stages": (("first", "stage*", "stem_head"), True),
}
# Take the simplest model whose leave-one-out relative RMSE is within 5% (or 0.1 points) of the best.
_TOLERANCE, _TOLERANCE_ABS = 1.05, 1e-3


@dataclass(frozen=True)
class LatencyCorrection:
    """``prediction = intercept + sum(coef * feature)``; the identity correction is the net LUT sum."""

    model: str
    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float

    @classmethod
    def identity(cls) -> "LatencyCorrection":
        return cls("net", ("total",), (1.0,), 0.0)

    def apply(self, features: dict[str, np.ndarray]) -> np.ndarray:
        out = np.full(len(features["total"]), self.intercept, dtype=np.float64)
        for name, c in zip(self.features, self.coef):
            out += c * features[name]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "features": list(self.features), "coef": list(self.coef),
                "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatencyCorrection":
        return cls(str(data["model"]), tuple(data["features"]), tuple(float(c) for c in data["coef"]),
                   float(data["intercept"]))


def fit_correction(features: dict[str, np.ndarray], measured: np.ndarray,
                   accept: Callable[[LatencyCorrection], bool] | None = None) -> tuple[LatencyCorrection, dict]:
    """Fit every candidate model; keep the simplest within 5% of the best leave-one-out error.

    Fits minimise *relative* squared error (rows weighted by 1/measured), since accuracy is judged
    in percent. ``accept`` can veto a model (e.g. one that extrapolates to a negative latency).
    Returns the chosen correction and a per-model summary of leave-one-out errors.
    """
    y = np.asarray(measured, dtype=np.float64)
    summary: dict[str, Any] = {}
    fitted: dict[str, LatencyCorrection] = {}
    for model, (patterns, intercept) in CANDIDATE_MODELS.items():
        names = [f for f in _expand_features(patterns, features) if f == "total" or np.ptp(features[f]) > 0]
        X = np.column_stack([features[f] for f in names] + ([np.ones(len(y))] if intercept else []))
        signed = [f.startswith("res") for f in names] + ([True] if intercept else [])
        if model != "net" and len(y) < X.shape[1] + 3:
            continue  # too few points to fit and check this model
        loo, correction = _fit_loo(model, names, X, y, np.array(signed, dtype=bool), intercept)
        if accept is not None and not accept(correction):
            summary[model] = {"rejected": "predicts a non-positive latency for the fastest subnet"}
            continue
        fitted[model] = correction
        summary[model] = {"loo_rmse_ms": float(np.sqrt(np.mean((loo - y) ** 2))),
                          "loo_mape": float(np.mean(np.abs(loo - y) / y)),
                          "loo_rel_rmse": float(np.sqrt(np.mean(((loo - y) / y) ** 2))),
                          "params": 0 if model == "net" else X.shape[1]}
    if not fitted:
        return LatencyCorrection.identity(), summary
    best = min(summary[m]["loo_rel_rmse"] for m in fitted)
    chosen = next(m for m in fitted if summary[m]["loo_rel_rmse"] <= best * _TOLERANCE + _TOLERANCE_ABS)
    return fitted[chosen], summary


def _fit_loo(model: str, names: list[str], X: np.ndarray, y: np.ndarray, signed: np.ndarray,
             intercept: bool) -> tuple[np.ndarray, LatencyCorrection]:
    """Leave-one-out predictions and the fit on all points (bounded, relative least squares)."""
    if model == "net":
        return X[:, 0].copy(), LatencyCorrection.identity()

    def solve(rows: np.ndarray) -> np.ndarray:
        w = 1.0 / y[rows]
        A, b = X[rows] * w[:, None], y[rows] * w
        beta = np.linalg.lstsq(A, b, rcond=None)[0]
        if np.all((beta >= 0) | signed):
            return beta  # the unconstrained optimum already respects the bounds
        # signed coefficients become a difference of two non-negative ones: a plain NNLS problem
        split = nnls(np.hstack([A, -A[:, signed]]), b)
        beta = split[:A.shape[1]]
        beta[signed] -= split[A.shape[1]:]
        return beta

    loo = np.array([X[i] @ solve(np.arange(len(y)) != i) for i in range(len(y))])
    beta = solve(np.ones(len(y), dtype=bool))
    coef = beta[:-1] if intercept else beta
    return loo, LatencyCorrection(model, tuple(names), tuple(float(c) for c in coef),
                                  float(beta[-1]) if intercept else 0.0)


def nnls(A: np.ndarray, b: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Non-negative least squares (Lawson-Hanson active set), for the handful of columns used here.

    Written out rather than imported from scipy.optimize, whose import alone takes over a second.
    """
    n = A.shape[1]
    free = np.zeros(n, dtype=bool)
    x = np.zeros(n)
    for _ in range(3 * n + 10):
        grad = A.T @ (b - A @ x)
        if free.all() or grad[~free].max() <= tol:
            break
        free[np.flatnonzero(~free)[np.argmax(grad[~free])]] = True
        while True:
            z = np.zeros(n)
            z[free] = np.linalg.lstsq(A[:, free], b, rcond=None)[0]
            if (z[free] > tol).all():
                break
            bad = free & (z <= tol)
            alpha = np.min(x[bad] / np.maximum(x[bad] - z[bad], 1e-300))
            x = x + alpha * (z - x)
            free &= x > tol
            x[~free] = 0.0
        x = z
    return x


def _expand_features(patterns: Sequence[str], features: dict[str, np.ndarray]) -> list[str]:
    """``stage*`` -> stage0, stage1, ...; ``res*`` -> one offset per resolution but the first."""
    names: list[str] = []
    for p in patterns:
        if p.endswith("*"):
            matches = sorted((f for f in features if f.startswith(p[:-1]) and f[len(p) - 1:].isdigit()),
                             key=lambda f: int(f[len(p) - 1:]))
            names.extend(matches[1:] if p == "res*" else matches)
        else:
            names.append(p)
    return names


# ------------------------------------------------------------------------------------- the table

class LatencyTable:
    """Measured entries of one space on one device, plus the correction fitted on whole subnets.

    ``predict``/``predict_genes`` give the calibrated prediction (ms per batch); pass
    ``calibrated=False`` for the plain sum of the entries (stem + blocks + head).
    ``LatencyTable(space, ...)`` (and :meth:`load`) gives the table class of ``space``'s family
    (:data:`TABLE_CLASSES`): this one for ``mbconv``, :class:`ResNetLatencyTable` for ``resnet``,
    :class:`PlainLatencyTable` for ``plain``.
    """

    def __new__(cls, space: AnySpace | str, *args: Any, **kwargs: Any) -> "LatencyTable":
        if cls is LatencyTable:
            cls = TABLE_CLASSES[get_space(space).family]
        return super().__new__(cls)

    def __init__(self, space: SearchSpace | str, entries: dict[str, dict[str, Any]],
                 meta: dict[str, Any] | None = None, correction: LatencyCorrection | None = None,
                 calibration: dict[str, Any] | None = None, resolutions: Sequence[int] | None = None) -> None:
        self.space = get_space(space)
        self.entries = dict(entries)
        self.meta = dict(meta or {})
        self.correction = correction or LatencyCorrection.identity()
        self.calibration = dict(calibration or {})
        self.resolutions = check_resolutions(self.space, resolutions)
        self.layout = gene_layout(self.space)
        self._build_dense()

    @property
    def precision(self) -> str:
        """What the measured graphs ran at (``fp32``, ``int8``, or a torch-cuda profile's ``fp16``/``bf16``),
        from the table's provenance; tables without one were FP32."""
        return str((self.meta.get("protocol") or {}).get("precision") or "fp32")

    # --------------------------------------------------------------------------- dense arrays
    def _ms(self, key: str) -> float:
        try:
            return entry_ms(self.entries[key])
        except KeyError:
            raise MeasurementError(f"latency table lacks entry {key}; re-run 'hwnas profile' for space "
                                   f"{self.space.name!r} to measure it") from None

    def _lookup(self, keys: np.ndarray, res_axis: int) -> np.ndarray:
        """Entry latencies for an array of keys (the shape-keyed families' dense tables): NaN at
        unprofiled resolutions, 0 where no subnet goes."""
        out = np.zeros(keys.shape)
        for index, key in np.ndenumerate(keys):
            if not self.profiled[index[res_axis]]:
                out[index] = np.nan
            elif key is not None:
                out[index] = self._ms(key)
        return out

    def _build_dense(self) -> None:
        """``slot_ms[slot, k, e, r]`` and per-resolution ``stem/first/head`` (NaN where not profiled)."""
        s = self.space
        R = len(s.resolutions)
        self.slot_ms = np.full((s.num_block_slots, len(s.kernel_sizes), len(s.expand_ratios), R), np.nan)
        self.slot_ms[~self.layout.active_by_depth.any(axis=1).ravel()] = 0.0  # slots no depth choice reaches
        self.stem_ms, self.first_ms, self.head_ms = (np.full(R, np.nan) for _ in range(3))
        self.profiled = np.zeros(R, dtype=bool)
        first = first_block_spec(s)
        for ri, r in enumerate(s.resolutions):
            if r not in self.resolutions:
                continue
            self.profiled[ri] = True
            self.stem_ms[ri] = self._ms(stem_key(r))
            self.head_ms[ri] = self._ms(head_key(r))
            self.first_ms[ri] = self._ms(block_key(first, stem_output_size(s, r)))
            for stage, size in enumerate(stage_input_sizes(s, r)):
                for index in range(max(s.stage_depths(stage))):
                    in_size = size if index == 0 else conv_out(size, s.stages[stage].stride)
                    slot = stage * s.max_depth + index
                    for ki, k in enumerate(s.kernel_sizes):
                        for ei, e in enumerate(s.expand_ratios):
                            spec = elastic_block_spec(s, stage, index, k, e)
                            self.slot_ms[slot, ki, ei, ri] = self._ms(block_key(spec, in_size))
        self.overhead_ms = entry_ms(self.entries[OVERHEAD_KEY]) if OVERHEAD_KEY in self.entries else 0.0
        index_type = np.int16 if self.slot_ms.size < np.iinfo(np.int16).max else np.int32
        self._slot_base = (np.arange(s.num_block_slots) * self.slot_ms[0].size).astype(index_type)
        self._raw = (self.slot_ms.ravel(), self.stem_ms + self.first_ms + self.head_ms)
        self._calibrated = self._fold(self.correction)

    def _fold(self, corr: LatencyCorrection) -> tuple[np.ndarray, np.ndarray]:
        """Fold a linear correction of the net features into (per-slot table, per-resolution constant)."""
        s, ov = self.space, self.overhead_ms
        slot_w = np.zeros(s.num_block_slots)
        per_res = np.full(len(s.resolutions), corr.intercept)
        for name, c in zip(corr.features, corr.coef):
            if name in ("total", "blocks"):
                slot_w += c
            if name in ("total", "blocks", "first"):
                per_res += c * (self.first_ms - ov)
            if name in ("total", "stem_head"):
                per_res += c * (self.stem_ms + self.head_ms - ov)
            if name.startswith("stage"):
                slot_w[self.layout.slot_stage == int(name[5:])] += c
            if name.startswith("res"):
                per_res[s.resolutions.index(int(name[3:]))] += c
        table = slot_w[:, None, None, None] * (self.slot_ms - ov)
        return table.ravel(), per_res

    # --------------------------------------------------------------------------- prediction
    def _check_profiled(self, res_idx: np.ndarray) -> None:
        if not self.profiled[res_idx].all():
            missing = sorted({self.space.resolutions[i] for i in np.unique(res_idx) if not self.profiled[i]})
            raise ArchitectureError(f"latency table was profiled at resolutions {list(self.resolutions)}, not "
                                    f"{missing}; re-run 'hwnas profile' with --resolutions including them")

    def _gather(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat table indices (n, slots), the active-slot mask (n, slots) and resolution indices (n,).

        Genes must already be checked. Small integer types keep the intermediates cache-sized.
        """
        L, nr = self.layout, len(self.space.resolutions)
        dtype = self._slot_base.dtype.type
        res_idx = genes[:, L.resolution_gene].astype(dtype)
        idx = genes[:, L.kernel_genes].astype(dtype) * dtype(len(self.space.expand_ratios) * nr)
        idx += genes[:, L.expand_genes] * dtype(nr)
        idx += res_idx[:, None]
        idx += self._slot_base
        active = L.active(genes)
        return idx, active, res_idx

    def predict_genes(self, genes: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Latency (ms per batch) of every row of a gene matrix: per-resolution constant plus the
        entries of the active slots (:func:`hwnas.additive.slot_sum`; candidates/s in ``throughput``
        of experiments/results/latency_<device>.json)."""
        genes = self.layout.check(genes)
        self._check_profiled(genes[:, self.layout.resolution_gene])
        table, per_res = self._calibrated if calibrated else self._raw
        return slot_sum(self.layout, genes, table.reshape(self.slot_ms.shape), per_res)

    def predict(self, arch: Architecture, calibrated: bool = True) -> float:
        """Latency of one architecture in ms per batch (corrected LUT sum unless ``calibrated=False``)."""
        arch.validate(self.space)
        self._check_profiled(np.array([self.space.resolutions.index(arch.resolution)]))
        if not calibrated:
            return float(sum(self._ms(k) for k in arch_keys(self.space, arch)))
        return float(self.predict_genes(self.layout.encode(arch), calibrated=True)[0])

    def lut_sum(self, arch: Architecture) -> float:
        """Plain sum of the architecture's entries (stem + blocks + head), no correction."""
        return self.predict(arch, calibrated=False)

    def features(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        """Per-architecture sums the correction models use, each entry net of the per-call overhead.

        ``total`` = sum of (entry - overhead) over every graph + one overhead for the single call a
        whole network makes; ``plain`` is the uncorrected sum, for reference.
        """
        genes = self.layout.check(genes)
        self._check_profiled(genes[:, self.layout.resolution_gene])
        idx, active, res_idx = self._gather(genes)
        ov = self.overhead_ms
        slot = np.take(self.slot_ms.ravel(), idx)
        net = (slot - ov) * active
        out = {"first": self.first_ms[res_idx] - ov, "stem_head": (self.stem_ms + self.head_ms)[res_idx] - ov}
        for stage in range(self.space.num_stages):
            out[f"stage{stage}"] = net[:, self.layout.slot_stage == stage].sum(axis=1)
        out["blocks"] = net.sum(axis=1) + out["first"]
        out["total"] = out["blocks"] + out["stem_head"]
        out["plain"] = (slot * active).sum(axis=1) + self._raw[1][res_idx]
        for ri, r in enumerate(self.space.resolutions):
            if self.profiled[ri]:
                out[f"res{r}"] = (res_idx == ri).astype(np.float64)
        return out

    def with_correction(self, correction: LatencyCorrection,
                        calibration: dict[str, Any] | None = None) -> "LatencyTable":
        return type(self)(self.space, self.entries, self.meta, correction, calibration or self.calibration,
                            self.resolutions)

    # --------------------------------------------------------------------------- extremes
    def fastest_genes(self, calibrated: bool = True) -> np.ndarray:
        """Genes of the fastest architecture (exact: the model is additive over slots)."""
        s, L = self.space, self.layout
        table, per_res = self._calibrated if calibrated else self._raw
        table = table.reshape(self.slot_ms.shape)
        best_total, best = np.inf, None
        for ri in np.flatnonzero(self.profiled):
            flat = table[:, :, :, ri].reshape(s.num_block_slots, -1)
            choice = flat.argmin(axis=1)
            slot_best = flat[np.arange(s.num_block_slots), choice].reshape(s.num_stages, s.max_depth)
            cum = np.cumsum(slot_best, axis=1)
            depth_cost = np.take_along_axis(cum, L.stage_depth_values - 1, axis=1)  # (stages, depth choices)
            depth_choice = depth_cost.argmin(axis=1)
            total = per_res[ri] + depth_cost[np.arange(s.num_stages), depth_choice].sum()
            if total < best_total:
                genes = np.zeros(L.num_genes, dtype=np.int64)
                genes[L.kernel_genes] = choice // len(s.expand_ratios)
                genes[L.expand_genes] = choice % len(s.expand_ratios)
                genes[L.depth_genes] = depth_choice
                genes[L.resolution_gene] = ri
                best_total, best = total, genes
        return best.astype(np.int8)[None, :]

    def min_latency_ms(self, calibrated: bool = True) -> float:
        """The lowest latency any architecture of the space reaches (to report infeasible budgets)."""
        return float(self.predict_genes(self.fastest_genes(calibrated), calibrated)[0])

    # --------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        return {"format": TABLE_FORMAT, "version": TABLE_VERSION,
                "space": {"name": self.space.name, "fingerprint": self.space.fingerprint()},
                "resolutions": list(self.resolutions), **self.meta,
                "correction": self.correction.to_dict(), "calibration": self.calibration,
                "entries": self.entries}

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], space: SearchSpace | str, what: str = "latency table") -> "LatencyTable":
        space = get_space(space)
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise ConfigError(f"{what} is not an hwnas latency table; create one with 'hwnas profile'")
        if data.get("version") != TABLE_VERSION:
            raise ConfigError(f"{what} has format version {data.get('version')}, this hwnas reads "
                              f"{TABLE_VERSION}; re-run 'hwnas profile'")
        space.check_fingerprint(str(data.get("space", {}).get("fingerprint")), what)
        meta = {k: v for k, v in data.items() if k not in
                ("format", "version", "space", "resolutions", "correction", "calibration", "entries")}
        return cls(space, data["entries"], meta, LatencyCorrection.from_dict(data["correction"]),
                   data.get("calibration"), data.get("resolutions"))

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | str) -> "LatencyTable":
        """Load a table; refuses one built for another (or a changed) search space."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"latency table {path} not found; create it with "
                              f"'hwnas profile --device <device> --space {get_space(space).name}'")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read latency table {path} ({exc}); re-run 'hwnas profile'") from None
        return cls.from_dict(data, space, what=f"latency table {path}")


class ResNetLatencyTable(LatencyTable):
    """A ``resnet``-family table: entries keyed by the layer shapes a part runs (see the module doc).

    Dense form: ``stem_ms[r, w0, w1, stem depth]``, ``block_ms[block, w_in, w_out, expand, r]`` and
    ``head_ms[w_last, r]`` (NaN at resolutions not profiled), summed by
    :meth:`~hwnas.resnet_encoding.ResNetGeneLayout.additive_sum`; the correction folds into them as it
    folds into an mbconv table (no ``first`` block here: that feature is 0).
    """

    layout: ResNetGeneLayout

    def _build_dense(self) -> None:
        s, L = self.space, self.layout
        self.profiled = np.array([r in self.resolutions for r in s.resolutions], dtype=bool)
        stem_keys, block_keys, head_keys = L.part_tables(
            lambda mid, out, skip, r: resnet_stem_key(s, mid, out, skip, r), bottleneck_key,
            lambda features, size: resnet_head_key(features, size))
        self.stem_ms = self._lookup(stem_keys, 0)
        self.block_ms = self._lookup(block_keys, 4)
        self.head_ms = self._lookup(head_keys, 1)
        self.overhead_ms = entry_ms(self.entries[OVERHEAD_KEY]) if OVERHEAD_KEY in self.entries else 0.0
        self._raw = (self.stem_ms, self.block_ms, self.head_ms)
        self._calibrated = self._fold(self.correction)

    def _fold(self, corr: LatencyCorrection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A linear correction of the net features folded into (stem, blocks, head) tables."""
        s, ov = self.space, self.overhead_ms
        block_w = np.zeros(self.layout.num_blocks)
        stem_head = 0.0
        per_res = np.full(len(s.resolutions), corr.intercept)
        for name, c in zip(corr.features, corr.coef):
            if name in ("total", "blocks"):
                block_w += c
            if name in ("total", "stem_head"):
                stem_head += c
            if name.startswith("stage"):
                block_w[self.layout.block_stage == int(name[5:])] += c
            if name.startswith("res"):
                per_res[s.resolutions.index(int(name[3:]))] += c
        stem = stem_head * (self.stem_ms - ov) + per_res[:, None, None, None]
        return stem, block_w[:, None, None, None, None] * (self.block_ms - ov), stem_head * self.head_ms

    def predict_genes(self, genes: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Latency (ms per batch) of every row of a gene matrix: stem + active blocks + head entries."""
        genes = self.layout.check(genes)
        self._check_profiled(genes[:, self.layout.resolution_gene])
        return self.layout.additive_sum(genes, *(self._calibrated if calibrated else self._raw))

    def features(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        """As :meth:`LatencyTable.features` (``first`` is 0: a ResNet has no fixed first block)."""
        genes = self.layout.check(genes)
        self._check_profiled(genes[:, self.layout.resolution_gene])
        i = self.layout.part_indices(genes)
        r, ov = i["resolution"], self.overhead_ms
        block = self.block_ms[np.arange(self.layout.num_blocks)[None, :], i["block_in"], i["block_out"],
                              i["expand"], r[:, None]]
        net = (block - ov) * i["active"]
        stem_head = self.stem_ms[r, i["w0"], i["w1"], i["stem_depth"]] + self.head_ms[i["last_width"], r]
        out = {"first": np.zeros(len(genes)), "stem_head": stem_head - ov}
        for stage in range(self.space.num_stages):
            out[f"stage{stage}"] = net[:, self.layout.block_stage == stage].sum(axis=1)
        out["blocks"] = net.sum(axis=1)
        out["total"] = out["blocks"] + out["stem_head"]
        out["plain"] = (block * i["active"]).sum(axis=1) + stem_head
        for ri, res in enumerate(self.space.resolutions):
            if self.profiled[ri]:
                out[f"res{res}"] = (r == ri).astype(np.float64)
        return out

    def fastest_genes(self, calibrated: bool = True) -> np.ndarray:
        """Genes of the fastest architecture, exactly: every width and stem-depth choice at every
        profiled resolution, with each block's best expand ratio and each stage's best depth."""
        s, L = self.space, self.layout
        stem, blocks, head = self._calibrated if calibrated else self._raw
        widths = np.array(list(itertools.product(range(len(s.width_mults)), repeat=L.num_widths)), dtype=np.int64)
        extra = np.asarray(s.depths)
        best_total, best = np.inf, None
        for ri in np.flatnonzero(self.profiled):
            stem_c = stem[ri][widths[:, 0], widths[:, 1]]                                     # (C, stem depths)
            per_block = blocks[np.arange(L.num_blocks)[None, :], widths[:, L.block_in_width],
                               widths[:, L.block_out_width], :, ri]                          # (C, B, E)
            expand, cost = per_block.argmin(axis=2), per_block.min(axis=2)
            total = stem_c.min(axis=1) + head[widths[:, -1], ri]
            depth = np.zeros((len(widths), s.num_stages), dtype=np.int64)
            for stage, base in enumerate(s.base_depths):
                cum = np.cumsum(cost[:, L.block_stage == stage], axis=1)                     # (C, blocks of stage)
                by_depth = cum[:, base + extra - 1]                                           # (C, depth choices)
                depth[:, stage] = by_depth.argmin(axis=1)
                total += by_depth.min(axis=1)
            c = int(np.argmin(total))
            if total[c] < best_total:
                genes = np.zeros(L.num_genes, dtype=np.int64)
                genes[0] = stem_c[c].argmin()
                genes[1:1 + s.num_stages] = depth[c]
                genes[L.expand_genes] = expand[c]
                genes[L.width_genes] = widths[c]
                genes[L.resolution_gene] = ri
                best_total, best = float(total[c]), genes
        return L.canonicalize(best.astype(np.int8)[None, :])


class PlainLatencyTable(LatencyTable):
    """A ``plain``-family table: entries keyed by the conv layer and head shapes (see the module doc).

    Dense form: ``layer_ms[layer, w_in, w_out, kernel, r]`` and ``head_ms[w_last, r]`` (NaN at resolutions
    not profiled, 0 where no subnet goes), summed by :meth:`~hwnas.plain_encoding.PlainGeneLayout.additive_sum`.
    There is no stem: the head is the part every subnet runs once, so it carries the ``stem_head``
    feature and the per-resolution constants of the correction (no ``first`` block: that feature is 0).
    """

    layout: PlainGeneLayout

    def _build_dense(self) -> None:
        L = self.layout
        self.profiled = np.array([r in self.resolutions for r in self.space.resolutions], dtype=bool)
        layer_keys, head_keys = L.part_tables(plain_conv_key, plain_head_key)
        self.layer_ms = self._lookup(layer_keys, 4)
        self.head_ms = self._lookup(head_keys, 1)
        self.overhead_ms = entry_ms(self.entries[OVERHEAD_KEY]) if OVERHEAD_KEY in self.entries else 0.0
        self._raw = (self.layer_ms, self.head_ms)
        self._calibrated = self._fold(self.correction)

    def _fold(self, corr: LatencyCorrection) -> tuple[np.ndarray, np.ndarray]:
        """A linear correction of the net features folded into (layers, head) tables: per-layer
        weights into the layer table, the ``stem_head`` weight and per-resolution offsets into the head."""
        s, ov = self.space, self.overhead_ms
        layer_w = np.zeros(self.layout.num_layers)
        head_w = 0.0
        per_res = np.full(len(s.resolutions), corr.intercept)
        for name, c in zip(corr.features, corr.coef):
            if name in ("total", "blocks"):
                layer_w += c
            if name in ("total", "stem_head"):
                head_w += c
            if name.startswith("stage"):
                layer_w[self.layout.layer_stage == int(name[5:])] += c
            if name.startswith("res"):
                per_res[s.resolutions.index(int(name[3:]))] += c
        return layer_w[:, None, None, None, None] * (self.layer_ms - ov), head_w * self.head_ms + per_res[None, :]

    def predict_genes(self, genes: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Latency (ms per batch) of every row of a gene matrix: active conv layers + head entries."""
        genes = self.layout.check(genes)
        self._check_profiled(genes[:, self.layout.resolution_gene])
        return self.layout.additive_sum(genes, *(self._calibrated if calibrated else self._raw))

    def features(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        """As :meth:`LatencyTable.features`. ``stem_head`` is the head entry in full: net of the
        overhead, plus the one overhead the whole network's single call pays."""
        genes = self.layout.check(genes)
        self._check_profiled(genes[:, self.layout.resolution_gene])
        i = self.layout.part_indices(genes)
        r, ov = i["resolution"], self.overhead_ms
        layer = self.layer_ms[np.arange(self.layout.num_layers)[None, :], i["layer_in"], i["layer_out"],
                              i["kernel"], r[:, None]]
        net = (layer - ov) * i["active"]
        head = self.head_ms[i["last_width"], r]
        out = {"first": np.zeros(len(genes)), "stem_head": head}
        for stage in range(self.space.num_stages):
            out[f"stage{stage}"] = net[:, self.layout.layer_stage == stage].sum(axis=1)
        out["blocks"] = net.sum(axis=1)
        out["total"] = out["blocks"] + out["stem_head"]
        out["plain"] = (layer * i["active"]).sum(axis=1) + head
        for ri, res in enumerate(self.space.resolutions):
            if self.profiled[ri]:
                out[f"res{res}"] = (r == ri).astype(np.float64)
        return out

    def fastest_genes(self, calibrated: bool = True) -> np.ndarray:
        """Genes of the fastest architecture, exactly: every combination of stage widths at every
        profiled resolution, with each layer's best kernel and each stage's best depth."""
        s, L = self.space, self.layout
        layers, head = self._calibrated if calibrated else self._raw
        widths = np.array(list(itertools.product(range(len(s.width_mults)), repeat=s.num_stages)), dtype=np.int64)
        w_in = np.where(L.layer_in_fixed[None, :], 0, widths[:, L.layer_in_width])           # (C, layers)
        best_total, best = np.inf, None
        for ri in np.flatnonzero(self.profiled):
            per_layer = layers[np.arange(L.num_layers)[None, :], w_in, widths[:, L.layer_out_width], :, ri]  # (C, L, K)
            kernel, cost = per_layer.argmin(axis=2), per_layer.min(axis=2)
            total = head[widths[:, -1], ri].copy()
            depth = np.zeros((len(widths), s.num_stages), dtype=np.int64)
            for stage in range(s.num_stages):
                cum = np.cumsum(cost[:, L.layer_stage == stage], axis=1)                        # (C, layers of stage)
                by_depth = cum[:, L.depth_table[stage] - 1]                                    # (C, depth choices)
                depth[:, stage] = by_depth.argmin(axis=1)
                total += by_depth.min(axis=1)
            c = int(np.argmin(total))
            if total[c] < best_total:
                genes = np.zeros(L.num_genes, dtype=np.int64)
                genes[L.depth_genes] = depth[c]
                genes[L.kernel_genes] = kernel[c]
                genes[L.width_genes] = widths[c]
                genes[L.resolution_gene] = ri
                best_total, best = float(total[c]), genes
        return L.canonicalize(best.astype(np.int8)[None, :])


TABLE_CLASSES: dict[str, type[LatencyTable]] = {"mbconv": LatencyTable, "resnet": ResNetLatencyTable,
                                                "plain": PlainLatencyTable}


# ------------------------------------------------------------------------------------- precisions

def entry_type(entry: TableEntry) -> str:
    """What kind of computation an entry is, ignoring its size: the unit the INT8/FP32 ratio is reported per."""
    b = entry.block
    if b is None:
        return entry.kind
    if isinstance(b, ConvLayerSpec):
        return f"conv k{b.kernel}{' pool' if b.pool else ''}{' skip' if b.residual else ''}"
    if isinstance(b, BottleneckSpec):
        return f"bottleneck e{b.mid_channels / b.out_channels:.2g}{' downsample' if b.downsample else ''}"
    if not b.expand_conv:
        return f"first block k{b.kernel} {b.act}"
    return f"mbconv k{b.kernel} e{b.mid_channels / b.in_channels:g} {b.act}{' se' if b.se_channels else ''}"


def precision_speed_ratios(int8: LatencyTable, fp32: LatencyTable) -> list[dict[str, Any]]:
    """FP32/INT8 latency per entry type, over the entries both tables measured (> 1: INT8 is faster).

    Quantisation does not speed every block alike (depthwise convs, SE and hard-swish gain less, Q/DQ
    pairs cost the same everywhere), which is why the INT8 table is measured rather than scaled.
    """
    groups: dict[str, list[float]] = {}
    for entry in enumerate_entries(int8.space, int8.resolutions):
        if entry.key in int8.entries and entry.key in fp32.entries:
            ratio = entry_ms(fp32.entries[entry.key]) / max(entry_ms(int8.entries[entry.key]), 1e-12)
            groups.setdefault(entry_type(entry), []).append(ratio)
    return [{"type": name, "n": len(r), "median": float(np.median(r)), "min": float(np.min(r)),
             "max": float(np.max(r))} for name, r in sorted(groups.items())]


def table_path(out_dir: str | Path, device_slug: str, space: SearchSpace | str, precision: str = "fp32") -> Path:
    """Where ``hwnas profile`` writes a table: ``<out>/<device-slug>/<space>[.int8].json`` (:mod:`hwnas.paths`)."""
    from hwnas import paths

    return paths.table_path(out_dir, device_slug, get_space(space).name, precision)
