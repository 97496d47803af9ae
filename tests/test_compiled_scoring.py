"""Compiled scoring: the QuickScorer tree kernel, the feature kernel, slot sums and the breeding kernel
must give what XGBoost / the array formulas / the engine's rules give, and refuse what they cannot do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from hwnas import paths
from hwnas.accuracy.compiled import CompiledPredictor
from hwnas.accuracy.features import ComplexityTables, FeatureEncoder
from hwnas.accuracy.predictor import AccuracyPredictor
from hwnas.accuracy.tree_ensemble import PARALLEL_ROWS, TreeEnsemble, UnsupportedModel
from hwnas.additive import slot_sum
from hwnas.encoding import GeneLayout
from hwnas.errors import HwnasError
from hwnas.search.nsga2 import NSGA2, NSGA2Config
from hwnas.search.problem import Objective, SearchProblem

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "predictors" / "fmnist-mbv3" / "accuracy_xgb.json"
SPACE = "fmnist-mbv3"
LAYOUT = GeneLayout(SPACE)


def _booster(depth: int, n: int = 3000, nan_share: float = 0.0, rounds: int = 40, seed: int = 0,
             **params) -> tuple[xgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X[:, 3] = rng.integers(0, 4, n)  # a discrete column: thresholds fall between repeated values
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.3 * X[:, 3] + 0.05 * rng.normal(size=n)
    if nan_share:
        X[rng.random(X.shape) < nan_share] = np.nan
    base = {"max_depth": depth, "eta": 0.3, "objective": "reg:squarederror", "seed": seed, "nthread": 1,
            **params}
    booster = xgb.train(base, xgb.DMatrix(X, label=y), num_boost_round=rounds)
    return booster, X


def _ensemble(booster: xgb.Booster) -> TreeEnsemble:
    return TreeEnsemble.from_xgboost_json(bytes(booster.save_raw(raw_format="json")))


@pytest.mark.parametrize("depth, dtype", [(2, np.uint8), (3, np.uint8), (4, np.uint16), (5, np.uint32),
                                          (6, np.uint64)])
def test_tree_kernel_matches_xgboost(depth, dtype):
    booster, X = _booster(depth)
    ens = _ensemble(booster)
    assert ens.node_mask.dtype == dtype and ens.num_trees == 40
    np.testing.assert_allclose(ens.predict(X[:100]), booster.inplace_predict(X[:100]), atol=2e-5, rtol=0)


def test_tree_kernel_follows_default_directions_on_missing_values():
    booster, X = _booster(4, nan_share=0.2)
    ens = _ensemble(booster)
    assert ens.node_missing_right.any() and not ens.node_missing_right.all()  # both directions learned
    np.testing.assert_allclose(ens.predict(X[:500]), booster.inplace_predict(X[:500]), atol=2e-5, rtol=0)


def test_parallel_path_matches_serial_path():
    booster, X = _booster(3, n=PARALLEL_ROWS + 777)
    ens = _ensemble(booster)
    whole = ens.predict(X)  # threaded blocks
    parts = np.concatenate([ens.predict(X[i:i + 500]) for i in range(0, len(X), 500)])  # serial
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_allclose(whole, booster.inplace_predict(X), atol=2e-5, rtol=0)


def test_unsupported_models_are_refused_with_the_reason():
    booster, X = _booster(3)
    doc = json.loads(bytes(booster.save_raw(raw_format="json")))
    logistic = json.loads(json.dumps(doc))
    logistic["learner"]["objective"]["name"] = "binary:logistic"
    with pytest.raises(UnsupportedModel, match="non-identity link"):
        TreeEnsemble.from_xgboost_json(logistic)
    two_targets = np.stack([np.arange(300.0), -np.arange(300.0)], axis=1)
    multi = xgb.train({"objective": "reg:squarederror", "max_depth": 2},
                      xgb.DMatrix(X[:300], label=two_targets), num_boost_round=2)
    with pytest.raises(UnsupportedModel, match="output"):
        _ensemble(multi)
    deep, _ = _booster(10, n=5000, rounds=3, min_child_weight=0.0, reg_lambda=0.0)
    with pytest.raises(UnsupportedModel, match="leaves"):
        _ensemble(deep)
    with pytest.raises(UnsupportedModel, match="not an XGBoost JSON model"):
        TreeEnsemble.from_xgboost_json(b'{"learner": {}}')
    with pytest.raises(UnsupportedModel, match="not an XGBoost JSON model"):
        TreeEnsemble.from_xgboost_json(bytes(booster.save_raw(raw_format="ubj")))
    with pytest.raises(HwnasError, match="8 columns"):
        _ensemble(booster).predict(np.zeros((4, 7), np.float32))


def test_estimator_predicts_through_the_compiled_model_and_falls_back_when_it_cannot():
    genes = LAYOUT.canonicalize(LAYOUT.random(300, 1))
    est = AccuracyPredictor.load(SHIPPED)
    X = FeatureEncoder(SPACE, est.encoding).transform(genes)  # the features the shipped model was fitted on
    assert est.compiled_ is not None
    raw = np.clip(est.booster_.inplace_predict(X, validate_features=False), 0, 1)
    np.testing.assert_allclose(est.predict(genes), raw, atol=2e-5, rtol=0)
    fast = CompiledPredictor.load(SHIPPED, SPACE)
    np.testing.assert_array_equal(fast.predict(genes), est.predict(genes))
    # a model the kernel does not take (a tree with > 64 leaves) is predicted by XGBoost itself
    y = np.random.default_rng(0).random(len(X))  # noise: the trees split down to single rows
    deep = xgb.train({"max_depth": 9, "min_child_weight": 0.0, "reg_lambda": 0.0, "nthread": 1},
                     xgb.DMatrix(X, label=y), num_boost_round=2)
    est.booster_ = deep
    assert est.compiled_ is None
    np.testing.assert_array_equal(est.predict(genes),
                                  np.clip(deep.inplace_predict(X, validate_features=False), 0, 1).astype(np.float64))


@pytest.mark.parametrize("space", [None, "fmnist-mbv3"])  # None: the default checkpoint's space
def test_search_loads_the_predictor_without_xgboost_sklearn_or_torch(space):
    predictor = REPO / paths.default_predictor_path(space or paths.DEFAULT_SPACE)
    code = ("import sys; from hwnas.search.runner import load_accuracy_predictor, resolve_space\n"
            f"space, _ = resolve_space(None, {space!r})\n"
            f"p = load_accuracy_predictor({str(predictor)!r}, space)\n"
            "g = p.layout.canonicalize(p.layout.random(5, 0)); assert p.predict(g).shape == (5,)\n"
            "print(type(p).__name__, sorted(m for m in ('xgboost', 'sklearn', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["CompiledPredictor", "[]"], out.stdout + out.stderr


@pytest.mark.parametrize("encoding", ["masked", "stage", "full"])
def test_feature_kernel_equals_the_array_formulas(encoding):
    genes = LAYOUT.random(400, 3)  # not canonical: inactive slots hold junk the features must ignore
    v = LAYOUT.values(genes)
    n, K, d = len(genes), LAYOUT.num_stages, LAYOUT.space.max_depth
    kernel, expand = v.kernel * v.active, v.expand * v.active
    cols = [kernel, expand, v.depth, v.resolution[:, None]]
    if encoding != "masked":
        cols += [(expand * kernel ** 2).reshape(n, K, d).sum(2), expand.reshape(n, K, d).sum(2)]
    if encoding == "full":
        macs, params = ComplexityTables.build(SPACE).macs_params(genes)
        cols += [macs[:, None], params[:, None], np.log(macs)[:, None]]
    expected = np.concatenate([np.asarray(c, dtype=np.float64) for c in cols], axis=1).astype(np.float32)
    np.testing.assert_array_equal(FeatureEncoder(SPACE, encoding).transform(genes), expected)


def test_slot_sum_adds_the_active_slots_entries():
    rng = np.random.default_rng(5)
    table = rng.random((LAYOUT.num_slots, len(LAYOUT.kernel_values), len(LAYOUT.expand_values),
                        len(LAYOUT.resolution_values)))
    per_res = rng.random(len(LAYOUT.resolution_values))
    genes = LAYOUT.random(50, 6)
    got = slot_sum(LAYOUT, genes, table, per_res)
    v = LAYOUT.values(genes)
    for row in range(len(genes)):
        g, r = genes[row], genes[row, LAYOUT.resolution_gene]
        expected = per_res[r] + sum(table[s, g[s], g[LAYOUT.num_slots + s], r]
                                    for s in range(LAYOUT.num_slots) if v.active[row, s])
        assert got[row] == pytest.approx(expected, rel=1e-12)


def _engine(**config) -> NSGA2:
    problem = SearchProblem(LAYOUT, [Objective("size", lambda g: g.sum(1).astype(float))])
    return NSGA2(problem, NSGA2Config(**config))


def test_children_are_canonical_and_copies_without_crossover_or_mutation():
    parents = LAYOUT.canonicalize(LAYOUT.random(16, 7))
    rng = np.random.default_rng(0)
    kids = _engine(crossover_prob=0.0, mutation_prob=0.0)._variation(rng, parents, 41)
    assert kids.shape == (41, LAYOUT.num_genes) and kids.dtype == np.int8
    parent_rows = {p.tobytes() for p in parents}
    assert all(k.tobytes() in parent_rows for k in kids)
    # binary tournaments on a best-first population favour the first positions
    counts = np.array([sum(k.tobytes() == p.tobytes() for k in kids) for p in parents])
    assert counts[:8].sum() > counts[8:].sum()
    mixed = _engine(mutation_prob=0.2)._variation(rng, parents, 200)
    np.testing.assert_array_equal(mixed, LAYOUT.canonicalize(mixed))


def test_mutation_always_moves_a_gene_to_another_valid_index():
    parents = np.repeat(LAYOUT.canonicalize(LAYOUT.random(1, 8)), 8, axis=0)
    fixed = np.r_[LAYOUT.depth_genes, LAYOUT.resolution_gene]  # never zeroed by canonicalisation
    kids = _engine(crossover_prob=0.0, mutation_prob=1.0)._variation(np.random.default_rng(1), parents, 400)
    LAYOUT.check(kids)
    assert (kids[:, fixed] != parents[0, fixed]).all()
    rare = _engine(crossover_prob=0.0, mutation_prob=0.05)._variation(np.random.default_rng(2), parents, 2000)
    assert 0.04 < (rare[:, fixed] != parents[0, fixed]).mean() < 0.06
