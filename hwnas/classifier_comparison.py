"""Does one classifier beat another? The paired comparison on the same test images.

Two networks scored on the same test set are not two independent samples: they agree on most images,
and only the images one gets right and the other wrong (the discordant pairs) say which is better.
Comparing the two accuracies alone hides how small a difference the test set can resolve; on
Fashion-MNIST's 10,000 test images two ~94 % networks typically disagree on a few hundred images, so a
difference of a tenth of a point is far inside the noise.

:func:`compare_classifiers` gives the difference, McNemar's exact test (a two-sided binomial test on
the discordant images: the chance of a split at least this uneven if both networks were equally good)
and a 95 % confidence interval of the difference (normal approximation of the paired per-image
difference). It covers the test set's sampling only: a second training run of either network moves its
accuracy too (``experiments/paired_comparison.py`` reports both).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np

#: two-sided 95 % quantile of the standard normal distribution
Z95 = 1.959963984540054


@dataclass(frozen=True)
class PairedComparison:
    """Classifier A against classifier B on the same ``n`` images (accuracies and difference as fractions)."""

    n: int
    accuracy_a: float
    accuracy_b: float
    only_a: int  # images A classifies correctly and B does not
    only_b: int  # images B classifies correctly and A does not
    p_value: float  # McNemar's exact two-sided test
    ci95: tuple[float, float]  # of accuracy_a - accuracy_b

    @property
    def difference(self) -> float:
        return self.accuracy_a - self.accuracy_b

    def to_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95), "difference": self.difference}


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: twice the binomial(n, 1/2) tail of the smaller discordant count
    (capped at 1), computed with exact integers so large test sets lose no precision."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a} and {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2 ** n)))


def compare_classifiers(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedComparison:
    """A against B from their per-image correctness (booleans, the same images in the same order)."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equally long, non-empty 1-D correctness vectors, got shapes {a.shape} and "
                         f"{b.shape}: score both classifiers on the same images")
    n = a.size
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    mean = (only_a - only_b) / n
    variance = (only_a + only_b) / n - mean ** 2  # of the per-image difference, which is -1, 0 or 1
    half = Z95 * math.sqrt(max(variance, 0.0) / n)
    return PairedComparison(n, float(a.mean()), float(b.mean()), only_a, only_b, mcnemar_exact_p(only_a, only_b),
                            (mean - half, mean + half))
