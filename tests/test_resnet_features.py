"""Accuracy-predictor features for resnet genes, and an XGBoost predictor fit on them (synthetic labels)."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.accuracy.features import ENCODINGS, FeatureEncoder, ResNetFeatureEncoder
from hwnas.accuracy.predictor import AccuracyPredictor
from hwnas.families import complexity_counter, gene_layout
from hwnas.resnet_arch import bottleneck_cost, resnet_macs_and_params, resnet_plan
from tests.tiny_spaces import tiny_resnet_space

SPACE = tiny_resnet_space()
LAYOUT = gene_layout(SPACE)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_has_named_finite_columns(encoding):
    enc = FeatureEncoder(SPACE, encoding)
    assert isinstance(enc, ResNetFeatureEncoder)
    X = enc.transform(LAYOUT.random(50, rng=0))
    assert X.shape == (50, enc.num_features) == (50, len(enc.feature_names)) and X.dtype == np.float32
    assert np.isfinite(X).all() and len(set(enc.feature_names)) == enc.num_features


def test_features_describe_the_network_not_the_inactive_genes():
    enc = FeatureEncoder(SPACE, "rich")
    genes = LAYOUT.random(200, rng=1)
    X = enc.transform(genes)
    np.testing.assert_array_equal(X, enc.transform(LAYOUT.canonicalize(genes)))  # same network, same row
    col = {n: i for i, n in enumerate(enc.feature_names)}
    archs = LAYOUT.decode(genes)
    for row, arch in zip(X[:20], archs[:20]):
        plan = resnet_plan(SPACE, arch)
        macs, params = resnet_macs_and_params(SPACE, arch)
        assert row[col["macs"]] == np.float32(macs) and row[col["params"]] == np.float32(params)
        assert row[col["resolution"]] == arch.resolution and row[col["stem_depth"]] == arch.depth[0]
        assert row[col["s1_width_mult"]] == np.float32(SPACE.width_mults[arch.width[3]])
        ran = {b.block for b in plan.blocks}
        for p in LAYOUT.positions:
            expected = arch.expand[p.block] if p.block in ran else 0.0
            assert row[col[f"s{p.stage}b{p.position}_expand"]] == np.float32(expected)
        stage_macs = [sum(bottleneck_cost(b)[0] for b in plan.blocks if LAYOUT.block_stage[b.block] == s)
                      for s in range(2)]
        assert [row[col[f"s{s}_macs"]] for s in range(2)] == [np.float32(m) for m in stage_macs]


def test_stage_macs_add_up_to_the_blocks_share_of_the_total():
    counter = complexity_counter(SPACE)
    genes = LAYOUT.random(100, rng=2)
    stage_macs, _ = counter.stage_macs_params(genes)
    stem_and_head = counter.macs(genes) - stage_macs.sum(axis=1)
    assert (stem_and_head > 0).all() and (stage_macs > 0).all()
    assert len(np.unique(stem_and_head)) < len(np.unique(counter.macs(genes)))  # blocks make the difference


def test_xgboost_predictor_fits_synthetic_resnet_labels():
    genes = LAYOUT.canonicalize(LAYOUT.random(120, rng=3))
    macs = complexity_counter(SPACE).macs(genes)
    y = 0.6 + 0.3 * (np.log(macs) - np.log(macs).min()) / np.ptp(np.log(macs))  # accuracy rising with MACs
    train, test = slice(0, 90), slice(90, None)
    model = AccuracyPredictor(SPACE, n_trials=0, cv_folds=3, seed=0).fit(genes[train], y[train])
    assert model.evaluate(genes[test], y[test])["kendall_tau"] > 0.8
    archs = LAYOUT.decode(genes[test][:3])
    np.testing.assert_allclose(model.predict(archs), model.predict(genes[test][:3]))
