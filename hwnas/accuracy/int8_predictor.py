"""The INT8 accuracy predictor: three ways to predict a quantised subnet's accuracy, and the file it ships as.

An INT8 data set (``hwnas collect --precision int8``) labels each subnet twice: ``accuracy`` (FP32)
and ``accuracy_int8`` (the ONNX Runtime statically quantised model). Three predictors of the INT8
label are candidates (experiments/int8_predictor.py compares them on one held-out set):

- ``fp32``: the FP32 predictor alone (quantisation assumed to keep the ranking);
- ``fp32+drop``: the FP32 predictor minus a learned drop model (XGBoost on the same features,
  fitted to ``accuracy - accuracy_int8``), so cheap FP32 labels carry the ranking and the INT8
  labels only teach what quantisation costs;
- ``int8``: a predictor fitted on the INT8 labels directly.

Every candidate is one :class:`~hwnas.accuracy.predictor.AccuracyPredictor`: the drop model's trees
are appended to the FP32 model's with their leaves (and base score) negated, which is exactly
``fp32(x) - drop(x)`` in one XGBoost model. So the shipped INT8 predictor is the one predictor file
type (:mod:`hwnas.accuracy.model_file`, ``precision: int8`` in its sidecar) that search and the
compiled scorer read unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.accuracy.collect import INT8_FIELD, AccuracyData, arch_key
from hwnas.accuracy.predictor import AccuracyPredictor
from hwnas.arch import Architecture
from hwnas.errors import DataError

KINDS = ("fp32", "fp32+drop", "int8")
#: The drop model's label: what quantisation costs a subnet (may be negative).
DROP_TARGET = "accuracy - accuracy_int8"


@dataclass(frozen=True)
class TrainingRows:
    """What a candidate is fitted on: genes with both labels (the INT8 data set's training rows), and
    optionally more FP32-only rows (a larger FP32 data set of the same supernet) for the FP32 part."""

    genes: np.ndarray
    fp32: np.ndarray
    int8: np.ndarray
    extra_genes: np.ndarray | None = None
    extra_fp32: np.ndarray | None = None

    @property
    def fp32_genes(self) -> np.ndarray:
        return self.genes if self.extra_genes is None else np.concatenate([self.genes, self.extra_genes])

    @property
    def fp32_labels(self) -> np.ndarray:
        return self.fp32 if self.extra_fp32 is None else np.concatenate([self.fp32, self.extra_fp32])


def int8_rows(data: AccuracyData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(genes, fp32 labels, int8 labels)`` of an INT8 data set; refuses an FP32-only one."""
    if data.meta.get("precision") != "int8" or not all(INT8_FIELD in r for r in data.records):
        raise DataError("the data set holds no INT8 labels (accuracy_int8); collect one with "
                        "`hwnas collect --precision int8`")
    return data.genes, np.array([r["accuracy"] for r in data.records], dtype=np.float64), data.y


def extra_fp32_rows(int8_data: AccuracyData, fp32_data: AccuracyData,
                    exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of an FP32 data set usable beside an INT8 one: same supernet and validation protocol, and
    no subnet of the INT8 data set (its training rows are already in, its held-out rows must stay out).
    ``exclude`` is a boolean mask over ``fp32_data``'s rows, computed by :func:`overlap`."""
    same = ("supernet_sha256", "val_images", "calib_images", "calib_seed", "dataset", "val_size", "data_seed")
    differs = [k for k in same if int8_data.meta.get(k) != fp32_data.meta.get(k)]
    if differs or int8_data.space.name != fp32_data.space.name:
        raise DataError(f"the FP32 data set was measured differently from the INT8 one ({', '.join(differs) or 'space'}); "
                        "its labels are not comparable: drop --fp32-data or recollect on the same supernet")
    keep = ~exclude
    return fp32_data.genes[keep], fp32_data.y[keep]


def overlap(records: list[dict[str, Any]], others: list[dict[str, Any]], space: Any) -> np.ndarray:
    """Boolean mask over ``records``: whose network (canonical architecture) is also in ``others``."""
    keys = {arch_key(Architecture.from_dict(r["arch"], space), space) for r in others}
    return np.array([arch_key(Architecture.from_dict(r["arch"], space), space) in keys for r in records], dtype=bool)


def fit_candidate(kind: str, rows: TrainingRows, space: Any, *, n_trials: int, seed: int = 0,
                  params: dict[str, dict[str, Any]] | None = None, n_jobs: int | None = None) -> AccuracyPredictor:
    """Fit one candidate; ``n_trials`` Optuna trials for each XGBoost model it holds (the same
    tuning budget per model for every kind). ``params`` (from :func:`tuned_params`) refits with
    already tuned hyper-parameters instead."""
    if kind not in KINDS:
        raise DataError(f"unknown INT8 predictor kind {kind!r}; choose from {', '.join(KINDS)}")
    params = params or {}

    def fit(part: str, genes: np.ndarray, y: np.ndarray, bounded: bool = True) -> AccuracyPredictor:
        return AccuracyPredictor(space, n_trials=0 if part in params else n_trials, seed=seed, params=params.get(part),
                                 n_jobs=n_jobs, bounded=bounded).fit(genes, y)

    if kind == "int8":
        model = fit("int8", rows.genes, rows.int8)
        model.parts_ = {"int8": model.best_params_}
        return model
    fp32 = fit("fp32", rows.fp32_genes, rows.fp32_labels)
    if kind == "fp32":
        fp32.parts_ = {"fp32": fp32.best_params_}
        return fp32
    drop = fit("drop", rows.genes, rows.fp32 - rows.int8, bounded=False)
    combined = subtract(fp32, drop)
    combined.parts_ = {"fp32": fp32.best_params_, "drop": drop.best_params_}
    return combined


def tuned_params(model: AccuracyPredictor) -> dict[str, dict[str, Any]]:
    """Each part's tuned hyper-parameters (with its boosting rounds), to refit the same kind on more rows."""
    return dict(model.parts_)


def subtract(minuend: AccuracyPredictor, subtrahend: AccuracyPredictor) -> AccuracyPredictor:
    """One predictor computing ``minuend(x) - subtrahend(x)`` (before the final clip to [0, 1]): the
    subtrahend's trees, leaves negated, appended to the minuend's, base scores subtracted."""
    import xgboost as xgb

    if minuend.encoder_.feature_names != subtrahend.encoder_.feature_names:
        raise DataError("the two models use different features; fit both with the same encoding")
    doc = json.loads(bytes(minuend.booster_.save_raw(raw_format="json")))
    other = json.loads(bytes(subtrahend.booster_.save_raw(raw_format="json")))
    model, more = doc["learner"]["gradient_booster"]["model"], other["learner"]["gradient_booster"]["model"]
    offset = len(model["trees"])
    for i, tree in enumerate(more["trees"]):
        leaves = [k for k, left in enumerate(tree["left_children"]) if left == -1]
        for k in leaves:
            tree["split_conditions"][k] = -tree["split_conditions"][k]
        tree["base_weights"] = [-w for w in tree["base_weights"]]
        tree["id"] = offset + i
        model["trees"].append(tree)
    model["tree_info"] = list(model["tree_info"]) + list(more["tree_info"])
    model["iteration_indptr"] = list(model["iteration_indptr"]) + [
        offset + int(k) for k in more["iteration_indptr"][1:]]
    model["gbtree_model_param"]["num_trees"] = str(len(model["trees"]))
    params = doc["learner"]["learner_model_param"]
    base = _base_score(params["base_score"]) - _base_score(other["learner"]["learner_model_param"]["base_score"])
    params["base_score"] = f"[{base:.9E}]"
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(doc).encode()))
    combined = AccuracyPredictor(minuend.space, encoding=minuend.encoding, n_trials=minuend.n_trials,
                                 cv_folds=minuend.cv_folds, seed=minuend.seed)
    combined.booster_ = booster
    combined.best_params_ = {"fp32": minuend.best_params_, "drop": subtrahend.best_params_}
    combined.cv_rmse_ = float("nan")  # the sum of two models has no CV score of its own
    combined.n_train_ = minuend.n_train_
    combined.trials_, combined.metrics_ = [], {}
    return combined


def _base_score(value: Any) -> float:
    """XGBoost writes the base score as ``"0.5"`` or (newer versions) ``"[5E-1]"``."""
    return float(json.loads(value)[0]) if str(value).startswith("[") else float(value)
