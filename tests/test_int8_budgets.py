"""experiments/int8_budgets.py end to end on stand-ins (issue 21 part 4): two searches, one export of
both precisions' picks timed together on a fast local CPU profile, one row per budget."""

from __future__ import annotations

import json

import pytest

from export_fixtures import random_checkpoint
from search_fakes import FakeTable, fake_search_env
from experiment_script import load_experiment

SPACE = "fmnist-mbv3"
PROFILE = """name: quick-cpu
backend: onnxruntime
provider: CPUExecutionProvider
threads: 1
batch_size: 1
warmup: 1
repeats: 2
timeout_s: 60
"""


def _experiment():
    return load_experiment("int8_budgets")


def test_best_fp32_and_int8_model_per_budget_are_exported_and_measured(tmp_path, monkeypatch, capsys):
    env = fake_search_env(tmp_path, monkeypatch)
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "quick-cpu.yaml").write_text(PROFILE)
    env["make_table"]("quick-cpu", 1.0, 0.05)
    env["make_table"]("quick-cpu", 0.55, 0.05, precision="int8")
    for precision, meta in (("fp32", {}), ("int8", {"precision": "int8"})):
        path = tmp_path / "predictors" / SPACE / ("int8" if precision == "int8" else "") / "accuracy_xgb.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta))
    supernet = random_checkpoint(tmp_path)
    experiment = _experiment()
    out = tmp_path / "int8_budgets.json"
    assert experiment.main(["--supernet", str(supernet), "--device", "quick-cpu", "--evaluations", "300",
                            "--calib-images", "16", "--eval-images", "20", "--runs", str(tmp_path / "runs"),
                            "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    budgets = result["budgets_ms"]
    assert len(budgets) == 3 and budgets == sorted(budgets)
    fp32_table = FakeTable(SPACE, 1.0, 0.05)
    from hwnas.arch import largest_architecture, smallest_architecture
    from hwnas.encoding import GeneLayout

    ends = [float(fp32_table.predict_genes(GeneLayout(SPACE).encode(a))[0])
            for a in (smallest_architecture(SPACE), largest_architecture(SPACE))]
    # inside the range of the space: quartiles of a front under the largest subnet's latency
    assert ends[0] <= budgets[0] < budgets[2] <= ends[1]
    picks = {precision: {row[precision]["name"] for row in result["rows"]} for precision in ("fp32", "int8")}
    assert len(picks["fp32"]) == 3  # three budgets, three different FP32 models
    for row in result["rows"]:
        for precision in ("fp32", "int8"):
            model = row[precision]
            assert model["status"] == "ok" and model["predicted"]["latency_ms"] <= row["budget_ms"]
            assert model["measured"]["latency_ms"] > 0 and 0 <= model["measured"]["accuracy"] <= 1
    assert "INT8 acc" in capsys.readouterr().out


def test_auto_budgets_are_the_quartiles_of_the_front_latencies():
    """Each budget admits a different part of the front, so each can pick a different model."""
    from hwnas.search.front import FrontRecord

    arch = {"kernel": [3], "expand": [3], "depth": [1], "resolution": 32}
    front = [FrontRecord(arch, 0.9 + ms / 100, {"dev": ms}, 1, 1) for ms in (5.0, 1.0, 3.0, 2.0, 4.0, 4.0)]
    assert _experiment().auto_budgets(front, "dev") == [2.0, 3.0, 4.0]
    with pytest.raises(SystemExit, match="--budgets"):
        _experiment().auto_budgets(front[:2], "dev")
