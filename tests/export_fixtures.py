"""A tiny supernet checkpoint and data set on disk, so ``hwnas export`` runs for real in tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from hwnas.data import FASHION_MNIST_FILES
from hwnas.supernet.checkpoint import save_supernet
from hwnas.supernet.network import ElasticMobileNetV3


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_idx_dataset(root: Path) -> Path:
    """A tiny data set in Fashion-MNIST's IDX format (random images), so load_dataset reads it."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", 60), ("test", 20)):
        write_idx(root / FASHION_MNIST_FILES[f"{part}_images"], rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / FASHION_MNIST_FILES[f"{part}_labels"], np.arange(n) % 10)
    return root


def random_checkpoint(tmp_path: Path, net: ElasticMobileNetV3 | None = None) -> Path:
    """A randomly initialised fmnist-mbv3 supernet whose metadata points at a tiny IDX data set."""
    if net is None:
        torch.manual_seed(0)
        net = ElasticMobileNetV3("fmnist-mbv3").eval()
    data = write_idx_dataset(tmp_path / "idx")
    return save_supernet(tmp_path / "supernet.safetensors", net,
                         extra={"train_config": {"dataset": str(data), "val_size": 10, "seed": 0}})
