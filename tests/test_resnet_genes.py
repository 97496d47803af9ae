"""Gene encoding of the resnet family: round trips, canonical genes, sampling, vectorised MACs/params."""

import numpy as np
import pytest

from hwnas.encoding import GeneLayout
from hwnas.errors import ArchitectureError
from hwnas.families import complexity_counter, gene_layout
from hwnas.resnet_arch import (ResNetArchitecture, largest_resnet_architecture, resnet_macs_and_params,
                               sample_resnet_architecture, smallest_resnet_architecture)
from hwnas.resnet_encoding import ResNetGeneLayout
from hwnas.search.nsga2 import NSGA2, NSGA2Config
from hwnas.search.problem import Objective, SearchProblem
from tests.tiny_spaces import tiny_resnet_space

TINY = tiny_resnet_space()


@pytest.mark.parametrize("space", [TINY.name, "ofa-resnet50"])
def test_layout_dispatches_per_family_and_round_trips(space):
    layout = gene_layout(space)
    assert isinstance(layout, ResNetGeneLayout) and isinstance(gene_layout("fmnist-mbv3"), GeneLayout)
    archs = [sample_resnet_architecture(space, seed) for seed in range(40)]
    genes = layout.encode(archs)
    assert genes.shape == (40, layout.num_genes) and genes.dtype == np.int8
    assert layout.decode(genes) == archs
    for arch in (largest_resnet_architecture(space), smallest_resnet_architecture(space)):
        assert layout.decode(layout.encode(arch)) == [arch]
    assert (layout.encode(largest_resnet_architecture(space))[0] == layout.cardinalities - 1).all()
    assert not layout.encode(smallest_resnet_architecture(space)).any()


def test_gene_groups_follow_the_space():
    layout = ResNetGeneLayout("ofa-resnet50")
    # stem depth {0, 2}, four stage depths, 18 blocks' expand, 2 + 4 width indices, 25 resolutions
    assert layout.num_genes == 1 + 4 + 18 + 6 + 1
    assert layout.cardinalities[0] == 2 and (layout.cardinalities[1:5] == 3).all()
    assert layout.cardinalities[-1] == 25
    assert layout.decode(np.zeros((1, layout.num_genes), np.int8))[0].depth == (0, 0, 0, 0, 0)


def test_random_genes_decode_to_valid_architectures_and_cover_every_choice():
    layout = gene_layout(TINY)
    genes = layout.random(500, rng=0)
    for arch in layout.decode(genes):
        arch.validate(TINY)
    assert all(len(np.unique(genes[:, g])) == c for g, c in enumerate(layout.cardinalities))
    with pytest.raises(ArchitectureError, match="outside the space"):
        layout.check(np.full((1, layout.num_genes), 9, np.int8))


def test_canonicalisation_zeroes_only_expand_genes_of_blocks_that_do_not_run():
    layout = gene_layout("ofa-resnet50")
    genes = layout.random(300, rng=1)
    canon = layout.canonicalize(genes)
    active = layout.active(genes)
    assert (canon[:, layout.expand_genes][~active] == 0).all()
    assert (canon[:, layout.expand_genes][active] == genes[:, layout.expand_genes][active]).all()
    keep = np.ones(layout.num_genes, bool)
    keep[layout.expand_genes] = False
    assert (canon[:, keep] == genes[:, keep]).all()
    # same network: same MACs, and the decoded architectures run the same blocks
    counter = complexity_counter("ofa-resnet50")
    assert (counter.macs(canon) == counter.macs(genes)).all()
    # a stage at its smallest depth runs exactly its base blocks
    arch = layout.decode(canon[:1])[0]
    first = 0
    for stage, base in enumerate(layout.space.base_depths):
        n = base + arch.depth[1 + stage]
        assert active[0, first:first + n].all() and not active[0, first + n:first + base + 2].any()
        first += base + 2


@pytest.mark.parametrize("space", [TINY.name, "ofa-resnet50"])
def test_vectorised_costs_equal_the_per_architecture_count(space):
    layout, counter = gene_layout(space), complexity_counter(space)
    genes = np.concatenate([layout.random(200, rng=2), layout.encode(largest_resnet_architecture(space)),
                            layout.encode(smallest_resnet_architecture(space))])
    expected = np.array([resnet_macs_and_params(space, a) for a in layout.decode(genes)])
    assert (counter.macs(genes) == expected[:, 0]).all()
    assert (counter.params(genes) == expected[:, 1]).all()
    assert len(np.unique(expected[:, 0])) > 50  # the genes do change the network


def test_search_engine_breeds_canonical_resnet_genes():
    layout = gene_layout(TINY)
    counter = complexity_counter(TINY)
    problem = SearchProblem(layout, [Objective("macs", counter.macs), Objective("neg_params", lambda g: -counter.params(g))])
    result = NSGA2(problem, NSGA2Config(pop_size=16, n_evaluations=200, seed=0)).run()
    assert (layout.canonicalize(result.genes) == result.genes).all()
    assert len({r.tobytes() for r in result.genes}) == len(result.genes)
    assert all(isinstance(a, ResNetArchitecture) for a in layout.decode(result.genes[result.front]))
