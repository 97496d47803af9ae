"""``hwnas export --finetune-epochs``: a subnet fine-tuned from the supernet's weights, then exported."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from hwnas.arch import smallest_architecture
from hwnas.cli import main
from hwnas.data import FASHION_MNIST_FILES
from hwnas.errors import ConfigError
from hwnas.export.onnx_export import read_metadata
from hwnas.export.settings import ExportSettings
from hwnas.supernet.checkpoint import file_sha256, load_supernet, save_supernet
from hwnas.supernet.network import ElasticMobileNetV3
from export_fixtures import write_idx

torch.set_num_threads(1)


def _checkpoint(tmp_path):
    """A random fmnist-mbv3 supernet trained 'on' a 600-image IDX data set (two batches of 256 a epoch)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "idx"
    root.mkdir()
    for part, n in (("train", 600), ("test", 40)):
        write_idx(root / FASHION_MNIST_FILES[f"{part}_images"], rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / FASHION_MNIST_FILES[f"{part}_labels"], np.arange(n) % 10)
    torch.manual_seed(0)
    return save_supernet(tmp_path / "supernet.safetensors", ElasticMobileNetV3("fmnist-mbv3").eval(),
                         extra={"train_config": {"dataset": str(root), "val_size": 20, "seed": 0}})


def test_export_fine_tunes_the_subnet_first_and_reuses_a_finished_fine_tune(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path)
    arch = smallest_architecture("fmnist-mbv3")
    (tmp_path / "arch.json").write_text(arch.to_json())
    out = tmp_path / "model.onnx"
    argv = ["export", "--arch", str(tmp_path / "arch.json"), "--supernet", str(ckpt), "--out", str(out),
            "--finetune-epochs", "1", "--calib-images", "32", "--eval-images", "40", "--parity-images", "8",
            "--no-progress"]
    assert main(argv) == 0
    tuned = tmp_path / "model.finetune" / "supernet.safetensors"
    assert read_metadata(out)["supernet_sha256"] == file_sha256(tuned) != file_sha256(ckpt)
    before, _ = load_supernet(ckpt)
    after, _ = load_supernet(tuned)
    moved = [n for (n, p), q in zip(after.named_parameters(), before.parameters()) if not torch.equal(p, q)]
    assert moved and not any(n.startswith("blocks.3.") for n in moved)  # only the subnet's weights train
    log = (tmp_path / "model.finetune" / "train_log.jsonl").read_text()

    assert main(argv + ["--overwrite"]) == 0  # a finished fine-tune is reused, not run again
    assert (tmp_path / "model.finetune" / "train_log.jsonl").read_text() == log
    assert main(argv + ["--overwrite", "--finetune-lr", "0.01"]) == 2
    assert "holds a fine-tune with other options" in capsys.readouterr().err


def test_fine_tuning_options_are_checked():
    with pytest.raises(ConfigError, match="finetune-epochs must be >= 0"):
        ExportSettings(out=".", finetune_epochs=-1)
    with pytest.raises(ConfigError, match="finetune-lr positive"):
        ExportSettings(out=".", finetune_lr=0)


def test_the_report_says_which_models_were_fine_tuned():
    from hwnas.export.report import ModelResult, render_markdown

    record = {"epochs": 6, "lr": 1e-3, "init_from": "s.safetensors", "distilled": True, "train_seconds": 375.0,
              "val_accuracy": 0.9372, "val_accuracy_by_epoch": [0.9324, 0.9372], "folder": "out/finetune/front006"}
    tuned = ModelResult(name="front006", arch={"resolution": 28}, macs=1, params=1, finetuned=record)
    plain = ModelResult(name="front012", arch={"resolution": 28}, macs=1, params=1)
    text = render_markdown([tuned, plain], [], {}, plot_name=None)
    assert "| front006 | 6 | 0.001 | yes | 375 | 93.72%" in text and "| front012 | 6" not in text
    assert "## Fine-tuning" not in render_markdown([plain], [], {}, plot_name=None)
    assert ModelResult.from_dict(json.loads(json.dumps(asdict(tuned)))).finetuned == record


def test_a_search_runs_export_fine_tunes_each_pick_and_reports_it(tmp_path, monkeypatch):
    from search_fakes import fake_search_env

    env = fake_search_env(tmp_path, monkeypatch)
    assert main(["search", "--space", "fmnist-mbv3", "--predictor", env["predictor"], "--evaluations", "300",
                 "--seed", "1", "--out", str(tmp_path / "run"), "--no-progress", "--no-plot", "--device", env["a"],
                 "--budget-ms", "1.5"]) == 0
    out = tmp_path / "exp"
    assert main(["export", str(tmp_path / "run"), "--pick", "budget", "--supernet", str(_checkpoint(tmp_path)),
                 "--out", str(out), "--no-measure", "--calib-images", "16", "--eval-images", "20", "--parity-images",
                 "4", "--finetune-epochs", "1", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (model,) = summary["models"]
    assert model["status"] == "ok" and model["finetuned"]["epochs"] == 1
    assert (out / "finetune" / model["name"] / "supernet.safetensors").exists()
    report = (out / "report.md").read_text()
    assert "## Fine-tuning before export" in report and "fine-tuning" in report
