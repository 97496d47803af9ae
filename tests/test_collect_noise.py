"""The noise protocol of `hwnas collect --repeat-calibration`: validation halves recorded (issue 15)."""

from __future__ import annotations

import pytest
import torch

from hwnas.accuracy.collect import CollectConfig, collect, split_halves
from hwnas.atomic_io import read_jsonl
from hwnas.data import Dataset, Split
from hwnas.errors import ConfigError
from hwnas.supernet.checkpoint import save_supernet
from hwnas.supernet.network import ElasticMobileNetV3

SPACE = "fmnist-mbv3"


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                 torch.randint(0, 10, (n,), generator=g))


@pytest.mark.parametrize("sizes", [[24, 24, 16], [64], [5, 6], [1]])
def test_split_halves_cuts_images_in_order_without_loss(sizes):
    batches, start = [], 0
    for n in sizes:
        idx = torch.arange(start, start + n)
        batches.append((idx.float(), idx))
        start += n
    first, second = split_halves(batches)
    got = [int(i) for _, y in first for i in y], [int(i) for _, y in second for i in y]
    assert got[0] + got[1] == list(range(start))
    assert len(got[0]) == start // 2


def _tiny(val_seed: int = 1) -> Dataset:
    return Dataset(name="tiny", train=_split(48, 0), val=_split(64, val_seed), test=_split(8, 2), num_classes=10,
                   in_channels=1, class_names=tuple(str(i) for i in range(10)), mean=(0.5,), std=(0.29,))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return str(save_supernet(tmp_path_factory.mktemp("ckpt") / "s.safetensors", ElasticMobileNetV3(SPACE)))


def test_repeat_collection_records_halves_without_changing_the_label(tmp_path, ckpt):
    data = _tiny()

    def run(out: str, repeat: bool) -> list[dict]:
        cfg = CollectConfig(supernet=ckpt, n=3, out=str(tmp_path / out), val_images=0, calib_images=32,
                            batch_size=24, device="cpu", threads=1, repeat_calibration=repeat)
        collect(cfg, dataset=data, progress=False)
        return read_jsonl(tmp_path / out / "dataset.jsonl")

    plain, repeat = run("plain", False), run("repeat", True)
    for p, r in zip(plain, repeat):
        assert "accuracy_half1" not in p
        assert r["accuracy"] == pytest.approx(p["accuracy"], abs=1e-6)
        assert r["loss"] == pytest.approx(p["loss"], rel=1e-4)
        assert r["accuracy"] == pytest.approx((r["accuracy_half1"] + r["accuracy_half2"]) / 2, abs=2e-6)
        assert 0 <= r["accuracy_2"] <= 1


def test_proxy_loss_is_recorded_from_training_images_only(tmp_path, ckpt):
    data, broken_val = _tiny(), _tiny(val_seed=9)

    def run(out: str, dataset: Dataset) -> list[dict]:
        cfg = CollectConfig(supernet=ckpt, n=2, out=str(tmp_path / out), val_images=0, calib_images=32,
                            proxy_images=16, batch_size=24, device="cpu", threads=1, repeat_calibration=True)
        collect(cfg, dataset=dataset, progress=False)
        return read_jsonl(tmp_path / out / "dataset.jsonl")

    a, b = run("a", data), run("b", broken_val)
    assert all(r["proxy_loss"] > 0 for r in a)
    # other validation images change the labels but not the proxy: it never sees them
    assert [r["proxy_loss"] for r in a] == [r["proxy_loss"] for r in b]
    assert [r["accuracy"] for r in a] != [r["accuracy"] for r in b] or [r["loss"] for r in a] != [r["loss"] for r in b]


def test_proxy_images_beyond_the_calibration_set_are_refused():
    with pytest.raises(ConfigError, match="--proxy-images"):
        CollectConfig(supernet="x", n=1, calib_images=10, proxy_images=20)
