"""experiments/proxy_signal.py on a tiny random supernet and tiny images (issue 15, item 3)."""

from __future__ import annotations

import json

import pytest
import torch

from hwnas.accuracy.collect import CollectConfig, collect, read_accuracy_data
from hwnas.accuracy.predictor import AccuracyPredictor
from hwnas.data import Dataset, Split
from hwnas.errors import DataError
from hwnas.supernet.checkpoint import save_supernet
from hwnas.supernet.network import ElasticMobileNetV3
from experiment_script import load_experiment

SPACE = "fmnist-mbv3"


def _experiment():
    return load_experiment("proxy_signal")


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                 torch.randint(0, 10, (n,), generator=g))


def test_proxy_is_scored_beside_a_same_cost_label_and_the_predictor(tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ckpt = str(save_supernet(tmp_path / "s.safetensors", ElasticMobileNetV3(SPACE)))
    data = Dataset(name="tiny", train=_split(48, 0), val=_split(64, 1), test=_split(8, 2), num_classes=10,
                   in_channels=1, class_names=tuple(str(i) for i in range(10)), mean=(0.5,), std=(0.29,))
    collect(CollectConfig(supernet=ckpt, n=20, out=str(tmp_path / "data"), val_images=0, calib_images=32,
                          batch_size=24, device="cpu", threads=1), dataset=data, progress=False)
    labels = read_accuracy_data(tmp_path / "data" / "dataset.jsonl")
    AccuracyPredictor(SPACE, n_trials=0, n_jobs=1).fit(labels.genes, labels.y).save(tmp_path / "p.json")
    argv = ["--supernet", ckpt, "--data", str(tmp_path / "data" / "dataset.jsonl"), "--predictor",
            str(tmp_path / "p.json"), "--n", "8", "--images", "16", "--threads", "1", "--batch-size", "24",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out.json")]
    exp = _experiment()
    assert exp.main(argv, dataset=data) == 0
    res = json.loads((tmp_path / "out.json").read_text())
    assert res["n"] == 8 and len(res["signals"]) == 3
    proxy, cheap, predictor = res["signals"]
    assert "training images" in proxy["signal"] and "validation images" in cheap["signal"]
    assert "other 12 subnets" in predictor["signal"]  # the probe subnets are left out of its training
    assert all(-1 <= s["kendall_tau"] <= 1 and s["seconds_per_subnet"] > 0 for s in res["signals"])
    assert res["kept"] == (proxy["kendall_tau"] > max(cheap["kendall_tau"], predictor["kendall_tau"]))
    # labels of another stream cannot be joined: named, not a KeyError
    with pytest.raises(DataError, match="not in"):
        exp.main(argv[:-4] + ["--work", str(tmp_path / "work2"), "--out", str(tmp_path / "o2.json"),
                              "--n", "24"], dataset=data)
