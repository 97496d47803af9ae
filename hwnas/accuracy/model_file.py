"""The saved accuracy predictor on disk: XGBoost's JSON model plus an hwnas sidecar, checked together.

``accuracy_xgb.json`` is XGBoost's own model (loadable by any XGBoost); ``accuracy_xgb.meta.json``
names the search space (and its fingerprint), the feature encoding, hyper-parameters and metrics,
and the model file's SHA-256. Reading is separate from the estimator so that a search can load
the compiled scorer (:mod:`hwnas.accuracy.compiled`) without importing XGBoost or scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.accuracy.features import FEATURE_VERSION, FeatureEncoder
from hwnas.errors import ConfigError, HwnasError, SpaceError
from hwnas.space import SearchSpace, get_space

FORMAT = "hwnas-accuracy-predictor-v1"


def meta_path(model_path: str | Path) -> Path:
    """The sidecar of ``accuracy_xgb.json`` is ``accuracy_xgb.meta.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".meta.json")


@dataclass(frozen=True)
class PredictorFile:
    """A saved predictor whose sidecar, model hash, space and features all check out."""

    path: Path
    model: bytes
    meta: dict[str, Any]
    space: SearchSpace
    encoder: FeatureEncoder

    @property
    def precision(self) -> str:
        """The deployed precision whose accuracy it predicts: ``int8`` for an INT8 predictor
        (experiments/int8_predictor.py), ``fp32`` for every other (older files say nothing)."""
        return str(self.meta.get("precision", "fp32"))


def read_predictor_file(path: str | Path, space: SearchSpace | str | None = None) -> PredictorFile:
    """Read and check ``path`` and its sidecar; refuse a predictor of another space or feature version."""
    path, side = Path(path), meta_path(path)
    if not path.is_file():
        raise HwnasError(f"accuracy predictor {path} does not exist; fit one with `hwnas fit-predictor`")
    if not side.is_file():
        raise HwnasError(f"{side} (the predictor's description) is missing; it is written next to the model "
                         "by `hwnas fit-predictor`; refit or copy both files")
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise HwnasError(f"{side} is not valid JSON ({exc}); refit with `hwnas fit-predictor`") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise HwnasError(f"{side} is not an hwnas accuracy predictor description (format {found!r}); "
                         "refit with `hwnas fit-predictor`")
    model = path.read_bytes()
    if hashlib.sha256(model).hexdigest() != meta.get("model_sha256"):
        raise HwnasError(f"{path} does not match its description {side} (the model file was replaced); "
                         "refit with `hwnas fit-predictor` or restore the pair")
    space = get_space(meta["space"]) if space is None else get_space(space)
    space.check_fingerprint(meta["space_fingerprint"], f"accuracy predictor {path}")
    features = meta["features"]
    if features.get("version") != FEATURE_VERSION:
        raise SpaceError(f"accuracy predictor {path} uses feature version {features.get('version')}, this "
                         f"hwnas computes version {FEATURE_VERSION}; refit with `hwnas fit-predictor`")
    encoder = FeatureEncoder(space, features["encoding"])
    if encoder.feature_names != features["feature_names"]:
        raise ConfigError(f"accuracy predictor {path} was fitted on other features than this hwnas "
                          "computes; refit with `hwnas fit-predictor`")
    return PredictorFile(path=path, model=model, meta=meta, space=space, encoder=encoder)
