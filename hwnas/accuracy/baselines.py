"""Baselines the XGBoost predictor is measured against, with the same fit/predict API.

* :class:`MLPPredictor` - once-for-all's accuracy predictor: an MLP with three hidden layers of
  400 units on a one-hot encoding of every choice (inactive slots all-zero), trained with Adam on
  the squared error; here with early stopping on a held-out part of the training data.
* :class:`RidgePredictor` - ridge regression on the same one-hot encoding (an additive model:
  each choice contributes a fixed amount), with the penalty picked by efficient leave-one-out CV.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from hwnas.accuracy.features import one_hot_features
from hwnas.accuracy.predictor import check_training_data, as_genes
from hwnas.arch import Architecture
from hwnas.encoding import GeneLayout
from hwnas.errors import HwnasError
from hwnas.space import SearchSpace


class _OneHotModel(RegressorMixin, BaseEstimator):
    """Shared plumbing: genes or architectures -> one-hot matrix."""

    space: SearchSpace | str

    def _layout(self) -> GeneLayout:
        layout = self.__dict__.get("_layout_cache")
        if layout is None:
            layout = self.__dict__["_layout_cache"] = GeneLayout(self.space)
        return layout

    def _features(self, genes: Any) -> np.ndarray:
        return one_hot_features(self._layout(), as_genes(self._layout(), genes))

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise HwnasError(f"this {type(self).__name__} is not fitted; call fit() first")


class RidgePredictor(_OneHotModel):
    """Ridge regression on one-hot choices; ``alphas`` are tried by leave-one-out CV."""

    def __init__(self, space: SearchSpace | str = "fmnist-mbv3",
                 alphas: Sequence[float] = (0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0)) -> None:
        self.space = space
        self.alphas = alphas

    def fit(self, genes: np.ndarray | Sequence[Architecture], y: np.ndarray) -> "RidgePredictor":
        from sklearn.linear_model import RidgeCV
        from threadpoolctl import threadpool_limits

        genes, y = check_training_data(self._layout(), genes, y)
        with threadpool_limits(1, user_api="blas"):  # small matrices: BLAS threads only contend
            self.model_ = RidgeCV(alphas=tuple(self.alphas)).fit(self._features(genes), y)
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
                 patience: int = 25, val_fraction: float = 0.15, seed: int = 0) -> None:
        self.space = space
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
        X = torch.from_numpy(self._features(genes))
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
