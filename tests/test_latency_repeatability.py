"""The measurement-noise ceiling of experiments/latency_repeatability.py: its two statistics."""

from __future__ import annotations


import numpy as np
import pytest

from experiment_script import load_experiment


def _experiment():
    return load_experiment("latency_repeatability")


def test_single_noise_sigma_recovers_the_spread_of_one_measurement():
    exp = _experiment()
    rng = np.random.default_rng(0)
    true = rng.uniform(1.0, 10.0, 4000)
    runs = true * np.exp(rng.normal(0.0, 0.05, (3, true.size)))  # each run: 5 % log noise
    assert exp.single_noise_sigma(runs) == pytest.approx(0.05, rel=0.05)
    assert exp.single_noise_sigma(np.stack([true, true])) == 0.0


def test_perfect_predictor_share_matches_a_simulation():
    exp = _experiment()
    assert exp.normal_share_within10(0.0) == 100.0
    eps = np.random.default_rng(1).normal(0.0, 0.06, 200_000)
    simulated = 100 * np.mean(np.abs(1 / np.exp(eps) - 1) < 0.1)  # prediction = truth, measured = truth * e^eps
    assert exp.normal_share_within10(0.06) == pytest.approx(simulated, abs=0.3)
    assert exp.normal_share_within10(0.02) > 99.9 > exp.normal_share_within10(0.06) > exp.normal_share_within10(0.1)


def test_rescaling_by_the_speed_reference_removes_a_uniform_drift():
    """A run on a machine 8 % slower (its reference too) is put back on the table's scale; the
    spread between subnets, which no reference can remove, stays."""
    exp = _experiment()
    rng = np.random.default_rng(2)
    true = rng.uniform(1.0, 10.0, 500)
    runs = np.stack([true, true * 1.08 * np.exp(rng.normal(0.0, 0.03, true.size))])
    rescaled = exp.rescale_by_reference(runs, [5.0, 5.4], 5.0)
    np.testing.assert_allclose(rescaled[0], true)
    assert np.median(np.log(rescaled[1] / true)) == pytest.approx(0.0, abs=0.01)
    assert np.median(np.log(runs[1] / true)) == pytest.approx(np.log(1.08), abs=0.01)
    assert exp.single_noise_sigma(rescaled) == pytest.approx(exp.single_noise_sigma(runs))
