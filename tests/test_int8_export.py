"""``hwnas export`` of a search over INT8 (issue 21): models searched at INT8 are written quantised and the
report compares the search's predictions with the INT8 files; old FP32 run folders keep loading."""

from __future__ import annotations

import json

import pytest

from export_fixtures import random_checkpoint
from hwnas.cli import main
from hwnas.export.report import ModelFile, ModelResult, accuracy_agreement, latency_agreement, render_markdown
from hwnas.search.front import FrontRecord, read_front
from search_fakes import fake_search_env

SPACE = "fmnist-mbv3"


@pytest.fixture
def env(tmp_path, monkeypatch):
    env = fake_search_env(tmp_path, monkeypatch)
    env["make_table"]("cpu-1thread", 1.0, 0.05)
    env["make_table"]("cpu-1thread", 0.55, 0.05, precision="int8")
    int8 = tmp_path / "predictors" / SPACE / "int8" / "accuracy_xgb.json"
    int8.parent.mkdir(parents=True)
    int8.write_text(json.dumps({"precision": "int8"}))
    env["supernet"] = str(random_checkpoint(tmp_path))
    return env


def test_export_of_a_two_precision_search_quantises_the_int8_picks(env):
    tmp = env["tmp"]
    assert main(["search", "--space", SPACE, "--predictor", env["predictor"], "--device", "cpu-1thread",
                 "--budget-ms", "0.6", "2.4", "--precision", "fp32,int8", "--evaluations", "600", "--seed", "3",
                 "--out", str(tmp / "run"), "--no-progress", "--no-plot"]) == 0
    picks = json.loads((tmp / "run" / "picks.json").read_text())
    assert main(["export", str(tmp / "run"), "--pick", "budget", "--supernet", env["supernet"], "--out",
                 str(tmp / "exp"), "--no-measure", "--calib-images", "16", "--int8-calib-images", "32",
                 "--parity-images", "4", "--no-progress"]) == 0
    summary = json.loads((tmp / "exp" / "summary.json").read_text())
    models = summary["models"]
    assert sorted((m["precision"], json.dumps(m["arch"])) for m in models) == sorted(
        {(p["precision"], json.dumps(p["arch"])) for p in picks})
    for m in models:
        assert m["status"] == "ok", m["error"]
        assert (m["int8"] is not None) == (m["precision"] == "int8")  # only INT8 picks are quantised
    deployed = [m["int8"] if m["precision"] == "int8" else m["fp32"] for m in models]
    agreement = summary["accuracy_agreement"]
    assert agreement["n"] == len(models)
    assert agreement["mae"] == pytest.approx(sum(abs(m["predicted_accuracy"] - d["accuracy"])
                                                 for m, d in zip(models, deployed)) / len(models))


def test_report_compares_predictions_with_the_file_searched_for():
    def result(name: str, precision: str, fp32_ms: float, int8_ms: float) -> ModelResult:
        files = [ModelFile(path=f"{name}{s}.onnx", size_bytes=1, accuracy=acc,
                           latency={"cpu": {"ms": ms, "median_ms": ms, "p10_ms": ms, "p90_ms": ms}})
                 for s, acc, ms in ((".fp32", 0.9, fp32_ms), (".int8", 0.8, int8_ms))]
        return ModelResult(name=name, arch={"resolution": 28, "depth": [2]}, macs=1, params=1, predicted_accuracy=0.8,
                           predicted_latency_ms={"cpu": 1.0}, fp32=files[0], int8=files[1], precision=precision)

    int8, fp32 = result("q", "int8", 2.0, 1.0), result("f", "fp32", 1.0, 0.5)
    assert latency_agreement([int8], "cpu")["mape_pct"] == pytest.approx(0.0)   # 1.0 predicted, INT8 file 1.0
    assert latency_agreement([fp32], "cpu")["mape_pct"] == pytest.approx(0.0)   # 1.0 predicted, FP32 file 1.0
    assert accuracy_agreement([int8])["mae"] == pytest.approx(0.0)
    assert accuracy_agreement([fp32])["mae"] == pytest.approx(0.1)
    text = render_markdown([int8, fp32], ["cpu"], {}, plot_name=None)
    assert "| q | INT8 | 1.000 | 1.000 |" in text and "| f | FP32 | 1.000 | 1.000 |" in text


def test_format_2_records_load_as_fp32_and_an_unknown_precision_is_refused(tmp_path):
    record = FrontRecord(arch={"kernel": [3], "expand": [3], "depth": [2], "resolution": 28}, accuracy=0.9,
                         latency_ms={"cpu": 1.0}, macs=1, params=1, precision="int8")
    old = {k: v for k, v in record.to_dict().items() if k != "precision"}
    (tmp_path / "front.json").write_text(json.dumps([{**old, "format": 2}, record.to_dict()]))
    assert [r.precision for r in read_front(tmp_path / "front.json")] == ["fp32", "int8"]
    (tmp_path / "front.json").write_text(json.dumps([{**record.to_dict(), "precision": "fp16"}]))
    with pytest.raises(Exception, match="record 0.*fp16"):
        read_front(tmp_path / "front.json")
