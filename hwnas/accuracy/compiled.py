"""Inference-only accuracy predictor: gene features scored by the compiled tree ensemble.

What a search needs of a fitted predictor is ``predict(genes)``, many times a second on small
batches. :class:`CompiledPredictor` does that with :class:`~hwnas.accuracy.tree_ensemble.TreeEnsemble`
and imports neither XGBoost nor scikit-learn, whose imports would dominate the start-up of ``hwnas search``.
:class:`~hwnas.accuracy.predictor.AccuracyPredictor` predicts through the same object, so a
search and the estimator give identical numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwnas.accuracy.features import FeatureEncoder
from hwnas.accuracy.model_file import read_predictor_file
from hwnas.accuracy.tree_ensemble import TreeEnsemble
from hwnas.arch import Architecture
from hwnas.encoding import GeneLayoutBase
from hwnas.families import ARCHITECTURES
from hwnas.space import SearchSpace

ARCH_TYPES = tuple(ARCHITECTURES.values())  # what as_genes encodes (any family's architectures)


def as_genes(layout: GeneLayoutBase, x: np.ndarray | Sequence[Architecture] | Architecture) -> np.ndarray:
    """Accept a gene matrix or architectures; return a validated gene matrix."""
    if isinstance(x, ARCH_TYPES) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], ARCH_TYPES)):
        return layout.encode(x)
    return layout.check(np.asarray(x))


class CompiledPredictor:
    """``predict(genes)``: top-1 accuracy fractions in [0, 1], float64 ``(n,)``.

    Raises :class:`~hwnas.accuracy.tree_ensemble.UnsupportedModel` from :meth:`load` (or the
    constructor's callers) when the XGBoost model cannot be compiled; use the estimator then.
    """

    def __init__(self, encoder: FeatureEncoder, ensemble: TreeEnsemble, meta: dict[str, Any] | None = None) -> None:
        self.encoder = encoder
        self.ensemble = ensemble
        self.meta = meta or {}

    @property
    def layout(self) -> GeneLayoutBase:
        return self.encoder.layout

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | str | None = None) -> "CompiledPredictor":
        """Load a predictor saved by ``hwnas fit-predictor`` (same checks as the estimator's load)."""
        saved = read_predictor_file(path, space)
        return cls(saved.encoder, TreeEnsemble.from_xgboost_json(saved.model), saved.meta)

    def predict(self, genes: np.ndarray | Sequence[Architecture] | Architecture) -> np.ndarray:
        # a gene matrix goes straight to the encoder, which checks it
        X = self.encoder.transform(genes if isinstance(genes, np.ndarray) else as_genes(self.layout, genes))
        return np.clip(self.ensemble.predict(X), 0.0, 1.0).astype(np.float64)
