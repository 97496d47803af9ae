"""BN recalibration and evaluation of subnets.

Shared-weight supernets keep one set of BN statistics for every subnet, which is wrong for all
but the one last trained. Before any subnet is evaluated its BN statistics are re-estimated on a
few hundred to a few thousand training images (OFA's ``set_running_statistics``): reset, then an
exact cumulative average over the calibration batches.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.data import Split, resize_batch


def _normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def iterate(split: Split, resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
            batch_size: int, device: torch.device | str = "cpu"):
    """Ordered, normalised, resized batches of a split (no augmentation)."""
    for start in range(0, len(split.labels), batch_size):
        x = split.images[start:start + batch_size].to(device, non_blocking=True)
        y = split.labels[start:start + batch_size].to(device, non_blocking=True)
        yield resize_batch(_normalise(x, mean, std), resolution), y


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn_on(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate ``model``'s BatchNorm statistics on already prepared input ``batches`` (in place).

    Each BN normalises its calibration batch with that batch's own statistics (train mode), as in
    training, and accumulates an exact cumulative average of them; the rest runs in eval mode.
    """
    bns = batch_norms(model)
    saved = [(bn.momentum, bn.training) for bn in bns]
    was_training = model.training
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all calibration batches
        bn.train()
    for x in batches:
        model(x)
    for bn, (momentum, training) in zip(bns, saved):
        bn.momentum = momentum
        bn.train(training)
    model.train(was_training)
    return model


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: Split, resolution: int, mean: tuple[float, ...],
                   std: tuple[float, ...], batch_size: int = 500, device: torch.device | str = "cpu") -> nn.Module:
    """Re-estimate every BatchNorm's running statistics of ``model`` on ``images`` (in place)."""
    return recalibrate_bn_on(model, (x for x, _ in iterate(images, resolution, mean, std, batch_size, device)))


@torch.no_grad()
def evaluate_on(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """Top-1 accuracy (fraction) and mean cross-entropy of ``model`` on prepared ``(x, y)`` batches."""
    was_training = model.training
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    for x, y in batches:
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    model.train(was_training)
    return correct / max(n, 1), loss_sum / max(n, 1)


def evaluate(model: nn.Module, split: Split, resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
             batch_size: int = 1000, device: torch.device | str = "cpu") -> tuple[float, float]:
    """Top-1 accuracy (fraction) and mean cross-entropy loss of ``model`` on ``split``."""
    return evaluate_on(model, iterate(split, resolution, mean, std, batch_size, device))
