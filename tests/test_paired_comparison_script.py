"""experiments/paired_comparison.py: its seed summary and its error for a model not made yet."""

from __future__ import annotations

import pytest

from experiment_script import load_experiment
from hwnas.errors import ConfigError


def test_the_seed_summary_pools_only_the_seed_study_rows_of_one_budget():
    script = load_experiment("paired_comparison")
    rows = [{"epochs": 18, "seed_study": True, "difference": d} for d in (0.001, 0.003, -0.001, 0.002)]
    rows += [{"epochs": 18, "seed_study": False, "difference": 0.5},  # the quickstart's own pair: not a seed
             {"epochs": 36, "seed_study": True, "difference": 0.01}]  # one seed: no spread to report
    (summary,) = script.seed_summary(rows)
    assert summary["epochs"] == 18 and summary["seeds"] == 4 and summary["a_ahead"] == 3
    assert summary["mean_difference"] == pytest.approx(0.00125)
    low, high = summary["ci95"]
    assert low < 0 < high  # 4 seeds this spread out do not exclude a tie
    assert high - summary["mean_difference"] == pytest.approx(summary["mean_difference"] - low)


def test_a_missing_model_names_the_command_that_makes_it(tmp_path):
    script = load_experiment("paired_comparison")
    side = {"name": "A", "onnx": str(tmp_path / "A.onnx"), "made_by": "hwnas quickstart --overwrite"}
    with pytest.raises(ConfigError, match="make it with: hwnas quickstart --overwrite"):
        script.onnx_model(side)
    with pytest.raises(ConfigError, match="'reference' must be one of"):
        script.onnx_model({"name": "x", "reference": "resnet"})
    with pytest.raises(ConfigError, match="give 'onnx'"):
        script.onnx_model({"name": "x", "reference": "small-cnn"})  # no weights named
