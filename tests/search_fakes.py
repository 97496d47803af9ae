"""Stand-ins for a trained accuracy predictor and latency tables, so searches run for real in tests.

The accuracy predictor and latency tables are replaced by small analytic objects with the same
methods (``predict(genes)``, ``predict_genes(genes)``, ``resolutions``), loaded from tiny JSON files
written to ``tmp_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hwnas import paths
from hwnas.encoding import GeneLayout
from hwnas.search import runner

SPACE = "fmnist-mbv3"


class FakePredictor:
    """Accuracy rising with capacity and resolution, saturating (like a trained predictor). An INT8
    one (``meta`` precision int8) loses more accuracy the larger the kernels, as quantisation might."""

    def __init__(self, space, meta: dict | None = None) -> None:
        self.layout = GeneLayout(space)
        rng = np.random.default_rng(0)
        self.w = rng.uniform(0.3, 1.5, self.layout.num_slots)
        self.meta = dict(meta or {})

    @classmethod
    def from_file(cls, path, space) -> "FakePredictor":
        """The stand-in for the predictor file at ``path`` (its JSON: the sidecar's ``precision``)."""
        path = Path(path)
        return cls(space, json.loads(path.read_text()) if path.is_file() and path.stat().st_size else {})

    def predict(self, genes: np.ndarray) -> np.ndarray:
        v = self.layout.values(genes)
        score = ((self.w * ((v.kernel - 3) / 4 + (v.expand - 3) / 3) + 0.5) * v.active).sum(1)
        score += 3.0 * (v.resolution - 20) / 12
        accuracy = 0.93 - 0.5 * np.exp(-score / 6.0)
        if self.meta.get("precision") == "int8":
            accuracy -= 0.002 * ((v.kernel - 3) * v.active).sum(1)
        return accuracy


class FakeTable:
    """Latency = scale x (per-block cost) + offset; ``calls`` counts batch lookups."""

    def __init__(self, space, scale: float, offset: float, resolutions=None, precision: str = "fp32") -> None:
        self.layout = GeneLayout(space)
        self.precision = precision
        self.scale, self.offset = scale, offset
        self.resolutions = tuple(resolutions or self.layout.space.resolutions)
        rng = np.random.default_rng(int(scale * 100))
        self.w = rng.uniform(0.5, 2.0, self.layout.num_slots)
        self.calls = 0

    def predict_genes(self, genes: np.ndarray) -> np.ndarray:
        self.calls += 1
        v = self.layout.values(genes)
        assert np.isin(v.resolution, self.resolutions).all(), "scored an unprofiled resolution"
        blocks = (self.w * v.kernel ** 2 * v.expand * v.active).sum(1)
        return self.offset + self.scale * blocks * (v.resolution / 28.0) ** 2 / 1000.0


def fake_search_env(tmp_path, monkeypatch) -> dict:
    """Two fake device tables and a predictor file; loaders patched to build the stand-ins."""
    monkeypatch.chdir(tmp_path)  # default paths (latency_tables/, checkpoints/) resolve here
    tables = {}

    def make_table(name: str, scale: float, offset: float, resolutions=None, precision: str = "fp32") -> str:
        path = tmp_path / paths.table_path("latency_tables", name, SPACE, precision)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"scale": scale, "offset": offset, "resolutions": resolutions,
                                    "precision": precision}))
        return str(path)

    def load_table(path, space):
        data = json.loads(Path(path).read_text())
        table = FakeTable(space, data["scale"], data["offset"], data["resolutions"], data.get("precision", "fp32"))
        tables[Path(path).parent.name] = table
        return table

    predictor = tmp_path / "pred.json"
    predictor.write_text("{}")
    monkeypatch.setattr(runner, "load_latency_table", load_table)
    monkeypatch.setattr(runner, "load_accuracy_predictor", FakePredictor.from_file)
    return {"tmp": tmp_path, "a": make_table("dev-a", 1.0, 0.05), "b": make_table("dev-b", 0.4, 0.3),
            "predictor": str(predictor), "tables": tables, "make_table": make_table}
