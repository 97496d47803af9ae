"""experiments/supernet_quality.py --reproduces: a rerun's checkpoint against the shipped one's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiment_script import load_experiment


def _module():
    return load_experiment("supernet_quality")


def _rows(*accuracies: float) -> list[dict]:
    return [{"subnet": name, "arch": {"depth": [i]}, "supernet_test_accuracy": acc}
            for i, (name, acc) in enumerate(zip(("largest", "smallest", "random1"), accuracies))]


def _shipped(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"supernet": "shipped.safetensors", "rows": rows}))
    return path


def test_a_rerun_within_three_tenths_of_a_point_reproduces(tmp_path):
    shipped = _shipped(tmp_path, _rows(0.9400, 0.9100, 0.9200))
    result = _module().compare_with(shipped, _rows(0.9425, 0.9080, 0.9230))
    assert result["within_tolerance"] and result["differences"] == {"largest": 0.0025, "smallest": -0.002,
                                                                    "random1": 0.003}


def test_one_subnet_further_off_fails_the_reproduction(tmp_path):
    shipped = _shipped(tmp_path, _rows(0.9400, 0.9100, 0.9200))
    assert not _module().compare_with(shipped, _rows(0.9400, 0.9060, 0.9200))["within_tolerance"]


def test_other_subnets_are_refused_rather_than_compared(tmp_path):
    shipped = _shipped(tmp_path, _rows(0.94, 0.91, 0.92))
    rows = _rows(0.94, 0.91, 0.92)
    rows[2]["arch"] = {"depth": [7]}
    with pytest.raises(SystemExit, match="scored other subnets"):
        _module().compare_with(shipped, rows)
