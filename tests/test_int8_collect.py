"""INT8 accuracy collection (issue 21): quantised labels beside FP32 ones, on a tiny data set.

Real export, ONNX Runtime static quantisation and evaluation of freshly initialised fmnist-mbv3
subnets, so the file runs in seconds.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from hwnas.accuracy.collect import (INT8_FIELD, INT8_LOSS_FIELD, CollectConfig, SubnetEvaluator, collect,
                                    collection_architectures, read_accuracy_data)
from hwnas.atomic_io import read_jsonl
from hwnas.cli import main as cli_main
from hwnas.errors import ConfigError, DataError
from hwnas.export.onnx_export import onnx_evaluate_on
from hwnas.supernet.checkpoint import load_supernet, save_supernet
from hwnas.supernet.network import ElasticMobileNetV3

from tiny_data import tiny_dataset  # noqa: E402 (tests/ is on sys.path)

SPACE = "fmnist-mbv3"


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return tiny_dataset(n_train=64, n_val=48)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    return str(save_supernet(tmp_path_factory.mktemp("ckpt") / "supernet.safetensors", ElasticMobileNetV3(SPACE)))


def _config(supernet: str, out, n: int, **kw) -> CollectConfig:
    return CollectConfig(supernet=supernet, n=n, out=str(out), val_images=0, calib_images=32, batch_size=20,
                         device="cpu", threads=1, precision="int8", int8_calib_images=32, **kw)


class OnnxFp32Evaluator(SubnetEvaluator):
    """Puts the FP32 ONNX model's labels where the INT8 ones go: the exported network and its ORT
    evaluation must reproduce the PyTorch label exactly (same BN statistics, same images)."""

    def int8_labels(self, sub, arch):
        return onnx_evaluate_on(self.deployable_onnx(sub, arch), self._int8_inputs(arch.resolution)[1])


def test_exported_subnet_is_the_network_the_fp32_label_measured(data, checkpoint):
    net, _ = load_supernet(checkpoint)
    evaluator = OnnxFp32Evaluator(net.eval(), data, _config(checkpoint, "unused", 3), torch.device("cpu"))
    for arch in collection_architectures(SPACE, 3, seed=1):
        rec = evaluator.measure(arch)
        assert rec[INT8_FIELD] == pytest.approx(rec["accuracy"], abs=1e-6)
        assert rec[INT8_LOSS_FIELD] == pytest.approx(rec["loss"], rel=1e-4)


def test_int8_collection_records_both_labels_and_resumes(data, checkpoint, tmp_path):
    first = collect(_config(checkpoint, tmp_path, 2), dataset=data, progress=False)
    assert (first["measured"], first["precision"]) == (2, "int8") and first["subnets_per_second"] > 0
    records = read_jsonl(tmp_path / "dataset.jsonl")
    for rec in records:
        assert 0 <= rec[INT8_FIELD] <= 1 and 0 <= rec["accuracy"] <= 1
        assert rec[INT8_LOSS_FIELD] != rec["loss"]  # the quantised model is another network
    meta = json.loads((tmp_path / "dataset.meta.json").read_text())
    assert meta["precision"] == "int8" and "per-channel" in meta["quantization"] and meta["int8_calib_images"] == 32
    labels = read_accuracy_data(tmp_path, target=INT8_FIELD)
    assert labels.y.tolist() == [r[INT8_FIELD] for r in records]

    again = collect(_config(checkpoint, tmp_path, 3), dataset=data, progress=False)
    assert (again["measured"], again["skipped"], again["total_records"]) == (1, 2, 3)
    assert read_jsonl(tmp_path / "dataset.jsonl")[:2] == records  # deterministic, untouched

    collect(_config(checkpoint, tmp_path / "redo", 2), dataset=data, progress=False)
    redo = read_jsonl(tmp_path / "redo" / "dataset.jsonl")  # fixed calibration images -> the same INT8 labels
    assert [(r[INT8_FIELD], r[INT8_LOSS_FIELD]) for r in redo] == [(r[INT8_FIELD], r[INT8_LOSS_FIELD]) for r in records]


def test_int8_and_fp32_labels_never_share_a_data_set(data, checkpoint, tmp_path):
    collect(replace(_config(checkpoint, tmp_path, 1), precision="fp32"), dataset=data, progress=False)
    with pytest.raises(DataError, match="precision"):
        collect(_config(checkpoint, tmp_path, 1), dataset=data, progress=False)
    collect(_config(checkpoint, tmp_path / "int8", 1), dataset=data, progress=False)
    with pytest.raises(DataError, match="int8_calib_images"):
        collect(replace(_config(checkpoint, tmp_path / "int8", 2), int8_calib_images=64), dataset=data,
                progress=False)


def test_bad_int8_options_are_refused():
    with pytest.raises(ConfigError, match="repeat-calibration"):
        CollectConfig(supernet="x", n=1, precision="int8", repeat_calibration=True)
    with pytest.raises(ConfigError, match="int8-calib-images"):
        CollectConfig(supernet="x", n=1, precision="int8", int8_calib_images=0)
    with pytest.raises(ConfigError, match="precision"):
        CollectConfig(supernet="x", n=1, precision="fp16")


def test_cli_collects_int8_labels(data, checkpoint, tmp_path, monkeypatch, capsys):
    import hwnas.data

    monkeypatch.setattr(hwnas.data, "load_dataset", lambda *a, **k: data)
    assert cli_main(["collect", "--supernet", checkpoint, "--n", "1", "--out", str(tmp_path), "--precision", "int8",
                     "--int8-calib-images", "32", "--calib-images", "32", "--val-images", "0", "--device", "cpu",
                     "--threads", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "measured 1 INT8 subnets" in out and "subnets/s" in out
    assert INT8_FIELD in read_jsonl(tmp_path / "dataset.jsonl")[0]
