"""Feature encoding, the XGBoost accuracy predictor and its baselines, on synthetic targets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from hwnas.accuracy.baselines import MLPPredictor, RidgePredictor
from hwnas.accuracy.features import (DEFAULT_ENCODING, ENCODINGS, ComplexityTables, FeatureEncoder, count_macs_params,
                                     one_hot_features)
from hwnas.accuracy.predictor import AccuracyPredictor, meta_path, ranking_metrics
from hwnas.arch import Architecture
from hwnas.encoding import GeneLayout
from hwnas.errors import ArchitectureError, DataError, HwnasError, SpaceError
from hwnas.supernet.network import ElasticMobileNetV3

SPACE = "fmnist-mbv3"
LAYOUT = GeneLayout(SPACE)
FIXED = {"max_depth": 4, "learning_rate": 0.1, "min_child_weight": 1.0, "subsample": 1.0,
         "colsample_bytree": 1.0, "reg_lambda": 1.0, "reg_alpha": 0.0, "num_boost_round": 150}


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A known nonlinear function of the genes (saturating in log-MACs, resolution and last-stage
    kernel interaction terms) plus small noise; inactive slots do not affect it."""
    rng = np.random.default_rng(seed)
    genes = LAYOUT.random(n, rng)
    v = LAYOUT.values(genes)
    macs, _ = ComplexityTables.build(SPACE).macs_params(genes)
    z = np.log(macs) - 15.0
    k_last = (np.where(v.active, v.kernel, 0)[:, -4:] ** 2).sum(1) / 100.0
    y = 0.85 + 0.05 * np.tanh(2 * z) + 0.01 * np.sin(v.resolution / 4.0) * k_last + rng.normal(0, 0.002, n)
    return genes, y


@pytest.fixture(scope="module")
def fitted() -> tuple[AccuracyPredictor, np.ndarray, np.ndarray]:
    torch.set_num_threads(1)
    genes, y = synthetic(500, 0)
    pred = AccuracyPredictor(SPACE, n_trials=2, cv_folds=3, seed=0, n_jobs=1,
                             max_rounds=300).fit(genes[:350], y[:350])
    return pred, genes[350:], y[350:]


def test_tuned_predictor_ranks_held_out_subnets(fitted):
    pred, genes, y = fitted
    tau = kendalltau(y, pred.predict(genes)).statistic
    assert tau > 0.8, tau
    assert pred.best_params_["num_boost_round"] > 1 and np.isfinite(pred.cv_rmse_)
    assert pred.score(genes, y) > 0.8  # sklearn R^2
    m = ranking_metrics(y, pred.predict(genes))
    assert m["n"] == len(y) and m["rmse"] < 0.01 and m["spearman"] > 0.9


def test_predict_accepts_architectures_and_returns_fractions(fitted):
    pred, genes, _ = fitted
    archs = LAYOUT.decode(genes[:5])
    out = pred.predict(archs)
    assert out.shape == (5,) and out.dtype == np.float64 and ((0 <= out) & (out <= 1)).all()
    np.testing.assert_array_equal(out, pred.predict(genes[:5]))


def test_save_load_roundtrip_and_wrong_space(fitted, tmp_path):
    pred, genes, _ = fitted
    path = pred.save(tmp_path / "accuracy_xgb.json")
    meta = json.loads(meta_path(path).read_text())
    assert meta["space"] == SPACE and meta["features"]["encoding"] == DEFAULT_ENCODING
    assert meta["features"]["feature_names"] == pred.encoder_.feature_names
    assert json.loads(path.read_text())["learner"]  # XGBoost's own JSON model
    loaded = AccuracyPredictor.load(path, SPACE)
    np.testing.assert_array_equal(loaded.predict(genes), pred.predict(genes))
    assert loaded.best_params_ == pred.best_params_
    with pytest.raises(SpaceError, match="different search space"):
        AccuracyPredictor.load(path, "ofa-mbv3-w1.0")
    path.write_bytes(path.read_bytes().replace(b'"learner"', b'"learner" '))
    with pytest.raises(HwnasError, match="does not match its description"):
        AccuracyPredictor.load(path, SPACE)
    with pytest.raises(HwnasError, match="does not exist"):
        AccuracyPredictor.load(tmp_path / "missing.json", SPACE)


def test_untuned_fit_with_fixed_params_is_deterministic():
    genes, y = synthetic(200, 1)
    a = AccuracyPredictor(SPACE, n_trials=0, params=FIXED, n_jobs=1).fit(genes, y)
    b = AccuracyPredictor(SPACE, n_trials=0, params=FIXED, n_jobs=1).fit(genes, y)
    np.testing.assert_array_equal(a.predict(genes), b.predict(genes))
    assert a.best_params_["num_boost_round"] == 150


@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if e != "genes"])
def test_features_ignore_inactive_slots(encoding):
    genes = LAYOUT.random(64, 5)
    genes[:, LAYOUT.depth_genes] = 0  # depth 2 everywhere: slots 2, 3 of each stage inactive
    other = genes.copy()
    inactive = ~LAYOUT.values(genes).active
    k, e = other[:, LAYOUT.kernel_genes], other[:, LAYOUT.expand_genes]
    k[inactive] = (k[inactive] + 1) % 3
    e[inactive] = (e[inactive] + 2) % 3
    other[:, LAYOUT.kernel_genes], other[:, LAYOUT.expand_genes] = k, e
    assert (other != genes).any()
    enc = FeatureEncoder(SPACE, encoding)
    np.testing.assert_array_equal(enc.transform(genes), enc.transform(other))
    np.testing.assert_array_equal(one_hot_features(LAYOUT, genes), one_hot_features(LAYOUT, other))
    assert (FeatureEncoder(SPACE, "genes").transform(genes) != FeatureEncoder(SPACE, "genes").transform(other)).any()
    active_vals = enc.transform(genes)[:, :LAYOUT.num_slots][~inactive]
    assert (enc.transform(genes)[:, :LAYOUT.num_slots][inactive] == 0).all() and (active_vals > 0).all()
    assert enc.transform(genes).shape == (64, enc.num_features) == (64, len(enc.feature_names))


def test_one_hot_has_one_entry_per_active_choice():
    genes = LAYOUT.random(32, 2)
    v = LAYOUT.values(genes)
    x = one_hot_features(LAYOUT, genes)
    assert x.shape == (32, int(LAYOUT.cardinalities.sum()))
    np.testing.assert_array_equal(x.sum(1), 2 * v.active.sum(1) + LAYOUT.num_stages + 1)


def test_analytic_macs_match_module_count():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = ElasticMobileNetV3(SPACE)
    genes = LAYOUT.random(2, 7)
    macs, params = ComplexityTables.build(SPACE).macs_params(genes)
    for arch, m, p in zip(LAYOUT.decode(genes), macs, params):
        assert count_macs_params(net.extract(arch), (1, 1, arch.resolution, arch.resolution)) == (m, p)
    conv = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
    assert count_macs_params(conv, (1, 4, 10, 10)) == (5 * 5 * 8 * 2 * 9, 8 * 2 * 9 + 8)


def test_baselines_fit_and_rank():
    torch.set_num_threads(1)
    genes, y = synthetic(300, 3)
    ridge = RidgePredictor(SPACE).fit(genes[:200], y[:200])
    assert kendalltau(y[200:], ridge.predict(genes[200:])).statistic > 0.5
    mlp = MLPPredictor(SPACE, hidden=(32, 32, 32), max_epochs=15, patience=5, seed=0).fit(genes[:200], y[:200])
    out = mlp.predict(genes[200:])
    assert out.shape == (100,) and ((0 <= out) & (out <= 1)).all()
    assert kendalltau(y[200:], out).statistic > 0.2
    np.testing.assert_array_equal(
        out, MLPPredictor(SPACE, hidden=(32, 32, 32), max_epochs=15, patience=5, seed=0)
        .fit(genes[:200], y[:200]).predict(genes[200:]))
    assert MLPPredictor().get_params()["hidden"] == (400, 400, 400)


def test_bad_input_gives_clear_errors():
    genes, y = synthetic(20, 4)
    pred = AccuracyPredictor(SPACE, n_trials=0, params=FIXED)
    with pytest.raises(HwnasError, match="not fitted"):
        pred.predict(genes)
    with pytest.raises(DataError, match="fractions"):
        pred.fit(genes, y * 100)
    with pytest.raises(DataError, match="pair up"):
        pred.fit(genes, y[:-1])
    with pytest.raises(ArchitectureError):
        pred.fit(genes[:, :-1], y)
    with pytest.raises(ArchitectureError):
        RidgePredictor(SPACE).fit([Architecture((3,), (3,), (2,), 28)], [0.5])


def test_rich_features_split_macs_and_params_by_stage():
    tables = ComplexityTables.build(SPACE)
    genes = LAYOUT.random(40, 7)
    macs, params = tables.macs_params(genes)
    stage_macs, stage_params = tables.stage_macs_params(genes)
    res = genes[:, LAYOUT.resolution_gene]
    np.testing.assert_array_equal(stage_macs.sum(1) + tables.fixed_macs[res], macs)
    np.testing.assert_array_equal(stage_params.sum(1) + tables.fixed_params, params)
    X = FeatureEncoder(SPACE, "rich").transform(genes)
    names = FeatureEncoder(SPACE, "rich").feature_names
    np.testing.assert_allclose(X[:, names.index("s0_macs")], stage_macs[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(X[:, :len(FeatureEncoder(SPACE, "full").feature_names)],
                                  FeatureEncoder(SPACE, "full").transform(genes))


def test_sidecar_records_every_tuning_trial(fitted, tmp_path):
    pred = fitted[0]
    assert len(pred.trials_) == 2 and pred.trials_[0]["params"]["max_depth"] == 6  # the defaults come first
    path = pred.save(tmp_path / "p.json")
    meta = json.loads(meta_path(path).read_text())
    assert [t["cv_rmse"] for t in meta["cv"]["trial_log"]] == [t["cv_rmse"] for t in pred.trials_]
    assert AccuracyPredictor.load(path).trials_ == meta["cv"]["trial_log"]


def test_fit_predictor_refit_records_the_tuning_it_ran(tmp_path, capsys):
    """The shipped (refit-on-all) file says how many trials chose its parameters, not 0; with both
    noise sources measured, both ceilings are printed and recorded."""
    from hwnas.cli import main as cli_main
    from hwnas.space import get_space

    genes, y = synthetic(80, 9)
    rng = np.random.default_rng(1)
    lines = [json.dumps({"arch": a.to_dict(), "accuracy": float(v), "accuracy_2": float(v + rng.normal(0, 0.002)),
                         "accuracy_half1": float(v + rng.normal(0, 0.003)),
                         "accuracy_half2": float(v + rng.normal(0, 0.003))})
             for a, v in zip(LAYOUT.decode(genes), y)]
    (tmp_path / "dataset.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "dataset.meta.json").write_text(json.dumps(
        {"space": SPACE, "space_fingerprint": get_space(SPACE).fingerprint(), "val_images": 2000}))
    assert cli_main(["fit-predictor", "--data", str(tmp_path / "dataset.jsonl"), "--trials", "2", "--folds", "3",
                     "--threads", "1", "--no-progress", "--max-trees", "7"]) == 0
    meta = json.loads((tmp_path / "accuracy_xgb.meta.json").read_text())
    assert meta["training_data"]["refit_on_all"] is True
    assert meta["cv"]["max_rounds"] == 7 and meta["hyperparameters"]["num_boost_round"] <= 7  # the cap holds
    assert meta["cv"]["trials"] == 2 and len(meta["cv"]["trial_log"]) == 2
    assert meta["n_train"] == 80
    assert "with calibration noise only" in capsys.readouterr().out
    ceiling = meta["metrics"]["noise_ceiling"]
    assert ceiling["validation_noise_measured"] and ceiling["kendall_tau_calibration_only"] > ceiling["kendall_tau"]


def test_fit_predictor_prints_the_noise_ceiling_beside_the_held_out_tau(tmp_path, capsys):
    from hwnas.cli import main as cli_main
    from hwnas.space import get_space

    genes, y = synthetic(120, 8)
    rng = np.random.default_rng(0)
    lines = [json.dumps({"arch": a.to_dict(), "accuracy": float(v), "accuracy_2": float(v + rng.normal(0, 0.003))})
             for a, v in zip(LAYOUT.decode(genes), y)]
    (tmp_path / "dataset.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "dataset.meta.json").write_text(json.dumps(
        {"space": SPACE, "space_fingerprint": get_space(SPACE).fingerprint(), "val_images": 2000}))
    assert cli_main(["fit-predictor", "--data", str(tmp_path / "dataset.jsonl"), "--trials", "0", "--threads", "1",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "noise ceiling: Kendall tau 0." in out and "held-out tau = " in out and "upper bound" in out
    meta = json.loads((tmp_path / "accuracy_xgb.meta.json").read_text())
    assert meta["metrics"]["noise_ceiling"]["source"].endswith("(accuracy_2)")
    # a missing ceiling source is named before any tuning starts, without a traceback
    assert cli_main(["fit-predictor", "--data", str(tmp_path / "dataset.jsonl"), "--trials", "0",
                     "--noise-ceiling", str(tmp_path / "nope.json")]) != 0
    assert "nope.json does not exist" in capsys.readouterr().err
