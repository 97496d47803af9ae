"""Gene encoding of the plain family (fmnist-cnn's shape with kernel and width choices, tiny_spaces.plain_genes_space):
additive costs, accuracy-predictor features, and the per-family dispatch of :mod:`hwnas.families`."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas import families
from hwnas.accuracy.features import ENCODINGS, FeatureEncoder, PlainFeatureEncoder
from hwnas.arch import Architecture
from hwnas.errors import ArchitectureError
from hwnas.plain_arch import (PlainArchitecture, conv_layer_cost, largest_plain_architecture, plain_head_cost,
                              plain_macs_and_params, plain_plan, sample_plain_architecture,
                              smallest_plain_architecture)
from hwnas.plain_complexity import PlainComplexityCounter
from hwnas.plain_encoding import PlainGeneLayout
from hwnas.resnet_arch import ResNetArchitecture
from hwnas.search.nsga2 import NSGA2, NSGA2Config
from hwnas.search.problem import Objective, SearchProblem
from hwnas.space import get_space
from tiny_spaces import plain_genes_space  # noqa: E402 (tests/ is on sys.path)

SPACE = plain_genes_space()
LAYOUT = PlainGeneLayout(SPACE)
ARCHS = [sample_plain_architecture(SPACE, seed) for seed in range(300)]


def test_gene_groups_follow_the_space():
    # 3 depth genes, 3 + 3 + 3 kernel genes (base depth 1, up to 2 extra), 3 width genes, 1 resolution gene
    assert LAYOUT.num_genes == 3 + 9 + 3 + 1
    assert list(LAYOUT.cardinalities) == [3] * 3 + [2] * 9 + [4] * 3 + [3]
    assert list(LAYOUT.layer_stage) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert LAYOUT.decode(np.zeros((1, LAYOUT.num_genes), np.int8))[0] == smallest_plain_architecture(SPACE)


def test_architectures_round_trip_through_genes():
    genes = LAYOUT.encode(ARCHS)
    assert genes.shape == (300, LAYOUT.num_genes) and genes.dtype == np.int8
    assert LAYOUT.decode(genes) == ARCHS
    assert len({g.tobytes() for g in genes}) > 250  # the samples differ, so the round trip means something
    largest, smallest = largest_plain_architecture(SPACE), smallest_plain_architecture(SPACE)
    assert (LAYOUT.encode(largest)[0] == LAYOUT.cardinalities - 1).all()
    assert not LAYOUT.encode(smallest).any()
    assert LAYOUT.decode(LAYOUT.encode([largest, smallest])) == [largest, smallest]
    v = LAYOUT.values(genes)
    assert (v.depth == [a.depth for a in ARCHS]).all() and (v.width == [a.width for a in ARCHS]).all()


def test_random_genes_decode_to_valid_architectures_and_cover_every_choice():
    genes = LAYOUT.random(500, rng=0)
    for arch in LAYOUT.decode(genes):
        arch.validate(SPACE)
    assert all(len(np.unique(genes[:, g])) == c for g, c in enumerate(LAYOUT.cardinalities))
    with pytest.raises(ArchitectureError, match="outside the space"):
        LAYOUT.check(np.full((1, LAYOUT.num_genes), 3, np.int8))  # 3 is no kernel index


def test_canonicalisation_zeroes_only_kernel_genes_of_layers_that_do_not_run():
    genes = LAYOUT.random(300, rng=1)
    canon = LAYOUT.canonicalize(genes)
    active = LAYOUT.active(genes)
    assert 0 < active.sum() < active.size
    kernel = LAYOUT.kernel_genes
    assert (canon[:, kernel][~active] == 0).all()
    assert (canon[:, kernel][active] == genes[:, kernel][active]).all()
    keep = np.ones(LAYOUT.num_genes, bool)
    keep[kernel] = False
    assert (canon[:, keep] == genes[:, keep]).all()
    # the layers that run: the first ``depth`` of each stage
    depths = LAYOUT.depths(genes)
    for row in range(20):
        runs = [p.position < depths[row, p.stage] for p in LAYOUT.positions]
        assert list(active[row]) == runs


def test_equal_networks_get_equal_genes():
    genes = LAYOUT.random(300, rng=2)
    other = genes.copy()
    inactive = ~LAYOUT.active(genes)
    sub = other[:, LAYOUT.kernel_genes]
    sub[inactive] = 1 - sub[inactive]  # flip every kernel gene of a layer that does not run
    other[:, LAYOUT.kernel_genes] = sub
    changed = (other != genes).any(axis=1)
    assert changed.sum() > 200  # most rows have a layer that does not run
    np.testing.assert_array_equal(LAYOUT.canonicalize(other), LAYOUT.canonicalize(genes))
    for a, b in zip(LAYOUT.decode(genes[:30]), LAYOUT.decode(other[:30])):
        assert plain_plan(SPACE, a) == plain_plan(SPACE, b)  # the same network indeed


def test_vectorised_costs_equal_the_per_architecture_count():
    counter = PlainComplexityCounter(SPACE)
    archs = ARCHS + [largest_plain_architecture(SPACE), smallest_plain_architecture(SPACE)]
    genes = LAYOUT.encode(archs)
    expected = np.array([plain_macs_and_params(SPACE, a) for a in archs], dtype=np.int64)
    macs, params = counter.macs(genes), counter.params(genes)
    assert macs.dtype == params.dtype == np.int64
    np.testing.assert_array_equal(macs, expected[:, 0])
    np.testing.assert_array_equal(params, expected[:, 1])
    assert len(np.unique(expected[:, 0])) > 250  # the genes do change the network
    assert macs[-1] == macs.min() and macs[-2] == macs.max()


def test_stage_costs_add_up_to_the_layers_share_of_the_total():
    counter = PlainComplexityCounter(SPACE)
    genes = LAYOUT.encode(ARCHS[:50])
    stage_macs, stage_params = counter.stage_macs_params(genes)
    for row, arch in enumerate(ARCHS[:50]):
        plan = plain_plan(SPACE, arch)
        for s in range(SPACE.num_stages):
            cost = [conv_layer_cost(layer) for layer in plan.layers if LAYOUT.layer_stage[layer.layer] == s]
            assert (stage_macs[row, s], stage_params[row, s]) == (sum(m for m, _ in cost), sum(p for _, p in cost))
        head = plain_head_cost(SPACE, plan.features, plan.final_size)
        assert counter.macs(genes[row])[0] - stage_macs[row].sum() == head[0]


def _pooled_macs(features: int, size: int) -> int:
    """A head cost that depends on the pooled map's size, so a wrong ``final_size`` shows."""
    return features * size * size + plain_head_cost(SPACE, features, size)[0]


def test_additive_sum_of_part_tables_equals_the_plan():
    layers, head = LAYOUT.part_tables(lambda spec: conv_layer_cost(spec)[0], _pooled_macs)
    genes = LAYOUT.encode(ARCHS)
    # object tables: an unreachable (None) entry gathered for an active or inactive layer raises here
    total = LAYOUT.additive_sum(genes, layers, head)
    for arch, got in zip(ARCHS, total):
        plan = plain_plan(SPACE, arch)
        assert plan.final_size == LAYOUT.final_size(arch.resolution)
        assert got == sum(conv_layer_cost(layer)[0] for layer in plan.layers) + _pooled_macs(plan.features,
                                                                                             plan.final_size)


def test_part_tables_hold_exactly_the_entries_some_subnet_reaches():
    layers, head = LAYOUT.part_tables(lambda spec: spec, lambda features, size: (features, size))
    i = LAYOUT.part_indices(LAYOUT.random(5000, rng=3))
    n = len(i["resolution"])
    reached = set(zip(np.broadcast_to(np.arange(LAYOUT.num_layers), (n, LAYOUT.num_layers)).ravel().tolist(),
                      i["layer_in"].ravel().tolist(), i["layer_out"].ravel().tolist(), i["kernel"].ravel().tolist(),
                      np.repeat(i["resolution"], LAYOUT.num_layers).tolist()))
    filled = {tuple(int(x) for x in idx) for idx in np.argwhere(layers != None)}  # noqa: E711 - elementwise
    assert reached == filled
    # 2 pooling layers with a free input width, 7 layers whose input width is fixed by the output's or the image
    assert len(filled) == (2 * 4 * 4 + 7 * 4) * 2 * 3
    first = layers[0, 0, 2, 1, 0]
    assert (first.in_channels, first.out_channels, first.kernel, first.input_size) == (1, 24, 3, 20)
    pool = layers[3, 1, 3, 0, 2]  # stage 1's first layer: stage 0's width 16 in, 64 out, after 2x2 pooling
    assert (pool.in_channels, pool.out_channels, pool.pool, pool.input_size, pool.output_size) == (16, 64, True, 28, 14)
    assert head[3, 2] == (128, 7) and head[0, 0] == (32, 5)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_has_named_finite_columns_that_tell_networks_apart(encoding):
    enc = FeatureEncoder(SPACE, encoding)
    assert isinstance(enc, PlainFeatureEncoder)
    X = enc.transform(LAYOUT.encode(ARCHS[:50]))
    assert X.shape == (50, enc.num_features) == (50, len(enc.feature_names)) and X.dtype == np.float32
    assert np.isfinite(X).all() and len(set(enc.feature_names)) == enc.num_features
    assert len({row.tobytes() for row in X}) == len(set(ARCHS[:50])) == 50
    a, b = enc.transform(LAYOUT.encode([largest_plain_architecture(SPACE), smallest_plain_architecture(SPACE)]))
    assert (a != b).any()


def test_features_describe_the_network_not_the_inactive_genes():
    enc = FeatureEncoder(SPACE, "rich")
    genes = LAYOUT.random(200, rng=4)
    X = enc.transform(genes)
    np.testing.assert_array_equal(X, enc.transform(LAYOUT.canonicalize(genes)))  # same network, same row
    assert not np.array_equal(FeatureEncoder(SPACE, "genes").transform(genes),
                              FeatureEncoder(SPACE, "genes").transform(LAYOUT.canonicalize(genes)))
    col = {n: i for i, n in enumerate(enc.feature_names)}
    for row, arch in zip(X[:30], LAYOUT.decode(genes[:30])):
        plan = plain_plan(SPACE, arch)
        macs, params = plain_macs_and_params(SPACE, arch)
        assert row[col["macs"]] == np.float32(macs) and row[col["params"]] == np.float32(params)
        assert row[col["resolution"]] == arch.resolution
        ran = {layer.layer for layer in plan.layers}
        for p in LAYOUT.positions:
            assert row[col[f"s{p.stage}l{p.position}_kernel"]] == (arch.kernel[p.layer] if p.layer in ran else 0)
        for s in range(SPACE.num_stages):
            assert row[col[f"s{s}_depth"]] == arch.depth[s]
            assert row[col[f"s{s}_width_mult"]] == np.float32(SPACE.width_mults[arch.width[s]])
            assert row[col[f"s{s}_sum_k2"]] == sum(layer.kernel ** 2 for layer in plan.layers
                                                   if LAYOUT.layer_stage[layer.layer] == s)
            assert row[col[f"s{s}_res_x_depth"]] == arch.resolution * arch.depth[s]


@pytest.mark.parametrize("space,kind", [("plain-genes-test", PlainArchitecture), ("fmnist-mbv3", Architecture),
                                        ("ofa-resnet50", ResNetArchitecture)])
def test_families_dispatch_smallest_and_largest(space, kind):
    small, large = families.smallest_architecture(space), families.largest_architecture(space)
    assert isinstance(small, kind) and isinstance(large, kind)
    assert families.macs_and_params(space, small)[0] < families.macs_and_params(space, large)[0]
    assert families.smallest_architecture(space, resolution=large.resolution).resolution == large.resolution


def test_families_dispatch_the_plain_family():
    arch = families.sample_architecture(SPACE.name, 7)
    assert arch == sample_plain_architecture(SPACE, 7) and isinstance(arch, PlainArchitecture)
    assert families.sample_architecture(SPACE.name, 7, resolution=20).resolution == 20
    assert families.largest_architecture(SPACE.name) == largest_plain_architecture(SPACE)
    assert families.smallest_architecture(SPACE.name) == smallest_plain_architecture(SPACE)
    assert isinstance(families.gene_layout(SPACE.name), PlainGeneLayout)
    assert isinstance(families.complexity_counter(SPACE.name), PlainComplexityCounter)
    assert families.macs_and_params(SPACE.name, arch) == plain_macs_and_params(SPACE, arch)
    assert families.architecture_from_dict(arch.to_dict(), SPACE.name) == arch
    assert [name for name, _, _ in LAYOUT.arch_columns()] == list(arch.to_dict())


@pytest.mark.parametrize("change,message", [
    ({"kernel": [3] * 8}, "kernel list has 8 entries; space 'plain-genes-test' needs 9"),
    ({"depth": [1, 2]}, "depth list has 2 entries; space 'plain-genes-test' needs 3"),
    ({"depth": [1, 4, 1]}, r"depth\[1\] = 4 is not allowed; choose from \(1, 2, 3\)"),
    ({"kernel": [3] * 8 + [7]}, r"kernel\[8\] = 7 is not allowed; choose from \(1, 3\)"),
    ({"width": [0, 4, 0]}, r"width\[1\] = 4 is not a width-multiplier index"),
    ({"resolution": 32}, r"resolution 32 is not allowed; choose from \(20, 24, 28\)"),
])
def test_bad_architectures_are_refused_with_a_clear_message(change, message):
    data = {**smallest_plain_architecture(SPACE).to_dict(), **change}
    with pytest.raises(ArchitectureError, match=message):
        families.architecture_from_dict(data, SPACE.name)
    with pytest.raises(ArchitectureError, match=message):
        LAYOUT.encode(PlainArchitecture.from_dict(data))  # unvalidated: encode validates


def test_search_engine_breeds_canonical_plain_genes():
    counter = PlainComplexityCounter(SPACE)
    problem = SearchProblem(LAYOUT, [Objective("macs", counter.macs),
                                     Objective("neg_params", lambda g: -counter.params(g))])
    result = NSGA2(problem, NSGA2Config(pop_size=16, n_evaluations=200, seed=0)).run()
    assert (LAYOUT.canonicalize(result.genes) == result.genes).all()
    assert len({r.tobytes() for r in result.genes}) == len(result.genes)
    assert all(isinstance(a, PlainArchitecture) for a in LAYOUT.decode(result.genes[result.front]))
