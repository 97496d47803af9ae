"""The paired comparison of two classifiers on the same images (hwnas.classifier_comparison)."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.classifier_comparison import compare_classifiers, mcnemar_exact_p


def test_mcnemar_p_is_the_two_sided_binomial_tail_of_the_discordant_images():
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 * 0.5 ** 5)  # 5 of 5 discordant images one way
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * (1 + 10) / 2 ** 10)
    assert mcnemar_exact_p(7, 7) == 1.0 and mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(3, 4) == mcnemar_exact_p(4, 3)
    # large test sets keep their precision: 260 against 240 discordant images is not significant,
    # 300 against 200 is
    assert 0.35 < mcnemar_exact_p(260, 240) < 0.45 and mcnemar_exact_p(300, 200) < 1e-5


def test_the_comparison_counts_the_images_only_one_classifier_gets_right():
    a = np.array([1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    b = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    result = compare_classifiers(a, b)
    assert (result.n, result.only_a, result.only_b) == (8, 2, 1)
    assert result.accuracy_a == 5 / 8 and result.accuracy_b == 4 / 8
    assert result.difference == pytest.approx(1 / 8)
    low, high = result.ci95
    assert low < result.difference < high
    assert result.to_dict()["difference"] == pytest.approx(1 / 8)


def test_the_interval_narrows_as_the_classifiers_disagree_less():
    rng = np.random.default_rng(0)
    base = rng.random(10_000) < 0.94
    often = base ^ (rng.random(10_000) < 0.08)  # disagrees with base on ~8 % of the images
    rarely = base ^ (rng.random(10_000) < 0.01)
    width = {name: np.subtract(*compare_classifiers(other, base).ci95[::-1]) for name, other in
             (("often", often), ("rarely", rarely))}
    assert width["rarely"] < width["often"] / 2


def test_vectors_of_other_images_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="same images"):
        compare_classifiers(np.ones(5, bool), np.ones(6, bool))
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact_p(-1, 3)
