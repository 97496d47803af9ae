"""experiments/predictor_benchmark.py and the equal-budget baseline tuner (issue 15), on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.accuracy.baselines import MLPPredictor, RidgePredictor, tune_baseline
from hwnas.accuracy.features import ComplexityTables
from hwnas.encoding import GeneLayout
from hwnas.space import get_space
from experiment_script import load_experiment

SPACE = "fmnist-mbv3"


def _bench():
    return load_experiment("predictor_benchmark")


def _synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    layout = GeneLayout(SPACE)
    rng = np.random.default_rng(seed)
    genes = layout.random(n, rng)
    macs, _ = ComplexityTables.build(SPACE).macs_params(genes)
    y = 0.85 + 0.04 * np.tanh(2 * (np.log(macs) - 15.0)) + rng.normal(0, 0.002, n)
    return genes, y


def _write_dataset(folder: Path, n: int) -> Path:
    space = get_space(SPACE)
    genes, y = _synthetic(n)
    rng = np.random.default_rng(1)
    archs = GeneLayout(SPACE).decode(genes)
    lines = [json.dumps({"arch": a.to_dict(), "accuracy": float(v), "accuracy_2": float(v + rng.normal(0, 0.002))})
             for a, v in zip(archs, y)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "dataset.meta.json").write_text(json.dumps(
        {"space": SPACE, "space_fingerprint": space.fingerprint(), "val_images": 2000}))
    return folder / "dataset.jsonl"


def test_benchmark_end_to_end_skips_sizes_it_cannot_fill(tmp_path):
    torch.set_num_threads(1)
    data = _write_dataset(tmp_path / "data", 100)
    bench = _bench()
    assert bench.main(["--data", str(data), "--out", str(tmp_path / "out"), "--sizes", "20", "40", "3000",
                       "--seeds", "2", "--trials", "1", "--folds", "2", "--models", "xgboost", "ridge",
                       "--compare-encodings", "full", "rich", "--features", "full", "--threads", "1", "--throughput-rows", "500",
                       "--tree-caps", "5", "50"]) == 0
    res = json.loads((tmp_path / "out/predictor_benchmark.json").read_text())
    assert res["sizes"] == [20, 40] and "3000" in res["notes"][0]
    assert len(res["runs"]) == 2 * (2 * 2 + 2 + 2)  # seeds x (sizes x models + encodings + tree caps)
    caps = {r["cap"]: r for r in res["tree_caps"]}
    assert caps[5]["trees"] <= 5 < caps[50]["trees"] <= 50  # each model was tuned under its own cap
    assert all(r["predict_rows_per_s"] > 0 for r in caps.values())
    assert res["tree_cap_decision"]["chosen"] in (5, 50)
    ceiling = res["noise_ceiling"]["tau_simulated"]
    assert 0 < ceiling < 1
    for row in res["learning_curve"]:
        assert row["seeds"] == 2
        assert row["tau_share_of_ceiling"] == pytest.approx(row["kendall_tau"] / ceiling)
    # the held-out set is the same for every seed: the MACs floor is one number
    assert -1 <= res["macs_floor"]["kendall_tau"] <= 1
    assert " vs full" in res["feature_decision"] or "full ranks best" in res["feature_decision"]
    png = tmp_path / "out/predictor_learning_curve.png"
    assert png.stat().st_size > 0
    png.unlink()
    assert bench.main(["--replot", "--out", str(tmp_path / "out")]) == 0 and png.stat().st_size > 0


def test_tree_cap_decision_takes_the_smallest_cap_within_the_seed_spread():
    bench = _bench()

    def row(cap, tau, std, rate):
        return {"cap": cap, "kendall_tau": tau, "kendall_tau_std": std, "predict_rows_per_s": rate}

    caps = [row(1500, 0.800, 0.004, 1e5), row(100, 0.780, 0.004, 5e5), row(400, 0.797, 0.005, 2e5)]
    choice = bench.tree_cap_decision(caps)
    assert choice["chosen"] == 400 and choice["speedup"] == pytest.approx(2.0)
    caps[1] = row(100, 0.797, 0.004, 5e5)  # now the smallest is within the spread too
    assert bench.tree_cap_decision(caps)["chosen"] == 100
    assert bench.tree_cap_decision([])["chosen"] is None


def test_goal_check_takes_the_lower_target_and_names_sizes_the_mlp_wins():
    bench = _bench()
    curve = [{"model": "xgboost", "train_size": 100, "kendall_tau": 0.40},
             {"model": "mlp", "train_size": 100, "kendall_tau": 0.45},
             {"model": "xgboost", "train_size": 1000, "kendall_tau": 0.70},
             {"model": "mlp", "train_size": 1000, "kendall_tau": 0.60}]
    goal = bench.goal_check(curve, ceiling_tau=0.75)
    assert goal["target_tau_at_1000"] == pytest.approx(0.675)
    assert goal["met"] is True and goal["mlp_beats_xgboost_at"] == [100]
    assert bench.goal_check(curve, ceiling_tau=None)["met"] is False  # 0.70 < 0.85


def test_feature_decision_needs_a_gain_beyond_the_seed_spread():
    bench = _bench()
    row = lambda enc, tau, sd: {"encoding": enc, "kendall_tau": tau, "kendall_tau_std": sd}  # noqa: E731
    assert "does not pay" in bench.feature_decision([row("full", 0.60, 0.02), row("rich", 0.62, 0.02)], "full")
    assert "pays: make" in bench.feature_decision([row("full", 0.60, 0.005), row("rich", 0.63, 0.005)], "full")
    # every encoding compared competes, not only one candidate: the best one is named
    rows = [row("full", 0.60, 0.005), row("rich", 0.61, 0.005), row("masked", 0.64, 0.005)]
    assert bench.feature_decision(rows, "full").startswith("masked vs full")
    assert "keep it" in bench.feature_decision(rows, "masked")


def test_tune_baseline_logs_every_trial_and_starts_from_the_defaults():
    genes, y = _synthetic(120, 2)
    model, log = tune_baseline(RidgePredictor, genes, y, n_trials=4, cv_folds=3, seed=0, space=SPACE)
    assert len(log) == 4 and log[0]["params"] == {"alpha": 1.0}
    best = min(log, key=lambda t: t["cv_rmse"])
    assert model.alphas == (best["params"]["alpha"],)


def test_extra_encoding_columns_are_standardised_on_the_fit_rows():
    torch.set_num_threads(1)
    genes, y = _synthetic(80, 3)
    mlp = MLPPredictor(SPACE, hidden=(8,), max_epochs=2, extra_encoding="full").fit(genes, y)
    X = mlp._features(genes)
    extra = X[:, -mlp.extra_mean_.size:]
    assert np.allclose(extra.mean(0), 0, atol=1e-4)
    assert X.shape[1] > RidgePredictor(SPACE)._features(genes).shape[1]


def test_proxy_signal_needs_every_test_record_and_ranks_low_loss_high():
    bench = _bench()
    y = np.array([0.80, 0.82, 0.84, 0.86])
    records = [{"proxy_loss": 0.9}, {"proxy_loss": 0.7}, {"proxy_loss": 0.5}, {"proxy_loss": 0.3}, {}]
    assert bench.proxy_signal(records, np.arange(4), y, "proxy_loss")["kendall_tau"] == pytest.approx(1.0)
    assert bench.proxy_signal(records, np.arange(1, 5), y, "proxy_loss") is None
