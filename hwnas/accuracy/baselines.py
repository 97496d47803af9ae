"""Baselines the XGBoost predictor is measured against, with the same fit/predict API.

* :class:`MLPPredictor` - once-for-all's accuracy predictor: an MLP with three hidden layers of
  400 units on a one-hot encoding of every choice (inactive slots all-zero), trained with Adam on
  the squared error; here with early stopping on a held-out part of the training data.
* :class:`RidgePredictor` - ridge regression on the same one-hot encoding (an additive model:
  each choice contributes a fixed amount), with the penalty picked by efficient leave-one-out CV.

Both take ``extra_encoding`` (an encoding of :mod:`hwnas.accuracy.features`, e.g. ``"full"``):
its columns, standardised on the training rows, are appended to the one-hot matrix, so a benchmark
can give every model the same information. :func:`tune_baseline` tunes either one the way the
XGBoost predictor is tuned: the same number of Optuna TPE trials of the same K-fold CV.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from hwnas.accuracy.features import FeatureEncoder, one_hot_features
from hwnas.accuracy.predictor import check_training_data, as_genes
from hwnas.arch import Architecture
from hwnas.encoding import GeneLayout
from hwnas.errors import HwnasError
from hwnas.space import SearchSpace


class _OneHotModel(RegressorMixin, BaseEstimator):
    """Shared plumbing: genes or architectures -> one-hot matrix."""

    space: SearchSpace | str
    extra_encoding: str | None

    def _layout(self) -> GeneLayout:
        layout = self.__dict__.get("_layout_cache")
        if layout is None:
            layout = self.__dict__["_layout_cache"] = GeneLayout(self.space)
        return layout

    def _features(self, genes: Any, fit: bool = False) -> np.ndarray:
        """One-hot columns, plus the standardised ``extra_encoding`` columns (scaled on the fit rows)."""
        genes = as_genes(self._layout(), genes)
        one_hot = one_hot_features(self._layout(), genes)
        if not self.extra_encoding:
            return one_hot
        extra = FeatureEncoder(self.space, self.extra_encoding).transform(genes).astype(np.float64)
        if fit:
            self.extra_mean_, self.extra_std_ = extra.mean(0), extra.std(0)
            self.extra_std_[self.extra_std_ == 0] = 1.0
        scaled = ((extra - self.extra_mean_) / self.extra_std_).astype(np.float32)
        return np.concatenate([one_hot, scaled], axis=1)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise HwnasError(f"this {type(self).__name__} is not fitted; call fit() first")


class RidgePredictor(_OneHotModel):
    """Ridge regression on one-hot choices; ``alphas`` are tried by leave-one-out CV."""

    def __init__(self, space: SearchSpace | str = "fmnist-mbv3",
                 alphas: Sequence[float] = (0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0),
                 extra_encoding: str | None = None) -> None:
        self.space = space
        self.alphas = alphas
        self.extra_encoding = extra_encoding

    def fit(self, genes: np.ndarray | Sequence[Architecture], y: np.ndarray) -> "RidgePredictor":
        from sklearn.linear_model import RidgeCV
        from threadpoolctl import threadpool_limits

        genes, y = check_training_data(self._layout(), genes, y)
        with threadpool_limits(1, user_api="blas"):  # small matrices: BLAS threads only contend
            self.model_ = RidgeCV(alphas=np.asarray(self.alphas, dtype=float)).fit(self._features(genes, fit=True), y)
        return self

    def predict(self, genes: np.ndarray | Sequence[Architecture]) -> np.ndarray:
        self._check_fitted()
        return np.clip(self.model_.predict(self._features(genes)), 0.0, 1.0)


class MLPPredictor(_OneHotModel):
    """OFA-style MLP (``hidden`` ReLU layers) on one-hot choices, Adam, early stopping.

    ``val_fraction`` of the training rows (at least 10) are held out to pick the epoch with the
    lowest validation error; the weights of that epoch are kept. Targets are standardised inside.
    """

    def __init__(self, space: SearchSpace | str = "fmnist-mbv3", hidden: Sequence[int] = (400, 400, 400),
                 lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 256, max_epochs: int = 300,
                 patience: int = 25, val_fraction: float = 0.15, seed: int = 0,
                 extra_encoding: str | None = None) -> None:
        self.space = space
        self.extra_encoding = extra_encoding
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed

    def _build(self, n_in: int) -> Any:
        from torch import nn

        layers: list[nn.Module] = []
        for width in self.hidden:
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        layers.append(nn.Linear(n_in, 1))
        return nn.Sequential(*layers)

    def fit(self, genes: np.ndarray | Sequence[Architecture], y: np.ndarray) -> "MLPPredictor":
        import torch

        genes, y = check_training_data(self._layout(), genes, y)
        X = torch.from_numpy(self._features(genes, fit=True))
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() or 1.0)
        t = torch.from_numpy(((y - self.y_mean_) / self.y_std_).astype(np.float32))
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(y))
        n_val = min(max(10, int(round(self.val_fraction * len(y)))), len(y) // 2)
        val, train = order[:n_val], order[n_val:]
        torch.manual_seed(self.seed)
        model = self._build(X.shape[1])
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        gen = torch.Generator().manual_seed(self.seed)
        best, best_state, since = float("inf"), None, 0
        for _epoch in range(self.max_epochs):
            model.train()
            perm = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
            for start in range(0, len(perm), self.batch_size):
                idx = perm[start:start + self.batch_size]
                loss = torch.nn.functional.mse_loss(model(X[idx]).squeeze(1), t[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                val_loss = float(torch.nn.functional.mse_loss(model(X[val]).squeeze(1), t[val]))
            if val_loss < best - 1e-6:
                best, best_state, since = val_loss, copy.deepcopy(model.state_dict()), 0
            else:
                since += 1
                if since >= self.patience:
                    break
        model.load_state_dict(best_state)
        self.model_ = model.eval()
        self.best_val_rmse_ = float(np.sqrt(best)) * self.y_std_
        return self

    def predict(self, genes: np.ndarray | Sequence[Architecture]) -> np.ndarray:
        import torch

        self._check_fitted()
        with torch.inference_mode():
            out = self.model_(torch.from_numpy(self._features(genes))).squeeze(1).double().numpy()
        return np.clip(out * self.y_std_ + self.y_mean_, 0.0, 1.0)


#: Hyper-parameter ranges the tuner searches; the first trial is always the class defaults.
def _mlp_params(trial: Any) -> dict[str, Any]:
    width = trial.suggest_categorical("width", [100, 200, 400])
    layers = trial.suggest_int("layers", 2, 4)
    return {"hidden": (width,) * layers, "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)}


def _ridge_params(trial: Any) -> dict[str, Any]:
    return {"alphas": (trial.suggest_float("alpha", 1e-3, 1e3, log=True),)}


SEARCH_SPACES: dict[type, tuple[Callable[[Any], dict[str, Any]], dict[str, Any]]] = {
    MLPPredictor: (_mlp_params, {"width": 400, "layers": 3, "lr": 1e-3, "weight_decay": 1e-4}),
    RidgePredictor: (_ridge_params, {"alpha": 1.0}),
}


def tune_baseline(cls: type, genes: np.ndarray, y: np.ndarray, *, n_trials: int, cv_folds: int = 5,
                  seed: int = 0, **fixed: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Pick ``cls``'s hyper-parameters by ``n_trials`` Optuna TPE trials of ``cv_folds``-fold CV RMSE
    (the XGBoost predictor's budget and protocol), refit on all rows; returns the model and the trial log.

    With ``n_trials`` 0 the class defaults are fitted as they are. ``seed`` also seeds the model
    when it takes one (the MLP's initialisation and batches).
    """
    import optuna
    from sklearn.model_selection import KFold

    suggest, defaults = SEARCH_SPACES[cls]
    if "seed" in cls().get_params():
        fixed.setdefault("seed", seed)
    if n_trials <= 0:
        return cls(**fixed).fit(genes, y), []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = list(KFold(n_splits=min(cv_folds, len(y)), shuffle=True, random_state=seed).split(genes))

    def objective(trial: Any) -> float:
        params = {**fixed, **suggest(trial)}
        errs = [np.mean((cls(**params).fit(genes[tr], y[tr]).predict(genes[te]) - y[te]) ** 2)
                for tr, te in folds]
        return float(np.sqrt(np.mean(errs)))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(defaults)
    study.optimize(objective, n_trials=n_trials)
    log = [{"number": t.number, "cv_rmse": t.value, "params": t.params} for t in study.trials]
    best = {**fixed, **suggest(optuna.trial.FixedTrial(study.best_params))}
    return cls(**best).fit(genes, y), log
