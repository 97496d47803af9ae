"""Gradient-boosted-tree accuracy predictor: genes -> top-1 accuracy, fast enough to score a whole
search population (through the compiled scorer of :mod:`hwnas.accuracy.tree_ensemble`; rows/s
in ``predictor_speed`` of experiments/results/search_benchmark.json) and cheap to fit on a few thousand measured subnets.

Why XGBoost trees rather than once-for-all's MLP: with a few hundred to a few thousand measured
subnets, boosted trees on the masked, stage-summed features of :mod:`hwnas.accuracy.features`
rank subnets at least as well (experiments/predictor_benchmark.py), need no feature scaling, fit in
seconds on a CPU and predict in microseconds per row. Hyper-parameters are chosen by K-fold
cross-validation with Optuna's seeded TPE sampler; the number of boosting rounds comes from early
stopping inside each CV run, so a trial costs one ``xgboost.cv`` call.

A saved predictor is XGBoost's own JSON model (``accuracy_xgb.json``, loadable by any XGBoost)
plus a sidecar ``accuracy_xgb.meta.json`` carrying the search space name and fingerprint, the
feature encoding, hyper-parameters and metrics (:mod:`hwnas.accuracy.model_file`). Loading refuses
a predictor of another space.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from hwnas.accuracy.compiled import CompiledPredictor, as_genes
from hwnas.accuracy.features import DEFAULT_ENCODING, FeatureEncoder
from hwnas.accuracy.model_file import FORMAT, meta_path, read_predictor_file
from hwnas.accuracy.tree_ensemble import TreeEnsemble, UnsupportedModel
from hwnas.arch import Architecture
from hwnas.atomic_io import atomic_write_bytes, atomic_write_json
from hwnas.encoding import GeneLayout
from hwnas.errors import DataError, HwnasError
from hwnas.space import SearchSpace, get_space

__all__ = ["AccuracyPredictor", "FORMAT", "meta_path", "ranking_metrics", "as_genes", "check_training_data"]

MAX_ROUNDS = 1500
#: Boosting rounds ``hwnas fit-predictor`` lets the tuner use. Every search candidate is scored by
#: every tree, so trees cost search speed. 400 is the smallest cap whose held-out Kendall tau stayed
#: within the seed spread of the uncapped tuner's on the shipped supernet's 3,000 labels (0.8055 vs
#: 0.8070, spread 0.0023; 100 and 200 lost more): experiments/results/predictor_benchmark.json, tree_caps.
DEFAULT_TREE_CAP = 400
EARLY_STOP = 50
#: Deepest trees the tuner tries: at most 64 leaves per tree, what the compiled scorer takes.
MAX_TUNED_DEPTH = 6


def ranking_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R^2, Kendall tau and Spearman rho: search needs the ranking more than the values."""
    from scipy.stats import kendalltau, spearmanr

    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    err = y_pred - y_true
    ranked = len(y_true) > 1 and np.ptp(y_true) > 0 and np.ptp(y_pred) > 0  # else correlations are undefined
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((err ** 2).mean())),
        "mae": float(np.abs(err).mean()),
        "r2": float(1 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
        "kendall_tau": float(kendalltau(y_true, y_pred).statistic) if ranked else float("nan"),
        "spearman": float(spearmanr(y_true, y_pred).statistic) if ranked else float("nan"),
        "n": int(len(y_true)),
    }


def check_training_data(layout: GeneLayout, genes: Any, y: Any, bounded: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(genes, y)``; ``bounded`` labels must be accuracy fractions in [0, 1]."""
    genes = as_genes(layout, genes)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != len(genes):
        raise DataError(f"{len(genes)} architectures but {len(y)} accuracies; they must pair up one to one")
    if not np.isfinite(y).all():
        raise DataError("accuracies contain NaN or infinite values; drop those records and refit")
    if bounded and (y.min() < 0 or y.max() > 1):
        raise DataError(f"accuracies must be fractions in [0, 1], got a range {y.min():g}..{y.max():g}; "
                        "divide percentages by 100")
    return genes, y


class AccuracyPredictor(RegressorMixin, BaseEstimator):
    """XGBoost regressor over gene features; scikit-learn ``fit`` / ``predict`` / ``score``.

    ``n_trials`` Optuna trials of ``cv_folds``-fold CV choose the hyper-parameters (0 trials: use
    ``params`` or XGBoost-friendly defaults); boosting rounds are early-stopped in CV (at most
    ``max_rounds``). ``predict`` returns accuracy fractions in [0, 1]. ``bounded=False`` accepts a
    signed target (an INT8 model's accuracy drop, :mod:`hwnas.accuracy.int8_predictor`); such a
    model is a part of a predictor, read through its booster, not through ``predict``.
    """

    def __init__(self, space: SearchSpace | str = "fmnist-mbv3", encoding: str = DEFAULT_ENCODING, n_trials: int = 30,
                 cv_folds: int = 5, seed: int = 0, params: dict[str, Any] | None = None,
                 n_jobs: int | None = None, progress: bool = False, max_rounds: int = MAX_ROUNDS,
                 bounded: bool = True) -> None:
        self.space = space
        self.encoding = encoding
        self.n_trials = n_trials
        self.cv_folds = cv_folds
        self.seed = seed
        self.params = params
        self.n_jobs = n_jobs
        self.progress = progress
        self.max_rounds = max_rounds
        self.bounded = bounded

    # ----------------------------------------------------------------------------- helpers
    @property
    def encoder_(self) -> FeatureEncoder:
        enc = self.__dict__.get("_encoder")
        if enc is None or enc.space != get_space(self.space) or enc.encoding != self.encoding:
            enc = self.__dict__["_encoder"] = FeatureEncoder(self.space, self.encoding)
        return enc

    def _base_params(self) -> dict[str, Any]:
        base = {"objective": "reg:squarederror", "tree_method": "hist", "device": "cpu",
                "eval_metric": "rmse", "seed": self.seed, "verbosity": 0}
        if self.n_jobs:
            base["nthread"] = self.n_jobs
        return base

    def _cv(self, dtrain: Any, params: dict[str, Any], n_rows: int) -> tuple[float, int]:
        """K-fold CV RMSE at the early-stopped best round, and that round count."""
        import xgboost as xgb
        from sklearn.model_selection import KFold

        folds = KFold(n_splits=min(self.cv_folds, n_rows), shuffle=True, random_state=self.seed)
        hist = xgb.cv({**self._base_params(), **params}, dtrain, num_boost_round=self.max_rounds, folds=folds,
                      early_stopping_rounds=EARLY_STOP, as_pandas=False, seed=self.seed)
        rmse = hist["test-rmse-mean"]
        return float(rmse[-1]), len(rmse)

    def _tune(self, dtrain: Any, n_rows: int) -> tuple[dict[str, Any], int, float]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)

        def objective(trial: "optuna.Trial") -> float:
            params = {
                "max_depth": trial.suggest_int("max_depth", 2, MAX_TUNED_DEPTH),
                "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
                "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 30.0, log=True),
                "subsample": trial.suggest_float("subsample", 0.5, 1.0),
                "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
                "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
                "reg_alpha": trial.suggest_float("reg_alpha", 1e-5, 1.0, log=True),
            }
            rmse, rounds = self._cv(dtrain, params, n_rows)
            trial.set_user_attr("num_boost_round", rounds)
            return rmse

        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=self.seed),
                                    study_name="hwnas-accuracy-xgb")  # in-memory storage
        study.enqueue_trial(DEFAULT_PARAMS)  # the defaults are always a candidate
        study.optimize(objective, n_trials=self.n_trials, show_progress_bar=self.progress)
        self.trials_ = [{"number": t.number, "cv_rmse": t.value, "params": t.params,
                         "num_boost_round": t.user_attrs.get("num_boost_round")} for t in study.trials]
        best = study.best_trial
        return dict(best.params), int(best.user_attrs["num_boost_round"]), float(best.value)

    # ----------------------------------------------------------------------------- sklearn API
    def fit(self, genes: np.ndarray | Sequence[Architecture], y: np.ndarray) -> "AccuracyPredictor":
        """Tune (if ``n_trials``) by K-fold CV, then train on all of ``genes``/``y``."""
        import xgboost as xgb

        layout = self.encoder_.layout
        genes, y = check_training_data(layout, genes, y, self.bounded)
        if len(y) < max(self.cv_folds, 4):
            raise DataError(f"need at least {max(self.cv_folds, 4)} measured subnets to fit a predictor, "
                            f"got {len(y)}; collect more with `hwnas collect`")
        X = self.encoder_.transform(genes)
        self.trials_: list[dict[str, Any]] = []  # every Optuna trial, saved in the sidecar
        dtrain = xgb.DMatrix(X, label=y, feature_names=self.encoder_.feature_names)
        if self.n_trials > 0 and self.params is None:
            params, rounds, cv_rmse = self._tune(dtrain, len(y))
        else:
            params = dict(DEFAULT_PARAMS if self.params is None else self.params)
            rounds = int(params.pop("num_boost_round", 0))
            cv_rmse = float("nan")
            if not rounds:
                cv_rmse, rounds = self._cv(dtrain, params, len(y))
        self.booster_ = xgb.train({**self._base_params(), **params}, dtrain, num_boost_round=rounds)
        self.best_params_ = {**params, "num_boost_round": rounds}
        self.cv_rmse_ = cv_rmse
        self.n_train_ = len(y)
        self.metrics_: dict[str, Any] = {}
        return self

    def predict(self, genes: np.ndarray | Sequence[Architecture]) -> np.ndarray:
        """Predicted top-1 accuracy (fraction in [0, 1]) per row; vectorised over the gene matrix.

        Scored by the compiled tree ensemble (:mod:`hwnas.accuracy.tree_ensemble`) when the model
        allows it, which is every model :meth:`fit` makes; XGBoost's own predictor otherwise.
        """
        if not hasattr(self, "booster_"):
            raise HwnasError("this AccuracyPredictor is not fitted; call fit() or AccuracyPredictor.load()")
        compiled = self.compiled_
        if compiled is not None:
            return compiled.predict(genes)
        X = self.encoder_.transform(as_genes(self.encoder_.layout, genes))
        return np.clip(self.booster_.inplace_predict(X, validate_features=False), 0.0, 1.0).astype(np.float64)

    @property
    def compiled_(self) -> CompiledPredictor | None:
        """The fitted model as a :class:`CompiledPredictor`, or ``None`` if it cannot be compiled."""
        booster = self.__dict__.get("booster_")
        if booster is None:
            return None
        cached = self.__dict__.get("_compiled")
        if cached is None or cached[0] is not booster:
            cached = self._cache_compiled(booster, bytes(booster.save_raw(raw_format="json")))
        return cached[1]

    def _cache_compiled(self, booster: Any, model_json: bytes) -> tuple[Any, CompiledPredictor | None]:
        try:
            compiled = CompiledPredictor(self.encoder_, TreeEnsemble.from_xgboost_json(model_json))
        except UnsupportedModel:
            compiled = None
        self.__dict__["_compiled"] = (booster, compiled)
        return booster, compiled

    def evaluate(self, genes: np.ndarray | Sequence[Architecture], y: np.ndarray) -> dict[str, float]:
        """:func:`ranking_metrics` of the predictions on ``genes`` against ``y``."""
        genes, y = check_training_data(self.encoder_.layout, genes, y)
        return ranking_metrics(y, self.predict(genes))

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write XGBoost's JSON model to ``path`` and the description to its ``.meta.json`` sidecar."""
        if not hasattr(self, "booster_"):
            raise HwnasError("cannot save an unfitted AccuracyPredictor; call fit() first")
        import xgboost as xgb

        path = Path(path)
        model = bytes(self.booster_.save_raw(raw_format="json"))
        space = get_space(self.space)
        meta = {
            "format": FORMAT,
            "model_file": path.name,
            "model_sha256": hashlib.sha256(model).hexdigest(),
            "space": space.name,
            "space_fingerprint": space.fingerprint(),
            "target": "top-1 accuracy (fraction) after BN recalibration",
            "features": self.encoder_.describe(),
            "hyperparameters": self.best_params_,
            "cv": {"folds": self.cv_folds, "trials": self.n_trials, "seed": self.seed, "rmse": self.cv_rmse_,
                   "max_rounds": self.max_rounds,
                   "trial_log": getattr(self, "trials_", [])},
            "n_train": self.n_train_,
            "metrics": self.metrics_,
            "xgboost_version": xgb.__version__,
            **(extra or {}),
        }
        atomic_write_bytes(path, model)
        atomic_write_json(meta_path(path), _json_safe(meta))
        return path

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | str | None = None) -> "AccuracyPredictor":
        """Load a saved predictor; refuse one built for another search space (or feature version)."""
        import xgboost as xgb

        saved = read_predictor_file(path, space)
        meta, cv = saved.meta, saved.meta.get("cv", {})
        pred = cls(space=saved.space, encoding=saved.encoder.encoding, n_trials=cv.get("trials", 0),
                   cv_folds=cv.get("folds", 5), seed=cv.get("seed", 0), max_rounds=cv.get("max_rounds", MAX_ROUNDS))
        pred.__dict__["_encoder"] = saved.encoder  # already built and checked against the sidecar
        booster = xgb.Booster()
        booster.load_model(bytearray(saved.model))
        pred.booster_ = booster
        pred._cache_compiled(booster, saved.model)  # the file is the JSON model: no re-serialising
        pred.best_params_ = meta.get("hyperparameters", {})
        pred.cv_rmse_ = float("nan") if cv.get("rmse") is None else float(cv["rmse"])
        pred.n_train_ = meta.get("n_train", 0)
        pred.metrics_ = meta.get("metrics", {})
        pred.trials_ = cv.get("trial_log", [])
        pred.meta_ = meta
        return pred


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None, so the sidecar is strict JSON."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


#: Hyper-parameters used without tuning, and always the first Optuna trial.
DEFAULT_PARAMS: dict[str, Any] = {"max_depth": 6, "learning_rate": 0.05, "min_child_weight": 1.0,
                                  "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                                  "reg_alpha": 1e-4}
