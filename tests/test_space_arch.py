"""Search space presets, architecture validation / JSON round trips, gene encoding."""

import json

import numpy as np
import pytest

from hwnas.arch import Architecture, largest_architecture, sample_architecture, smallest_architecture
from hwnas.encoding import GeneLayout
from hwnas.errors import ArchitectureError, SpaceError
from hwnas.space import SearchSpace, StageSpec, get_space, list_spaces


def test_ofa_preset_is_the_published_network():
    s = get_space("ofa-mbv3-w1.0")
    assert [st.width for st in s.stages] == [24, 40, 80, 112, 160]
    assert [st.stride for st in s.stages] == [2, 2, 2, 1, 2]
    assert [st.se for st in s.stages] == [False, True, False, True, True]
    assert [st.act for st in s.stages] == ["relu", "relu", "hswish", "hswish", "hswish"]
    assert (s.stem_width, s.final_expand_width, s.feature_width, s.num_classes) == (16, 960, 1280, 1000)
    assert s.resolutions[0] == 128 and s.resolutions[-1] == 224
    assert s.kernel_sizes == (3, 5, 7) and s.expand_ratios == (3, 4, 6) and s.depths == (2, 3, 4)


def test_fmnist_preset_and_registry():
    s = get_space("fmnist-mbv3")
    assert (s.in_channels, s.num_classes) == (1, 10)
    assert set(list_spaces()) >= {"fmnist-mbv3", "ofa-mbv3-w1.0"}
    with pytest.raises(SpaceError, match="known spaces"):
        get_space("nope")


def test_fingerprint_changes_with_definition_not_name():
    s = get_space("fmnist-mbv3")
    renamed = SearchSpace.from_dict({**s.to_dict(), "name": "other"})
    assert renamed.fingerprint() == s.fingerprint()
    changed = SearchSpace.from_dict({**s.to_dict(), "feature_width": 256})
    assert changed.fingerprint() != s.fingerprint()
    with pytest.raises(SpaceError, match="different search space"):
        s.check_fingerprint(changed.fingerprint(), "table x")


@pytest.mark.parametrize("bad", [
    {"kernel_sizes": (3, 4)}, {"depths": ()}, {"stem_stride": 3}, {"resolutions": (4,)},
])
def test_malformed_space_rejected(bad):
    base = get_space("fmnist-mbv3").to_dict()
    with pytest.raises(SpaceError):
        SearchSpace.from_dict({**base, **bad})


def test_resnet_space_rejects_a_stride1_stage_as_wide_as_its_input():
    """once-for-all gives such a stage's first block an identity shortcut that breaks unequal-width subnets."""
    import dataclasses

    from tiny_spaces import tiny_resnet_space

    space = tiny_resnet_space()
    with pytest.raises(SpaceError, match="stage 0 has stride 1"):
        dataclasses.replace(space, name="bad-stem", stem_width=space.stage_widths[0])
    with pytest.raises(SpaceError, match="stage 1 has stride 1"):
        dataclasses.replace(space, name="bad-stage", stage_widths=(32, 32), stage_strides=(1, 1))
    dataclasses.replace(space, name="ok-stem", stem_width=space.stage_widths[0],
                        stage_strides=(2, *space.stage_strides[1:]))  # a strided first stage projects


def test_stage_validation():
    with pytest.raises(SpaceError, match="activation"):
        StageSpec(8, 1, False, "gelu")


def test_architecture_json_roundtrip_and_ofa_form():
    s = get_space("fmnist-mbv3")
    a = sample_architecture(s, 3)
    assert Architecture.from_json(a.to_json(), s) == a
    assert Architecture.from_dict(a.to_ofa_dict(), s) == a
    ofa = {"ks": list(a.kernel), "e": list(a.expand), "d": list(a.depth), "image_size": a.resolution}
    assert Architecture.from_dict(ofa, s) == a


@pytest.mark.parametrize("mutate, message", [
    (lambda d: {**d, "kernel": d["kernel"][:-1]}, "kernel list has 19"),
    (lambda d: {**d, "expand": [5] + d["expand"][1:]}, r"expand\[0\] = 5 is not allowed"),
    (lambda d: {**d, "depth": [1] + d["depth"][1:]}, r"depth\[0\] = 1"),
    (lambda d: {**d, "resolution": 30}, "resolution 30 is not allowed"),
    (lambda d: {"foo": 1}, "needs keys"),
])
def test_architecture_outside_space_rejected(mutate, message):
    s = get_space("fmnist-mbv3")
    data = mutate(largest_architecture(s).to_dict())
    with pytest.raises(ArchitectureError, match=message):
        Architecture.from_dict(data, s)


def test_bad_json_and_missing_file(tmp_path):
    with pytest.raises(ArchitectureError, match="not valid JSON"):
        Architecture.from_json("{", "fmnist-mbv3")
    with pytest.raises(ArchitectureError, match="does not exist"):
        Architecture.load(tmp_path / "x.json")
    (tmp_path / "a.json").write_text(json.dumps(smallest_architecture("fmnist-mbv3").to_dict()))
    assert Architecture.load(tmp_path / "a.json", "fmnist-mbv3").depth == (2,) * 5


def test_sampling_seeded_and_extremes():
    s = get_space("fmnist-mbv3")
    assert sample_architecture(s, 7) == sample_architecture(s, 7)
    assert sample_architecture(s, 7) != sample_architecture(s, 8)
    big, small = largest_architecture(s), smallest_architecture(s)
    assert set(big.kernel) == {7} and set(small.expand) == {3}
    assert big.resolution == 32 and small.resolution == 20


def test_gene_roundtrip_canonical_and_mask():
    layout = GeneLayout("fmnist-mbv3")
    genes = layout.random(200, 0)
    archs = layout.decode(genes)
    assert np.array_equal(layout.encode(archs), genes)
    canon = layout.canonicalize(genes)
    for arch, row in zip(archs, layout.decode(canon)):
        assert arch.canonical("fmnist-mbv3") == row
    v = layout.values(genes)
    assert np.array_equal(v.active.sum(1), v.depth.sum(1))
    with pytest.raises(ArchitectureError):
        layout.check(np.full((1, layout.num_genes), 9))
