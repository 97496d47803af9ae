"""Features of subnets for accuracy predictors, computed from gene matrices in a few array ops.

Why these features. A tree ensemble splits on one column at a time, so what it can learn cheaply
depends on the columns it is given:

* ``genes``  - the raw choice indices. Inactive slots (beyond a stage's depth) keep random values,
  so two copies of the same network look different; the trees must learn the depth masking.
* ``masked`` - per active slot the kernel size and expand ratio, **0 for inactive slots** (the
  network is the same whatever those slots hold), plus per-stage depth and the resolution.
* ``stage``  - ``masked`` plus per-stage sums over active blocks: ``sum(expand * kernel^2)`` (the
  depthwise compute) and ``sum(expand)`` (the pointwise compute). Capacity of a stage is what
  drives accuracy, and a sum is many splits for a tree but one column here.
* ``full``   - ``stage`` plus the subnet's exact MACs and parameter count, derived analytically from
  the genes (:class:`ComplexityTables`; checked against :func:`count_macs_params` in the tests).
  Accuracy is close to monotone in MACs, which trees otherwise approximate with many splits.
* ``rich``   - ``full`` plus each stage's exact MACs and parameters and the resolution times each
  stage's depth (issue 15's candidates: where the compute sits, and how resolution and depth
  interact). Kept as an option, not the default, unless the benchmark's ``encodings`` table
  shows it pays.

``masked`` is the predictors' default (:data:`DEFAULT_ENCODING`). The evidence is the
``encodings`` table that experiments/predictor_benchmark.py writes to
experiments/results/predictor_benchmark.json (XGBoost, tuned, same held-out split, several seeds).
On the old supernet's labels the five scored within about 0.01 of one another and ``full`` was a
judgement; on the shipped supernet's 3,000 labels ``masked`` leads and the MACs columns of ``full``
and ``rich`` cost about 0.02 of Kendall tau.

The MLP and ridge baselines use :func:`one_hot_features` instead (once-for-all's encoding: one-hot
kernel and expand per slot, all-zero for inactive slots, one-hot depth and resolution).

A ``resnet``-family space gets the same encodings from :class:`ResNetFeatureEncoder` (what
``FeatureEncoder(space, ...)`` builds for it): per block the expand ratio (0 when the block does not
run), the stem's and each stage's depth, each width gene's multiplier, the resolution; ``stage`` adds
per-stage sums of the active expand ratios, ``full`` exact MACs, params and log(MACs)
(:class:`~hwnas.resnet_complexity.ResNetComplexityCounter`), ``rich`` per-stage MACs and params and
resolution x stage depth.

A ``plain``-family space gets them from :class:`PlainFeatureEncoder`: per conv layer the kernel size
(0 when the layer does not run), each stage's depth and width multiplier, the resolution; ``stage``
adds per-stage sums of the active layers' kernel^2 (a stage's conv compute per channel pair),
``full`` and ``rich`` as for resnet (:class:`~hwnas.plain_complexity.PlainComplexityCounter`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numba
import numpy as np

from hwnas.additive import slot_sum
from hwnas.complexity import fixed_cost
from hwnas.encoding import GeneLayout
from hwnas.errors import ConfigError
from hwnas.plain_complexity import PlainComplexityCounter
from hwnas.plain_encoding import PlainGeneLayout
from hwnas.resnet_complexity import ResNetComplexityCounter
from hwnas.resnet_encoding import ResNetGeneLayout
from hwnas.space import AnySpace, SearchSpace, get_space

ENCODINGS = ("genes", "masked", "stage", "full", "rich")
#: The predictors' default encoding (fit-predictor, AccuracyPredictor). On the shipped supernet's
#: 3,000 training labels ``masked`` ranked held-out subnets best of the five (Kendall tau 0.807 vs
#: 0.785 for ``full``, seed spread 0.004: experiments/results/predictor_benchmark.json, encodings);
#: the exact MACs columns cost tau there rather than adding it.
DEFAULT_ENCODING = "masked"
#: Version of the feature definitions; stored with every predictor so a changed encoding is caught.
FEATURE_VERSION = 1


# --------------------------------------------------------------------------------- counting

def count_macs_params(module: Any, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """MACs of every Conv2d/Linear and total parameter count of ``module`` for one input shape.

    Counted by running a zero tensor through the module with forward hooks, so it sees exactly the
    layers that run: conv MACs = out_h * out_w * out_c * (in_c / groups) * k_h * k_w, linear MACs =
    in_features * out_features (per sample; the batch dimension of ``input_shape`` multiplies them).
    Parameters are ``sum(p.numel())`` (BN running statistics are buffers, not counted).
    """
    import torch
    from torch import nn

    macs = 0

    def conv_hook(layer: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = layer.kernel_size
        macs += output.numel() * (layer.in_channels // layer.groups) * kh * kw

    def linear_hook(layer: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.numel() * layer.in_features

    handles = []
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            handles.append(layer.register_forward_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(linear_hook))
    was_training = module.training
    try:
        module.eval()
        first = next(module.parameters(), None)
        device = first.device if first is not None else "cpu"
        with torch.no_grad():
            module(torch.zeros(input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    params = sum(p.numel() for p in module.parameters())
    return int(macs), int(params)


# --------------------------------------------------------------------------------- analytic complexity

def _conv_out(size: np.ndarray | int, stride: int) -> np.ndarray | int:
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class ComplexityTables:
    """Lookup tables giving every block slot's MACs and parameters for each (choice, resolution).

    Mirrors :mod:`hwnas.plan` and the static subnet modules: expand 1x1 conv + BN, depthwise conv
    + BN, optional SE (two 1x1 convs with bias on the pooled map), project 1x1 conv + BN.
    """

    layout: GeneLayout
    in_size: np.ndarray      # (R, S) spatial size entering each slot
    out_size: np.ndarray     # (R, S)
    in_ch: np.ndarray        # (S,)
    out_ch: np.ndarray       # (S,)
    mid: np.ndarray          # (S, E) hidden channels per expand choice
    se: np.ndarray           # (S, E) SE channels (0 = no SE)
    fixed_macs: np.ndarray   # (R,) stem + first block + head
    fixed_params: int

    @classmethod
    def build(cls, space: SearchSpace | str) -> "ComplexityTables":
        space = get_space(space)
        layout = GeneLayout(space)
        R = len(space.resolutions)
        stage = layout.slot_stage
        pos = layout.slot_position
        stem = np.array([_conv_out(r, space.stem_stride) for r in space.resolutions])
        stage_in = np.empty((R, space.num_stages), dtype=np.int64)
        size = stem.copy()
        for s, st in enumerate(space.stages):
            stage_in[:, s] = size
            size = _conv_out(size, st.stride)
        stride = np.array([space.stages[s].stride if p == 0 else 1 for s, p in zip(stage, pos)])
        in_size = np.where(pos[None, :] == 0, stage_in[:, stage],
                           _conv_out(stage_in[:, stage], np.array([space.stages[s].stride for s in stage])))
        out_size = _conv_out(in_size, stride)
        in_ch = np.array([space.stage_in_width(s) if p == 0 else space.stages[s].width
                          for s, p in zip(stage, pos)])
        out_ch = np.array([space.stages[s].width for s in stage])
        mid = np.array([[space.mid_channels(int(c), e) for e in space.expand_ratios] for c in in_ch])
        se = np.array([[space.se_channels(int(m)) if space.stages[s].se else 0 for m in row]
                       for s, row in zip(stage, mid)])
        fixed = [fixed_cost(space, r) for r in space.resolutions]  # stem, first block, head
        fixed_macs = np.array([m for m, _ in fixed], dtype=np.int64)
        return cls(layout, in_size, out_size, in_ch, out_ch, mid, se, fixed_macs, int(fixed[0][1]))

    @cached_property
    def _slot_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """MACs ``(R, S, K, E)`` and params ``(S, K, E)`` of each slot for each choice and resolution."""
        k2 = (self.layout.kernel_values ** 2)[None, :, None]             # (1, K, 1)
        mid, se = self.mid[:, None, :], self.se[:, None, :]               # (S, 1, E)
        in_ch, out_ch = self.in_ch[:, None, None], self.out_ch[:, None, None]
        h_in, h_out = self.in_size[:, :, None, None], self.out_size[:, :, None, None]
        macs = h_in ** 2 * in_ch * mid + h_out ** 2 * mid * (k2 + out_ch) + 2 * mid * se
        params = (in_ch * mid + 4 * mid + mid * k2 + np.where(se > 0, 2 * mid * se + se + mid, 0)
                  + mid * out_ch + 2 * out_ch)
        return macs.astype(np.int64), params.astype(np.int64)

    @cached_property
    def _additive(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """MACs and params as :func:`hwnas.additive.slot_sum` tables ``(S, K, E, R)`` plus their
        per-resolution constants (params do not depend on the resolution: repeated along R)."""
        macs_t, params_t = self._slot_tables
        R = len(self.fixed_macs)
        params_by_res = np.repeat(params_t[..., None], R, axis=3)
        return (np.ascontiguousarray(macs_t.transpose(1, 2, 3, 0)), self.fixed_macs,
                params_by_res, np.full(R, self.fixed_params, dtype=np.int64))

    def stage_macs_params(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MACs and parameters of each stage's active blocks, ``(n, stages)`` each (fixed layers excluded)."""
        genes = self.layout.check(genes)
        lay = self.layout
        macs_t, params_t = self._slot_tables
        slots = np.arange(lay.num_slots)[None, :]
        k, e = genes[:, lay.kernel_genes], genes[:, lay.expand_genes]
        active = lay.active(genes)
        res = genes[:, lay.resolution_gene][:, None]
        macs = np.where(active, macs_t[res, slots, k, e], 0)
        params = np.where(active, params_t[slots, k, e], 0)
        shape = (len(genes), lay.num_stages, -1)  # slots are stage-major
        return macs.reshape(shape).sum(axis=2), params.reshape(shape).sum(axis=2)

    def macs_params(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact MACs and parameter counts ``(n,)`` of the subnets encoded by ``genes``."""
        genes = self.layout.check(genes)
        macs_t, macs_fixed, params_t, params_fixed = self._additive
        return (slot_sum(self.layout, genes, macs_t, macs_fixed),
                slot_sum(self.layout, genes, params_t, params_fixed))


# --------------------------------------------------------------------------------- encoders

class FeatureEncoder:
    """Gene matrix ``(n, num_genes)`` -> float32 feature matrix for tree models (see module doc).

    ``FeatureEncoder(space, ...)`` gives the encoder of ``space``'s family (:data:`ENCODERS`).
    """

    def __new__(cls, space: AnySpace | str, *args: Any, **kwargs: Any) -> "FeatureEncoder":
        if cls is FeatureEncoder:
            cls = ENCODERS[get_space(space).family]
        return super().__new__(cls)

    def __init__(self, space: AnySpace | str, encoding: str = "full") -> None:
        if encoding not in ENCODINGS:
            raise ConfigError(f"unknown feature encoding {encoding!r}; choose one of {ENCODINGS}")
        self.space = get_space(space)
        self.encoding = encoding
        self._build()
        self.feature_names = self._names()

    def _build(self) -> None:
        """The family's gene layout and the lookup tables :meth:`transform` reads."""
        self.layout = GeneLayout(self.space)
        self.tables = ComplexityTables.build(self.space) if self.encoding in ("full", "rich") else None
        self._kernel_f32 = self.layout.kernel_values.astype(np.float32)
        self._expand_f32 = self.layout.expand_values.astype(np.float32)

    def _names(self) -> list[str]:
        lay = self.layout
        slots = [f"s{s}b{p}" for s, p in zip(lay.slot_stage, lay.slot_position)]
        if self.encoding == "genes":
            return ([f"{s}_kernel_idx" for s in slots] + [f"{s}_expand_idx" for s in slots]
                    + [f"s{s}_depth_idx" for s in range(lay.num_stages)] + ["resolution_idx"])
        names = ([f"{s}_kernel" for s in slots] + [f"{s}_expand" for s in slots]
                 + [f"s{s}_depth" for s in range(lay.num_stages)] + ["resolution"])
        if self.encoding in ("stage", "full", "rich"):
            names += [f"s{s}_sum_expand_k2" for s in range(lay.num_stages)]
            names += [f"s{s}_sum_expand" for s in range(lay.num_stages)]
        if self.encoding in ("full", "rich"):
            names += ["macs", "params", "log_macs"]
        if self.encoding == "rich":
            names += [f"s{s}_{what}" for what in ("macs", "params", "res_x_depth") for s in range(lay.num_stages)]
        return names

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    def transform(self, genes: np.ndarray) -> np.ndarray:
        """Features ``(n, num_features)`` float32; inactive slots' kernel and expand are 0.

        Compiled passes over the genes (:func:`_encode_rows`, and :func:`hwnas.additive.slot_sum`
        for MACs and params): a search calls this once per generation on ~64 rows, where two dozen
        numpy calls would cost more than the predictor.
        """
        genes = self.layout.check(genes)
        if self.encoding == "genes":
            return genes.astype(np.float32)
        lay, n = self.layout, len(genes)
        out = np.empty((n, self.num_features), dtype=np.float32)
        _encode_rows(genes, lay.num_slots, lay.num_stages, lay.active_by_depth.shape[2], self._kernel_f32,
                     self._expand_f32, lay.stage_depth_values, lay.resolution_values, lay.active_by_depth,
                     self.encoding != "masked", out)
        if self.tables is not None:
            base = 2 * lay.num_slots + 3 * lay.num_stages + 1  # after the stage sums
            macs, params = self.tables.macs_params(genes)
            out[:, base] = macs
            out[:, base + 1] = params
            out[:, base + 2] = np.log(macs)  # float64 log, as the model was trained on
        if self.encoding == "rich":
            self._rich_columns(genes, out[:, base + 3:])
        return out

    def _rich_columns(self, genes: np.ndarray, out: np.ndarray) -> None:
        """Per-stage MACs, per-stage params, resolution x per-stage depth (see the module doc)."""
        K, lay = self.layout.num_stages, self.layout
        stage_macs, stage_params = self.tables.stage_macs_params(genes)
        depth = lay.depths(genes)
        out[:, :K] = stage_macs
        out[:, K:2 * K] = stage_params
        out[:, 2 * K:] = lay.resolution_values[genes[:, lay.resolution_gene]][:, None] * depth

    def describe(self) -> dict[str, Any]:
        """What a saved predictor records about its inputs."""
        return {"encoding": self.encoding, "version": FEATURE_VERSION, "feature_names": self.feature_names}


class ResNetFeatureEncoder(FeatureEncoder):
    """:class:`FeatureEncoder` for ``resnet``-family genes (see the module doc); numpy, no compiled pass."""

    layout: ResNetGeneLayout

    def _build(self) -> None:
        self.layout = ResNetGeneLayout(self.space)
        self.counter = ResNetComplexityCounter(self.space) if self.encoding in ("full", "rich") else None
        self._width_mults = np.asarray(self.space.width_mults, dtype=np.float32)

    def _names(self) -> list[str]:
        lay, k = self.layout, self.layout.num_stages
        blocks = [f"s{p.stage}b{p.position}" for p in lay.positions]
        depths = ["stem_depth"] + [f"s{s}_depth" for s in range(k)]
        widths = ["stem_width_mult", "stem_out_width_mult"] + [f"s{s}_width_mult" for s in range(k)]
        if self.encoding == "genes":
            return ([f"{d}_idx" for d in depths] + [f"{b}_expand_idx" for b in blocks] + [f"{w}_idx" for w in widths]
                    + ["resolution_idx"])
        names = [f"{b}_expand" for b in blocks] + depths + widths + ["resolution"]
        if self.encoding in ("stage", "full", "rich"):
            names += [f"s{s}_sum_expand" for s in range(k)]
        if self.encoding in ("full", "rich"):
            names += ["macs", "params", "log_macs"]
        if self.encoding == "rich":
            names += [f"s{s}_{what}" for what in ("macs", "params", "res_x_depth") for s in range(k)]
        return names

    def transform(self, genes: np.ndarray) -> np.ndarray:
        """Features ``(n, num_features)`` float32; blocks that do not run have expand 0."""
        genes = self.layout.check(genes)
        if self.encoding == "genes":
            return genes.astype(np.float32)
        lay = self.layout
        v = lay.values(genes, validate=False)
        expand = np.where(v.active, v.expand, 0.0)
        cols = [expand, v.depth, self._width_mults[v.width], v.resolution[:, None]]
        if self.encoding != "masked":
            cols.append(np.stack([expand[:, lay.block_stage == s].sum(axis=1) for s in range(lay.num_stages)], axis=1))
        return _with_cost_columns(self, genes, cols, v.resolution, v.depth[:, 1:])


class PlainFeatureEncoder(FeatureEncoder):
    """:class:`FeatureEncoder` for ``plain``-family genes (see the module doc); numpy, no compiled pass."""

    layout: PlainGeneLayout

    def _build(self) -> None:
        self.layout = PlainGeneLayout(self.space)
        self.counter = PlainComplexityCounter(self.space) if self.encoding in ("full", "rich") else None
        self._width_mults = np.asarray(self.space.width_mults, dtype=np.float32)

    def _names(self) -> list[str]:
        lay, k = self.layout, self.layout.num_stages
        layers = [f"s{p.stage}l{p.position}" for p in lay.positions]
        depths, widths = [f"s{s}_depth" for s in range(k)], [f"s{s}_width_mult" for s in range(k)]
        if self.encoding == "genes":
            return ([f"{d}_idx" for d in depths] + [f"{x}_kernel_idx" for x in layers] + [f"{w}_idx" for w in widths]
                    + ["resolution_idx"])
        names = [f"{x}_kernel" for x in layers] + depths + widths + ["resolution"]
        if self.encoding in ("stage", "full", "rich"):
            names += [f"s{s}_sum_k2" for s in range(k)]
        if self.encoding in ("full", "rich"):
            names += ["macs", "params", "log_macs"]
        if self.encoding == "rich":
            names += [f"s{s}_{what}" for what in ("macs", "params", "res_x_depth") for s in range(k)]
        return names

    def transform(self, genes: np.ndarray) -> np.ndarray:
        """Features ``(n, num_features)`` float32; layers that do not run have kernel 0."""
        genes = self.layout.check(genes)
        if self.encoding == "genes":
            return genes.astype(np.float32)
        lay = self.layout
        v = lay.values(genes, validate=False)
        kernel = np.where(v.active, v.kernel, 0)
        cols = [kernel, v.depth, self._width_mults[v.width], v.resolution[:, None]]
        if self.encoding != "masked":
            k2 = kernel ** 2
            cols.append(np.stack([k2[:, lay.layer_stage == s].sum(axis=1) for s in range(lay.num_stages)], axis=1))
        return _with_cost_columns(self, genes, cols, v.resolution, v.depth)


ENCODERS: dict[str, type[FeatureEncoder]] = {"mbconv": FeatureEncoder, "resnet": ResNetFeatureEncoder,
                                             "plain": PlainFeatureEncoder}


def _with_cost_columns(enc: "ResNetFeatureEncoder | PlainFeatureEncoder", genes: np.ndarray, cols: list[Any],
                       resolution: np.ndarray, stage_depth: np.ndarray) -> np.ndarray:
    """``cols`` plus the ``full`` / ``rich`` columns from ``enc.counter``, as one float32 matrix (the
    numpy encoders share this so their MACs columns mean the same in every family)."""
    if enc.counter is not None:
        macs, params = enc.counter.macs(genes), enc.counter.params(genes)
        cols = cols + [np.stack([macs, params, np.log(macs)], axis=1)]
    if enc.encoding == "rich":
        stage_macs, stage_params = enc.counter.stage_macs_params(genes)
        cols = cols + [stage_macs, stage_params, resolution[:, None] * stage_depth]
    return np.concatenate([np.asarray(c, dtype=np.float64).reshape(len(genes), -1) for c in cols],
                          axis=1).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _encode_rows(genes, S, K, max_depth, kernel_values, expand_values, depth_values, resolution_values,
                 active_by_depth, stage_sums, out):  # pragma: no cover - compiled
    """The ``masked`` / ``stage`` columns of :meth:`FeatureEncoder.transform`, row by row.

    Column order: kernel per slot, expand per slot, depth per stage, resolution, then (stage
    sums) sum(expand * kernel^2) and sum(expand) per stage. Sums of small integers are exact in
    float32, so this equals the array form. ``full`` appends MACs, params and log(MACs) after.
    """
    for row in range(genes.shape[0]):
        g = genes[row]
        for stage in range(K):
            d = g[2 * S + stage]
            sum_ek2, sum_e = np.float32(0), np.float32(0)
            for pos in range(max_depth):
                slot = stage * max_depth + pos
                if active_by_depth[stage, d, pos]:
                    kv, ev = kernel_values[g[slot]], expand_values[g[S + slot]]
                    sum_ek2 += ev * kv * kv
                    sum_e += ev
                else:
                    kv, ev = np.float32(0), np.float32(0)
                out[row, slot] = kv
                out[row, S + slot] = ev
            out[row, 2 * S + stage] = depth_values[stage, d]
            if stage_sums:
                out[row, 2 * S + K + 1 + stage] = sum_ek2
                out[row, 2 * S + 2 * K + 1 + stage] = sum_e
        out[row, 2 * S + K] = resolution_values[g[2 * S + K]]


def one_hot_features(layout: GeneLayout, genes: np.ndarray) -> np.ndarray:
    """Once-for-all's MLP encoding: one-hot kernel and expand per slot (all zeros when the slot is
    inactive), one-hot depth per stage, one-hot resolution. float32 ``(n, sum of cardinalities)``."""
    genes = layout.check(genes).astype(np.int64, copy=False)
    active = layout.values(genes).active
    offsets = np.concatenate([[0], np.cumsum(layout.cardinalities)[:-1]])
    n = len(genes)
    out = np.zeros((n, int(layout.cardinalities.sum())), dtype=np.float32)
    rows = np.repeat(np.arange(n), layout.num_genes)
    cols = (genes + offsets).reshape(-1)
    keep = np.concatenate([active, active, np.ones((n, layout.num_stages + 1), dtype=bool)], axis=1).reshape(-1)
    out[rows[keep], cols[keep]] = 1.0
    return out
