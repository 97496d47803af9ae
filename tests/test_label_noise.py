"""The noise-ceiling estimator recovers a known ceiling on synthetic labels (issue 15)."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from hwnas.accuracy.label_noise import (ceiling_from_records, estimate_ceiling, gaussian_tau,
                                        validation_noise_var)
from hwnas.errors import DataError


def _synthetic(n=600, sd_true=0.010, sd_cal=0.003, sd_val=0.002, seed=0):
    """True accuracies (skewed), two calibrations, and the first run's validation halves."""
    rng = np.random.default_rng(seed)
    t = 0.86 - rng.gamma(2.0, sd_true / np.sqrt(2.0), n)
    c1, c2 = rng.normal(0, sd_cal, n), rng.normal(0, sd_cal, n)
    v1, v2 = rng.normal(0, sd_val * np.sqrt(2), n), rng.normal(0, sd_val * np.sqrt(2), n)
    common = rng.normal(0, sd_val * np.sqrt(2))  # a half harder for every subnet: must not count
    h1, h2 = t + c1 + v1 + common, t + c1 + v2 - common
    a = (h1 + h2) / 2
    b = t + c2 + (v1 + v2) / 2  # same validation images, other calibration
    return t, a, b, (h1, h2)


def _true_ceiling(t, noise_sd, seed=1, draws=20):
    rng = np.random.default_rng(seed)
    return np.mean([kendalltau(t, t + rng.normal(0, noise_sd, len(t))).statistic for _ in range(draws)])


def test_recovers_known_ceiling_with_both_noise_sources():
    t, a, b, halves = _synthetic()
    est = estimate_ceiling(a, b, halves, draws=50)
    truth = _true_ceiling(t, np.hypot(0.003, 0.002))
    assert est.tau_simulated == pytest.approx(truth, abs=0.03)
    assert est.noise_var_calibration == pytest.approx(0.003 ** 2, rel=0.2)
    assert est.noise_var_validation == pytest.approx(0.002 ** 2, rel=0.2)
    # the old estimate (tau between two repeats) is biased low: it carries the noise twice
    assert est.tau_between_repeats < truth - 0.03


def test_analytic_ceiling_matches_for_gaussian_accuracies():
    rng = np.random.default_rng(5)
    t = rng.normal(0.83, 0.01, 800)
    a, b = t + rng.normal(0, 0.004, 800), t + rng.normal(0, 0.004, 800)
    est = estimate_ceiling(a, b, draws=20)
    assert est.tau_analytic == pytest.approx(_true_ceiling(t, 0.004), abs=0.03)


def test_without_halves_only_calibration_noise_counts_and_the_ceiling_is_higher():
    t, a, b, halves = _synthetic()
    with_v = estimate_ceiling(a, b, halves, draws=20)
    without = estimate_ceiling(a, b, None, draws=20)
    assert without.noise_var_validation is None
    assert without.tau_simulated > with_v.tau_simulated
    assert "NOT measured" in without.method


def test_calibration_only_ceiling_is_the_ceiling_without_validation_noise():
    """The upper ceiling (validation error treated as learnable) equals what the estimator gives
    when the halves are left out, and sits above the main ceiling; without halves they coincide."""
    t, a, b, halves = _synthetic()
    with_v = estimate_ceiling(a, b, halves, draws=20)
    without = estimate_ceiling(a, b, None, draws=20)
    assert with_v.tau_calibration_only == pytest.approx(without.tau_simulated)
    assert with_v.tau_calibration_only > with_v.tau_simulated + 0.02
    assert without.tau_calibration_only == without.tau_simulated
    assert with_v.tau_calibration_only == pytest.approx(_true_ceiling(t, 0.003), abs=0.03)


def test_gaussian_tau_limits():
    assert gaussian_tau(1.0) == pytest.approx(1.0)
    assert gaussian_tau(0.0) == pytest.approx(0.0)
    assert gaussian_tau(0.93) == pytest.approx(2 / np.pi * np.arcsin(np.sqrt(0.93)))


def test_validation_noise_ignores_a_shift_shared_by_all_subnets():
    rng = np.random.default_rng(3)
    h = rng.normal(0.8, 0.01, 500)
    assert validation_noise_var(h, h - 0.05) == pytest.approx(0.0, abs=1e-12)


def test_quantised_labels_lower_the_ceiling():
    t, a, b, halves = _synthetic(sd_cal=0.001, sd_val=0.0005)
    fine = estimate_ceiling(a, b, halves, draws=20)
    coarse = estimate_ceiling(a, b, halves, quantum=0.005, draws=20)
    assert coarse.tau_simulated < fine.tau_simulated - 0.01


def test_records_use_halves_only_when_every_row_has_them():
    t, a, b, (h1, h2) = _synthetic(n=50)
    rows = [{"accuracy": x, "accuracy_2": y, "accuracy_half1": p, "accuracy_half2": q}
            for x, y, p, q in zip(a, b, h1, h2)]
    assert ceiling_from_records(rows, draws=5).noise_var_validation is not None
    rows[0].pop("accuracy_half1")
    assert ceiling_from_records(rows, draws=5).noise_var_validation is None
    assert ceiling_from_records([{"accuracy": 0.8}] * 20) is None


def test_noise_as_large_as_the_spread_is_refused():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.8, 0.01, 100), rng.normal(0.8, 0.03, 100)
    with pytest.raises(DataError, match="rank nothing"):
        estimate_ceiling(a, b)


def test_bootstrap_interval_narrows_with_more_subnets_and_holds_the_truth():
    t, a, b, halves = _synthetic(n=800, seed=4)
    small = estimate_ceiling(a[:40], b[:40], (halves[0][:40], halves[1][:40]), draws=5)
    large = estimate_ceiling(a, b, halves, draws=5)
    width = lambda c: c.tau_analytic_interval[1] - c.tau_analytic_interval[0]  # noqa: E731
    assert width(small) > 2 * width(large)
    lo, hi = large.tau_analytic_interval
    assert lo <= large.tau_analytic <= hi


def test_result_file_round_trips(tmp_path):
    import json

    from hwnas.accuracy.label_noise import read_ceiling_file

    t, a, b, halves = _synthetic(n=100)
    est = estimate_ceiling(a, b, halves, draws=5)
    (tmp_path / "c.json").write_text(json.dumps(est.to_dict()))
    assert read_ceiling_file(tmp_path / "c.json") == est
    old = {k: v for k, v in est.to_dict().items() if k != "tau_calibration_only"}  # files from before the field
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert read_ceiling_file(tmp_path / "old.json").tau_calibration_only is None
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="not a noise-ceiling result"):
        read_ceiling_file(tmp_path / "bad.json")
