"""Tiny synthetic image data sets shared by the training and distributed tests."""

from __future__ import annotations

import torch

from hwnas.data import Dataset, Split


def tiny_dataset(n_train: int = 48, n_val: int = 16, size: int = 28) -> Dataset:
    """Noise images whose class sets their overall brightness: learnable in a few steps."""
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        labels = torch.arange(n) % 10
        images = torch.randint(0, 8, (n, 1, size, size), generator=g, dtype=torch.uint8)
        images += (labels * 24).to(torch.uint8).view(n, 1, 1, 1)  # the learnable signal
        return Split(images, labels)

    return Dataset("tiny", split(n_train), split(n_val), split(n_val), 10, 1,
                   tuple(str(i) for i in range(10)), (0.2,), (0.3,))
