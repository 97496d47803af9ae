"""``hwnas export --finetune-epochs`` / ``--retrain-epochs``: a subnet fine-tuned from the supernet's weights, or
retrained from scratch, then exported; ``--train-top`` trains only the most accurate models."""

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
    assert "holds a training run with other options" in capsys.readouterr().err


def test_export_retrains_the_subnet_from_scratch_with_its_seed(tmp_path):
    ckpt = _checkpoint(tmp_path)
    arch = smallest_architecture("fmnist-mbv3")
    (tmp_path / "arch.json").write_text(arch.to_json())
    out = tmp_path / "model.onnx"
    assert main(["export", "--arch", str(tmp_path / "arch.json"), "--supernet", str(ckpt), "--out", str(out),
                 "--retrain-epochs", "1", "--seed", "1", "--calib-images", "32", "--eval-images", "40",
                 "--parity-images", "8", "--no-progress"]) == 0
    folder = tmp_path / "model.retrain"
    config = json.loads((folder / "train_config.json").read_text())
    assert (config["init_from"], config["seed"], config["split_seed"], config["epochs"]) == ("", 1, 0, 1)
    assert read_metadata(out)["supernet_sha256"] == file_sha256(folder / "supernet.safetensors")
    before, _ = load_supernet(ckpt)
    after, _ = load_supernet(folder / "supernet.safetensors")
    unused = [n for (n, p), q in zip(after.named_parameters(), before.parameters())
              if n.startswith("blocks.3.") and not torch.equal(p, q)]
    assert unused  # blocks the subnet never runs hold seed 1's random weights, not the supernet's


def test_training_options_are_checked():
    with pytest.raises(ConfigError, match="finetune-epochs must be >= 0"):
        ExportSettings(out=".", finetune_epochs=-1)
    with pytest.raises(ConfigError, match="finetune-lr positive"):
        ExportSettings(out=".", finetune_lr=0)
    with pytest.raises(ConfigError, match="retrain-epochs must be >= 0"):
        ExportSettings(out=".", retrain_epochs=-1)
    with pytest.raises(ConfigError, match="exclude each other"):
        ExportSettings(out=".", finetune_epochs=2, retrain_epochs=2)
    with pytest.raises(ConfigError, match="train-top must be a positive"):
        ExportSettings(out=".", retrain_epochs=2, train_top=0)


def test_train_top_takes_the_most_accurate_models_by_prediction():
    from hwnas.export.pipeline import Chosen, trained_names
    from hwnas.search.front import FrontRecord

    def chosen(name, accuracy, ms):
        return Chosen(name, FrontRecord(arch={}, accuracy=accuracy, latency_ms={"cpu": ms}, macs=1, params=1))

    models = [chosen("a", 0.90, 0.1), chosen("b", 0.93, 0.3), chosen("c", 0.92, 0.2), chosen("d", 0.93, 0.25)]
    assert trained_names(models, None) == {"a", "b", "c", "d"}
    assert trained_names(models, 1) == {"b"}  # a tie goes to the slower model, as the front ranks it
    assert trained_names(models, 3) == {"b", "c", "d"}


def test_the_report_says_which_models_were_fine_tuned():
    from hwnas.export.report import ModelResult, render_markdown

    record = {"mode": "fine-tune", "epochs": 6, "lr": 1e-3, "seed": 0, "init_from": "s.safetensors", "distilled": True, "train_seconds": 375.0,
              "val_accuracy": 0.9372, "val_accuracy_by_epoch": [0.9324, 0.9372], "folder": "out/finetune/front006"}
    tuned = ModelResult(name="front006", arch={"resolution": 28}, macs=1, params=1, trained=record)
    retrained = ModelResult(name="front009", arch={"resolution": 28}, macs=1, params=1,
                            trained={**record, "mode": "retrain", "epochs": 18, "lr": 3e-3, "distilled": False, "seed": 0})
    plain = ModelResult(name="front012", arch={"resolution": 28}, macs=1, params=1)
    text = render_markdown([tuned, retrained, plain], [], {}, plot_name=None)
    section = text.split("## Training before export")[1]
    assert "| front006 | fine-tune | 6 | 0.001 | 0 | yes | 375 | 93.72%" in section and "| front012 |" not in section
    assert "| front009 | retrain | 18 | 0.003 | 0 | no | 375 | 93.72%" in section
    assert "## Training before export" not in render_markdown([plain], [], {}, plot_name=None)
    assert ModelResult.from_dict(json.loads(json.dumps(asdict(tuned)))).trained == record
    old = {k: v for k, v in asdict(plain).items() if k != "trained"}  # a summary from before retraining existed
    assert ModelResult.from_dict({**old, "finetuned": {"epochs": 6}}).trained == {"mode": "fine-tune", "epochs": 6}


def _export_a_search(tmp_path, monkeypatch, *options: str):
    """A real search (stand-in predictor and tables) exported with ``options``; returns the export folder."""
    from search_fakes import fake_search_env

    env = fake_search_env(tmp_path, monkeypatch)
    assert main(["search", "--space", "fmnist-mbv3", "--predictor", env["predictor"], "--evaluations", "300",
                 "--seed", "1", "--out", str(tmp_path / "run"), "--no-progress", "--no-plot", "--device", env["a"],
                 "--budget-ms", "1.5"]) == 0
    out = tmp_path / "exp"
    assert main(["export", str(tmp_path / "run"), "--supernet", str(_checkpoint(tmp_path)), "--out", str(out),
                 "--no-measure", "--calib-images", "16", "--eval-images", "20", "--parity-images", "4",
                 "--no-progress", *options]) == 0
    return out


def test_a_search_runs_export_fine_tunes_each_pick_and_reports_it(tmp_path, monkeypatch):
    out = _export_a_search(tmp_path, monkeypatch, "--pick", "budget", "--finetune-epochs", "1")
    summary = json.loads((out / "summary.json").read_text())
    (model,) = summary["models"]
    assert model["status"] == "ok" and model["trained"]["epochs"] == 1 and model["trained"]["mode"] == "fine-tune"
    assert (out / "finetune" / model["name"] / "supernet.safetensors").exists()
    report = (out / "report.md").read_text()
    assert "## Training before export" in report and "fine-tuning" in report


def test_a_search_runs_export_retrains_only_the_most_accurate_model(tmp_path, monkeypatch):
    out = _export_a_search(tmp_path, monkeypatch, "--pick", "2", "--retrain-epochs", "1", "--train-top", "1")
    models = json.loads((out / "summary.json").read_text())["models"]
    best = max(models, key=lambda m: m["predicted_accuracy"])
    assert len(models) == 2 and [m["name"] for m in models if m["trained"]] == [best["name"]]
    assert best["trained"]["mode"] == "retrain" and (out / "retrain" / best["name"] / "supernet.safetensors").exists()
    assert not (out / "finetune").exists() and "retraining" in (out / "report.md").read_text()


def test_training_refuses_sources_it_cannot_train_and_names_the_fix():
    from types import SimpleNamespace

    from hwnas.export.subnet_training import training_config

    arch = smallest_architecture("fmnist-mbv3")
    ofa = SimpleNamespace(ofa=True, extra={})
    with pytest.raises(ConfigError, match="--retrain-epochs needs an hwnas supernet checkpoint"):
        training_config(ofa, arch, ExportSettings(out=".", retrain_epochs=1))
    with pytest.raises(ConfigError, match="--finetune-epochs needs an hwnas supernet checkpoint"):
        training_config(ofa, arch, ExportSettings(out=".", finetune_epochs=1))
    unlabelled = SimpleNamespace(ofa=False, extra={}, net=SimpleNamespace(space=SimpleNamespace(name="fmnist-mbv3")))
    with pytest.raises(ConfigError, match="pass --data"):
        training_config(unlabelled, arch, ExportSettings(out=".", retrain_epochs=1))
