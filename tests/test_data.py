"""Tests for hwnas.data: IDX parsing, Fashion-MNIST, image folders, splits and on-device batching."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwnas import data
from hwnas.errors import DataError
from hwnas.data import (DeviceLoader, Split, calibration_subset, load_dataset, read_idx,
                        resize_batch, stratified_holdout)

torch.set_num_threads(1)


# ----------------------------------------------------------------------------------- helpers

def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
            np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_png(path: Path, value: int, size=(8, 8), mode="L") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, value // 2)
    Image.new(mode, size, color).save(path)


def make_class_folder(root: Path, counts: dict[str, int], size=(8, 8), mode="L") -> None:
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_png(root / name / f"{i:03d}.png", value=20 * c + i, size=size, mode=mode)


def make_loader_split(n=10, c=1, size=6) -> Split:
    images = torch.arange(n * c * size * size, dtype=torch.int64).remainder(251).to(torch.uint8)
    return Split(images.view(n, c, size, size), torch.arange(n) % 3)


# ----------------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_roundtrip(tmp_path, compress, dtype):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / "a.idx", array, compress))
    assert out.shape == (2, 3, 4)
    assert out.dtype == np.dtype(dtype)  # native byte order, not big-endian
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 1  # writable


def test_read_idx_labels_1d(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", labels, True)), labels)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_truncated_payload(tmp_path, compress):
    raw = idx_bytes(np.zeros((4, 5, 5), dtype=np.uint8))[:-7]
    path = tmp_path / "trunc.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DataError, match=r"trunc\.idx.*truncated"):
        read_idx(path)


def test_read_idx_extra_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"xx")
    with pytest.raises(DataError, match="longer than its header"):
        read_idx(path)


@pytest.mark.parametrize("raw, message", [
    (b"\x08\x03\x00\x01" + b"\x00" * 8, "bad magic"),
    (b"\x00\x00\x42\x01" + b"\x00\x00\x00\x01" + b"\x00", "unknown dtype code 0x42"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00", "inside its header"),
    (b"\x00\x00", "too short"),
])
def test_read_idx_malformed(tmp_path, raw, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert "bad.idx" in str(info.value)


def test_read_idx_corrupt_gzip_and_missing(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, dtype=np.uint8)))[:20])
    with pytest.raises(DataError, match="x.gz.*gzip"):
        read_idx(path)
    with pytest.raises(DataError, match="nope.gz"):
        read_idx(tmp_path / "nope.gz")


# ----------------------------------------------------------------------------------- Fashion-MNIST (synthetic)

def make_fake_fmnist(root: Path, n_train=200, n_test=50) -> None:
    rng = np.random.default_rng(0)
    files = data.FASHION_MNIST_FILES
    write_idx(root / files["train_images"], rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), True)
    write_idx(root / files["train_labels"], (np.arange(n_train) % 10).astype(np.uint8), True)
    write_idx(root / files["test_images"], rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), True)
    write_idx(root / files["test_labels"], (np.arange(n_test) % 10).astype(np.uint8), True)


def test_fashion_mnist_missing_names_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv(data.FASHION_MNIST_ENV, str(tmp_path / "absent"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
        load_dataset("fashion-mnist")
    assert "HWNAS_FASHION_MNIST_DIR" in str(info.value) and "absent" in str(info.value)


def test_fashion_mnist_env_override_and_options(tmp_path, monkeypatch):
    make_fake_fmnist(tmp_path)
    monkeypatch.setenv(data.FASHION_MNIST_ENV, str(tmp_path))
    ds = load_dataset("fashion-mnist", val_size=40, seed=3, in_channels=3, image_size=32)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (160, 40, 50)
    assert ds.train.images.shape[1:] == (3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert torch.equal(ds.train.images[:, 0], ds.train.images[:, 2])  # gray replicated
    assert torch.bincount(ds.val.labels, minlength=10).tolist() == [4] * 10  # stratified
    assert len(ds.mean) == len(ds.std) == 3 and ds.class_names[0] == "T-shirt/top"
    again = load_dataset(str(tmp_path), val_size=40, seed=3, in_channels=3, image_size=32)  # folder of IDX files
    assert torch.equal(again.val.labels, ds.val.labels) and torch.equal(again.val.images, ds.val.images)
    with pytest.raises(DataError, match="official test set"):
        load_dataset("fashion-mnist", test_size=0.2)


def test_fashion_mnist_mismatched_files(tmp_path, monkeypatch):
    make_fake_fmnist(tmp_path)
    write_idx(tmp_path / data.FASHION_MNIST_FILES["test_labels"], np.zeros(7, dtype=np.uint8), True)
    with pytest.raises(DataError, match="do not belong together"):
        data.load_fashion_mnist(tmp_path)


REAL = data.FASHION_MNIST_DEFAULT_DIR


@pytest.mark.skipif(not (REAL / data.FASHION_MNIST_FILES["train_images"]).is_file(),
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv(data.FASHION_MNIST_ENV, raising=False)
    ds = load_dataset("fashion-mnist")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (55000, 5000, 10000)
    assert ds.train.images.shape[1:] == (1, 28, 28) and ds.in_channels == 1 and ds.num_classes == 10
    for split in (ds.train, ds.val, ds.test):
        assert split.labels.min() == 0 and split.labels.max() == 9
    assert torch.bincount(ds.val.labels, minlength=10).min() > 0  # every class in val
    assert 0.25 < ds.mean[0] < 0.32 and 0.32 < ds.std[0] < 0.38  # known Fashion-MNIST statistics


# ----------------------------------------------------------------------------------- image folders

def test_flat_folder_split(tmp_path):
    make_class_folder(tmp_path / "pets", {"cat": 10, "dog": 10, "fox": 10})
    ds = load_dataset(tmp_path / "pets", seed=1)
    assert ds.name == "pets" and ds.class_names == ("cat", "dog", "fox")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (24, 3, 3)
    for split in (ds.val, ds.test):
        assert sorted(split.labels.tolist()) == [0, 1, 2]  # stratified: one per class
    assert ds.in_channels == 1 and ds.train.images.shape[1:] == (1, 8, 8)
    # labels match the folder the pixels came from (value 20*c + i)
    assert torch.all(ds.train.images[:, 0, 0, 0] // 20 == ds.train.labels)
    again = load_dataset(tmp_path / "pets", seed=1)
    assert torch.equal(again.val.images, ds.val.images) and torch.equal(again.test.labels, ds.test.labels)
    other = load_dataset(tmp_path / "pets", seed=2)
    assert not torch.equal(other.val.images, ds.val.images)


def test_split_folder_layout_rgb_resize(tmp_path):
    make_class_folder(tmp_path / "train", {"a": 6, "b": 4}, size=(20, 12), mode="RGB")
    make_class_folder(tmp_path / "test", {"a": 2, "b": 3}, size=(20, 12), mode="RGB")
    ds = load_dataset(tmp_path, val_size=2, image_size=16)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (8, 2, 5)
    assert ds.in_channels == 3 and ds.train.images.shape[1:] == (3, 16, 16)
    assert sorted(ds.test.labels.tolist()) == [0, 0, 1, 1, 1]
    gray = load_dataset(tmp_path, val_size=2, in_channels=1, image_size=10)
    assert gray.train.images.shape[1:] == (1, 10, 10) and len(gray.mean) == 1


def test_folder_mixed_sizes_need_image_size(tmp_path):
    write_png(tmp_path / "a" / "0.png", 1, size=(8, 8))
    write_png(tmp_path / "a" / "1.png", 1, size=(9, 9))
    for i in range(3):
        write_png(tmp_path / "b" / f"{i}.png", 2)
    with pytest.raises(DataError, match="image_size"):
        load_dataset(tmp_path, val_size=1, test_size=1)
    assert load_dataset(tmp_path, val_size=1, test_size=1, image_size=8).train.images.shape[-1] == 8


def test_folder_kept_on_disk_gives_the_same_split_and_decodes_only_what_is_asked(tmp_path, monkeypatch):
    """decode=False (export's mode): the same files in the same splits as decoding everything, but a
    subset decodes just its images; mixed sizes fall back to mixed_size instead of an error."""
    make_class_folder(tmp_path / "pets", {"cat": 10, "dog": 10, "fox": 10})
    full = load_dataset(tmp_path / "pets", seed=1)
    lazy = load_dataset(tmp_path / "pets", seed=1, decode=False)
    assert isinstance(lazy.test, data.FolderSplit) and isinstance(lazy.train, data.FolderSplit)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(lazy, name).labels, getattr(full, name).labels)
    decoded: list[int] = []
    real_load = data._load_images
    monkeypatch.setattr(data, "_load_images", lambda files, *a, **k: decoded.append(len(files)) or real_load(files, *a, **k))
    calib = calibration_subset(lazy.train, 5, seed=3)
    assert decoded == [5] and isinstance(calib, Split)
    assert torch.equal(calib.images, calibration_subset(full.train, 5, seed=3).images)
    assert torch.equal(calibration_subset(lazy.test, 100).images, full.test.images)  # all of a small split
    assert abs(lazy.mean[0] - full.mean[0]) < 1e-6  # 24 training images: the sample is all of them
    write_png(tmp_path / "pets" / "cat" / "big.png", 1, size=(12, 12))
    with pytest.raises(DataError, match="image_size"):
        load_dataset(tmp_path / "pets", decode=False)
    assert load_dataset(tmp_path / "pets", decode=False, mixed_size=6).train.image_size == (6, 6)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(tmp_path / "empty_root")
    make_class_folder(tmp_path / "ds", {"a": 3})
    (tmp_path / "ds" / "b").mkdir()
    with pytest.raises(DataError, match=r"class folder .*b has no images"):
        load_dataset(tmp_path / "ds")
    make_class_folder(tmp_path / "bad", {"a": 3, "b": 3})
    (tmp_path / "bad" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(tmp_path / "bad")


def test_folder_val_class_unknown_to_train(tmp_path):
    make_class_folder(tmp_path / "train", {"a": 4, "b": 4})
    make_class_folder(tmp_path / "val", {"c": 2})
    with pytest.raises(DataError, match="training folder lacks"):
        load_dataset(tmp_path)


# ----------------------------------------------------------------------------------- splitting

def test_stratified_holdout_properties():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    keep, held = stratified_holdout(labels, 20, seed=7)
    assert len(held) == 20 and len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == 100
    assert np.bincount(labels[held], minlength=4).tolist() == [10, 6, 3, 1]
    keep2, held2 = stratified_holdout(labels, 20, seed=7)
    assert np.array_equal(held, held2)
    assert not np.array_equal(held, stratified_holdout(labels, 20, seed=8)[1])
    with pytest.raises(DataError, match="at least one image per class"):
        stratified_holdout(np.array([0, 0, 1]), 2, seed=0)


def test_calibration_subset_fixed():
    split = make_loader_split(n=30)
    sub = calibration_subset(split, 8, seed=5)
    assert len(sub) == 8
    assert torch.equal(sub.images, calibration_subset(split, 8, seed=5).images)
    assert not torch.equal(sub.images, calibration_subset(split, 8, seed=6).images)
    assert len(calibration_subset(split, 100, seed=0)) == 30
    with pytest.raises(DataError):
        calibration_subset(split, 0)


# ----------------------------------------------------------------------------------- batching

def test_loader_shapes_and_normalisation():
    split = make_loader_split(n=10)
    mean, std = data.channel_stats(split.images)
    loader = DeviceLoader(split, mean=mean, std=std, batch_size=4, device="cpu")
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (4, 1, 6, 6) and y.dtype == torch.int64
    allx = torch.cat([b[0] for b in batches])
    assert abs(allx.mean().item()) < 1e-5 and abs(allx.std(unbiased=False).item() - 1) < 1e-4
    expected = (split.images.float() / 255 - mean[0]) / std[0]
    torch.testing.assert_close(allx, expected)
    assert len(DeviceLoader(split, mean=mean, std=std, batch_size=4, drop_last=True, device="cpu")) == 2


def test_loader_resolution_change_and_channels_last():
    split = make_loader_split(n=8, c=3, size=12)
    loader = DeviceLoader(split, mean=(0.5,) * 3, std=(0.25,) * 3, batch_size=4, resolution=8,
                          channels_last=True, device="cpu")
    sizes = []
    for i, (x, _) in enumerate(loader):
        sizes.append(x.shape[-1])
        assert x.is_contiguous(memory_format=torch.channels_last)
        loader.resolution = 16  # elastic resolution: takes effect from the next batch
    assert sizes == [8, 16]
    x = torch.rand(2, 3, 12, 12)
    assert resize_batch(x, 12) is x
    expected = F.interpolate(x, size=(6, 6), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(resize_batch(x, 6), expected)
    with pytest.raises(DataError, match="mean/std"):
        DeviceLoader(split, mean=(0.5,), std=(0.25,), device="cpu")


def test_loader_shuffle_seeded():
    split = make_loader_split(n=20)

    def epochs(seed):
        loader = DeviceLoader(split, mean=(0.5,), std=(0.5,), batch_size=5, shuffle=True, seed=seed, device="cpu")
        return [torch.cat([y for _, y in loader]) for _ in range(2)], loader

    (a1, a2), loader = epochs(0)
    (b1, b2), _ = epochs(0)
    (c1, _), _ = epochs(1)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)  # reproducible
    assert not torch.equal(a1, a2) and not torch.equal(a1, c1)  # new order per epoch / seed
    assert sorted(a1.tolist()) == sorted(split.labels.tolist())  # a permutation
    # the images travel with their labels
    for x, y in loader:
        raw = torch.round((x * 0.5 + 0.5) * 255).to(torch.uint8)
        for img, label in zip(raw, y):
            hits = (split.images == img).flatten(1).all(1).nonzero().flatten()
            assert len(hits) == 1 and split.labels[hits[0]] == label


def test_augmentation_is_crop_of_padded_image_or_its_flip():
    split = make_loader_split(n=16, c=2, size=6)
    pad = 2
    loader = DeviceLoader(split, mean=(0.0, 0.0), std=(1 / 255, 1 / 255), batch_size=16, augment=True,
                          crop_padding=pad, seed=0, device="cpu")
    (x, _), = list(loader)
    assert x.shape == (16, 2, 6, 6)
    padded = F.pad(split.images.float(), (pad,) * 4)
    changed, flipped = 0, 0
    for i in range(16):
        candidates = {(dy, dx, f): (padded[i, :, dy:dy + 6, dx:dx + 6].flip(-1) if f
                                    else padded[i, :, dy:dy + 6, dx:dx + 6])
                      for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for f in (False, True)}
        matches = [k for k, v in candidates.items() if torch.equal(v, x[i])]
        assert matches, f"image {i} is not a padded crop (or its flip) of the original"
        changed += (2, 2, False) not in matches
        flipped += all(k[2] for k in matches)
    assert changed > 8 and 2 <= flipped <= 14  # random, not identity
    plain = DeviceLoader(split, mean=(0.0, 0.0), std=(1 / 255, 1 / 255), batch_size=16, augment=True,
                         crop_padding=0, hflip=False, device="cpu")
    torch.testing.assert_close(next(iter(plain))[0], split.images.float())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_on_gpu_matches_cpu():
    split = make_loader_split(n=20, c=3, size=8)
    kwargs = dict(mean=(0.4,) * 3, std=(0.2,) * 3, batch_size=6, shuffle=True, augment=True, resolution=12, seed=3)
    cpu = list(DeviceLoader(split, device="cpu", **kwargs))
    gpu = list(DeviceLoader(split, device="cuda", **kwargs))
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and yg.is_cuda
        assert torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xc, xg.cpu(), atol=1e-4, rtol=1e-4)


def test_bad_shape_options(tmp_path):
    make_class_folder(tmp_path, {"a": 3, "b": 3})
    with pytest.raises(DataError, match="in_channels"):
        load_dataset(tmp_path, in_channels=2)
    with pytest.raises(DataError, match="image_size"):
        load_dataset("fashion-mnist", image_size=0)
    with pytest.raises(DataError, match="val_size"):
        load_dataset(tmp_path, val_size=1.5)
