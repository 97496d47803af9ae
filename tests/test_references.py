"""Hand-designed reference networks: their file, the 'beaten by' rule and the timed comparison."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from hwnas.errors import ConfigError
from hwnas.export.references import (ARCHITECTURES, INPUT_SHAPE, ReferencePoint, beaten_by, compare_with_references,
                                     load_references, reference_onnx, write_references)

from latency_measurers import cpu_test_profile


def test_reference_file_round_trip_keeps_extra_fields(tmp_path):
    points = [ReferencePoint("mlp", 0.891, {"cpu-1thread": 0.06}, {"params": 535818, "train_seconds": 40.0}),
              ReferencePoint("small-cnn", 0.925, {"cpu-1thread": 0.9})]
    path = write_references(tmp_path / "refs.json", points, {"command": "python experiments/reference_models.py"})
    assert json.loads(path.read_text())["command"] == "python experiments/reference_models.py"
    assert load_references(path) == points


def test_reference_file_errors_name_the_fix(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else", "models": []}))
    with pytest.raises(ConfigError, match="reference_models.py"):
        load_references(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_references(tmp_path / "missing.json")
    bad.write_text(json.dumps({"format": "hwnas-reference-models-v1", "models": [{"model": "mlp"}]}))
    with pytest.raises(ConfigError, match="test_accuracy"):
        load_references(bad)


def test_beaten_needs_faster_or_equal_and_strictly_more_accurate():
    ref = ReferencePoint("mlp", 0.89, {"cpu": 0.10})
    models = [("fast-but-worse", 0.88, 0.05), ("better-but-slower", 0.95, 0.11), ("tie-accuracy", 0.89, 0.09),
              ("equal-speed-better", 0.90, 0.10), ("unmeasured", 0.99, None), ("no-accuracy", None, 0.01),
              ("dominates", 0.93, 0.08)]
    assert beaten_by(ref, models, "cpu") == ["equal-speed-better", "dominates"]
    assert beaten_by(ref, models, "gpu") is None  # no latency of the reference there: nothing to say


def test_reference_architectures_export_and_run():
    for name in ARCHITECTURES:
        session = ort.InferenceSession(reference_onnx(name), providers=["CPUExecutionProvider"])
        out = session.run(None, {session.get_inputs()[0].name: np.zeros((3, *INPUT_SHAPE), np.float32)})[0]
        assert out.shape == (3, 10)
    with pytest.raises(ConfigError, match="known: mlp, small-cnn"):
        reference_onnx("resnet")


def test_compare_times_references_beside_models_in_one_group():
    profile = cpu_test_profile()
    refs = [ReferencePoint("mlp", 0.80, {profile.name: 1.0}), ReferencePoint("small-cnn", 0.99, {}),
            ReferencePoint("not-an-architecture", 0.5, {profile.name: 1.0})]
    # the MLP itself as the "exported model", more accurate: as fast as the MLP up to timing noise, so
    # whether it beats it is noise; the small CNN at 0.99 can only be beaten by a more accurate model
    model = (reference_onnx("mlp", seed=1), (profile.batch_size, *INPUT_SHAPE))
    rows = compare_with_references(refs, [("front000", 0.85, model), ("front001", None, model)], profile,
                                   min_seconds=0)
    by_name = {row["model"]: row for row in rows}
    assert set(by_name) == {"mlp", "small-cnn", "front000", "front001"}  # unknown architectures are not timed
    assert by_name["small-cnn"]["beaten_by"] == [] and by_name["small-cnn"]["latency_ms_recorded"] is None
    assert by_name["mlp"]["latency_ms_recorded"] == 1.0 and by_name["mlp"]["latency_ms_now"] > 0
    assert by_name["small-cnn"]["latency_ms_now"] > by_name["mlp"]["latency_ms_now"]  # ~30x the MACs
    assert by_name["front000"]["exported"] and by_name["front000"]["latency_ms_now"] > 0
    assert by_name["mlp"]["beaten_by"] in ([], ["front000"])
