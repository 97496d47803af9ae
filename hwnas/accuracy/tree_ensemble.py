"""XGBoost tree ensembles scored by a compiled QuickScorer kernel, faster than XGBoost's own predictor.

Why. A search scores its population a generation at a time, 64 candidates per call by default.
For such batches XGBoost's predictor walks each tree node by node with data-dependent branches,
which made the accuracy predictor the largest single cost of a search.

How. QuickScorer (Lucchese et al., SIGIR 2015): number each tree's leaves left to right; every
internal node ``x[f] < t`` carries the bit mask of the leaves that survive when the test fails
(all but its left subtree). A row's exit leaf is the lowest set bit of the AND of the masks of its
failed tests, so a tree is a flat, branch-free loop over its nodes that the compiler vectorises
across rows. numba compiles it once per machine (``cache=True``; later processes load it from
numba's cache) - no C compiler or build step on the user's side.

Speed: ``predictor_speed`` in experiments/results/search_benchmark.json (written by
experiments/search_benchmark.py) gives rows/s per batch size beside XGBoost's ``inplace_predict``
on the same model.

Exactness. The split decisions are XGBoost's: features and thresholds are float32, as XGBoost
compares them, and a missing value (NaN) follows the node's default direction. Only the float32
summation order of leaf values differs; tests hold predictions within 2e-5 of ``inplace_predict``
(seen: < 2e-6). Models the kernel cannot score - categorical splits, more
than 64 leaves in a tree, several outputs, a non-identity link, other boosters - raise
:class:`UnsupportedModel`, and callers keep XGBoost's predictor for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from hwnas.errors import HwnasError

#: Objectives whose prediction is the raw sum of leaves plus the base score (identity link).
IDENTITY_OBJECTIVES = frozenset({"reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"})
MAX_LEAVES = 64
#: Batches of at least this many rows are split over threads; smaller ones run on the caller's
#: thread (waking a pool costs more than it saves on a 64-row generation).
PARALLEL_ROWS = 2048
# Multiplier of the de Bruijn sequence B(2, 6) and its table: index of the single set bit of x is
# TABLE[(x * DEBRUIJN) >> 58] (uint64 arithmetic wraps).
_DEBRUIJN = np.uint64(0x022FDD63CC95386D)
_DEBRUIJN_TABLE = np.zeros(64, dtype=np.int32)
for _bit in range(64):
    _DEBRUIJN_TABLE[((1 << _bit) * 0x022FDD63CC95386D % (1 << 64)) >> 58] = _bit
# lowest set bit of every byte (0 for 0, never looked up: a tree's rightmost leaf bit stays set)
_BYTE_LUT = np.array([(b & -b).bit_length() - 1 if b else 0 for b in range(256)], dtype=np.int32)


class UnsupportedModel(HwnasError):
    """The model is valid XGBoost but not one the compiled kernel scores exactly."""


@dataclass(frozen=True)
class TreeEnsemble:
    """A sum of binary regression trees in QuickScorer form.

    ``node_*`` arrays hold every internal node of every tree, tree ``t`` owning the slice
    ``tree_start[t]:tree_start[t + 1]``; ``leaf_values[t, i]`` is the value of tree ``t``'s ``i``-th
    leaf from the left (rows padded with zeros). ``node_mask`` has the smallest unsigned dtype that
    holds the widest tree's leaves.
    """

    node_feature: np.ndarray     # (N,) int32
    node_threshold: np.ndarray   # (N,) float32: go left iff x < threshold
    node_mask: np.ndarray        # (N,) uint8..uint64: leaves kept when the test fails
    node_missing_right: np.ndarray  # (N,) bool: NaN goes right
    tree_start: np.ndarray       # (T + 1,) int64
    leaf_values: np.ndarray      # (T, max_leaves) float32
    base_score: float
    num_features: int

    @property
    def num_trees(self) -> int:
        return len(self.tree_start) - 1

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_xgboost_json(cls, model: bytes | str | dict[str, Any]) -> "TreeEnsemble":
        """Parse XGBoost's JSON model (``Booster.save_raw("json")`` or a saved ``.json`` file)."""
        try:
            doc = json.loads(model) if isinstance(model, (bytes, bytearray, str)) else model
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise UnsupportedModel("not an XGBoost JSON model (binary UBJSON models are left to XGBoost)") from None
        try:
            learner = doc["learner"]
            booster = learner["gradient_booster"]
            params = learner["learner_model_param"]
            objective = learner["objective"]["name"]
        except (KeyError, TypeError) as exc:
            raise UnsupportedModel(f"not an XGBoost JSON model (missing {exc})") from None
        if booster.get("name") != "gbtree":
            raise UnsupportedModel(f"booster {booster.get('name')!r} (only gbtree is compiled)")
        if objective not in IDENTITY_OBJECTIVES:
            raise UnsupportedModel(f"objective {objective!r} has a non-identity link")
        if int(params.get("num_class", 0)) > 1 or int(params.get("num_target", 1)) != 1:
            raise UnsupportedModel("several outputs per row")
        trees = booster["model"]["trees"]
        if any(int(g) != 0 for g in booster["model"].get("tree_info", [])):
            raise UnsupportedModel("trees of several output groups")
        base = params["base_score"]
        base = float(json.loads(base)[0]) if str(base).startswith("[") else float(base)
        parts = [_tree_arrays(t, i) for i, t in enumerate(trees)]
        if not parts:
            raise UnsupportedModel("the model has no trees")
        width = max(len(p[4]) for p in parts)
        dtype = next(d for d in (np.uint8, np.uint16, np.uint32, np.uint64) if np.dtype(d).itemsize * 8 >= width)
        leaf_values = np.zeros((len(parts), width), dtype=np.float32)
        for t, p in enumerate(parts):
            leaf_values[t, :len(p[4])] = p[4]
        sizes = np.array([len(p[0]) for p in parts], dtype=np.int64)
        return cls(
            node_feature=np.concatenate([p[0] for p in parts]).astype(np.int32),
            node_threshold=np.concatenate([p[1] for p in parts]).astype(np.float32),
            # keep every leaf but the left subtree's; bits above a tree's leaves stay set, harmlessly:
            # its rightmost leaf is in no left subtree, so the lowest set bit is always a real leaf
            node_mask=(~np.concatenate([np.array(p[2], dtype=np.uint64) for p in parts])).astype(dtype),
            node_missing_right=np.concatenate([p[3] for p in parts]).astype(np.bool_),
            tree_start=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            leaf_values=leaf_values,
            base_score=base,
            num_features=int(params["num_feature"]),
        )

    # ----------------------------------------------------------------------------- scoring
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Sum of leaves plus base score per row of ``X`` ``(n, num_features)``; float32 ``(n,)``."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.num_features:
            raise HwnasError(f"feature matrix has shape {X.shape}; this model takes {self.num_features} columns")
        columns = np.ascontiguousarray(X.T, dtype=np.float32)  # rows contiguous per feature: SIMD loads
        kernel = _score_parallel if len(X) >= PARALLEL_ROWS else _score_serial
        full = self.node_mask.dtype.type(np.iinfo(self.node_mask.dtype).max)
        byte_lut = _BYTE_LUT if self.node_mask.dtype == np.uint8 else _BYTE_LUT[:0]
        has_nan = bool(np.isnan(columns).any())
        return kernel(columns, self.node_feature, self.node_threshold, self.node_mask, self.node_missing_right,
                      self.tree_start, self.leaf_values, np.float32(self.base_score), full, byte_lut, has_nan)


def _tree_arrays(tree: dict[str, Any], index: int) -> tuple[list, list, list, list, list]:
    """(features, thresholds, left-subtree leaf bits, missing-right flags, leaf values) of one tree."""
    left, right = tree["left_children"], tree["right_children"]
    if any(int(s) != 0 for s in tree.get("split_type", [])):
        raise UnsupportedModel(f"tree {index} has categorical splits")
    if int(tree.get("tree_param", {}).get("size_leaf_vector", 0)) > 1:
        raise UnsupportedModel(f"tree {index} has vector leaves")
    leaf_order: list[int] = []
    first_leaf: dict[int, int] = {}  # node -> index of the first leaf of its subtree
    last_leaf: dict[int, int] = {}
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:  # iterative post-order: leaves numbered left to right
        node, done = stack.pop()
        if left[node] < 0:
            first_leaf[node] = last_leaf[node] = len(leaf_order)
            leaf_order.append(node)
        elif done:
            first_leaf[node], last_leaf[node] = first_leaf[left[node]], last_leaf[right[node]]
        else:
            stack += [(node, True), (right[node], False), (left[node], False)]
    if len(leaf_order) > MAX_LEAVES:
        raise UnsupportedModel(f"tree {index} has {len(leaf_order)} leaves (at most {MAX_LEAVES} are compiled)")
    feats, thrs, masks, miss = [], [], [], []
    for node in first_leaf:
        if left[node] < 0:
            continue
        lo, hi = first_leaf[left[node]], last_leaf[left[node]]
        left_bits = ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)
        feats.append(int(tree["split_indices"][node]))
        thrs.append(float(tree["split_conditions"][node]))
        masks.append(left_bits)
        miss.append(not bool(tree["default_left"][node]))
    leaves = [float(tree["split_conditions"][node]) for node in leaf_order]
    return feats, thrs, masks, miss, leaves


# --------------------------------------------------------------------------------- kernels
@numba.njit(cache=True, nogil=True, boundscheck=False)
def _score_rows(columns, feature, threshold, mask, missing_right, tree_start, leaf_values, base, full,
                byte_lut, has_nan, lo, hi, out):  # pragma: no cover - compiled
    """Rows ``lo:hi``: for each tree AND the masks of failed tests, exit at the lowest set bit.

    ``byte_lut`` (256 entries, lowest set bit of a byte) serves uint8 masks; wider masks use the
    de Bruijn multiply. NaN handling runs only when the batch has a NaN, outside the SIMD loop.
    """
    n = hi - lo
    exits = np.empty(n, dtype=mask.dtype)
    acc = np.zeros(n, dtype=np.float32)
    small = byte_lut.shape[0] == 256
    for t in range(tree_start.shape[0] - 1):
        exits[:] = full
        for j in range(tree_start[t], tree_start[t + 1]):
            x = columns[feature[j], lo:hi]
            th, m = threshold[j], mask[j]
            if has_nan:
                mr = missing_right[j]
                for i in range(n):
                    v = x[i]
                    exits[i] &= m if (v >= th) | ((v != v) & mr) else full
            else:
                for i in range(n):
                    exits[i] &= m if x[i] >= th else full
        values = leaf_values[t]
        if small:
            for i in range(n):
                acc[i] += values[byte_lut[exits[i]]]
        else:
            for i in range(n):
                e = np.uint64(exits[i])
                lowest = e & (~e + np.uint64(1))
                acc[i] += values[_DEBRUIJN_TABLE[(lowest * _DEBRUIJN) >> np.uint64(58)]]
    for i in range(n):
        out[lo + i] = acc[i] + base


@numba.njit(cache=True, nogil=True)
def _score_serial(columns, feature, threshold, mask, missing_right, tree_start, leaf_values, base, full,
                  byte_lut, has_nan):  # pragma: no cover - compiled
    n = columns.shape[1]
    out = np.empty(n, dtype=np.float32)
    _score_rows(columns, feature, threshold, mask, missing_right, tree_start, leaf_values, base, full,
                byte_lut, has_nan, 0, n, out)
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _score_parallel(columns, feature, threshold, mask, missing_right, tree_start, leaf_values, base, full,
                    byte_lut, has_nan):  # pragma: no cover - compiled
    n = columns.shape[1]
    out = np.empty(n, dtype=np.float32)
    block = 512  # rows per task: a block's exit masks and sums stay in L1
    for b in numba.prange((n + block - 1) // block):
        lo = b * block
        _score_rows(columns, feature, threshold, mask, missing_right, tree_start, leaf_values, base, full,
                    byte_lut, has_nan, lo, min(n, lo + block), out)
    return out
