"""The ``ofa-proxyless-w1.3`` space computes what once-for-all's ``OFAProxylessNASNets`` computes.

Same protocol as the MobileNetV3 parity test (tests/test_ofa_parity.py, whose random weights and
key-style rewriting this reuses): OFA's network gets random weights, is saved in both published key
styles, loaded into our supernet and compared subnet by subnet, as a supernet and as an extracted
static subnet. A missing ``ofa`` package fails these tests (``HWNAS_ALLOW_SKIP_OFA=1`` skips them).
Small resolutions and batch 1 keep them quick on a busy CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.arch import Architecture
from hwnas.complexity import macs_and_params
from hwnas.encoding import GeneLayout
from hwnas.errors import HwnasError
from hwnas.space import get_space
from hwnas.supernet.ofa_checkpoint import load_ofa_supernet
from ofa_stub import require_ofa  # tests/ is on sys.path
import test_ofa_parity as mbv3_parity  # noqa: E402 (its protocol, reused)
from test_ofa_parity import (N_RANDOM_SUBNETS, assert_key_styles_load_the_same_weights, cli_export_from_weights,
                             load_key_styles, parity_failures, randomize)

torch.set_num_threads(1)

SPACE = "ofa-proxyless-w1.3"
OFA_KWARGS = dict(n_classes=1000, dropout_rate=0, width_mult=1.3, ks_list=[3, 5, 7],
                  expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])


@pytest.fixture(scope="module")
def ofa_net() -> nn.Module:
    cls = require_ofa("ofa.imagenet_classification.elastic_nn.networks.ofa_proxyless", "OFAProxylessNASNets")
    return randomize(cls(**OFA_KWARGS), seed=0)


@pytest.fixture(scope="module")
def loaded(ofa_net: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, nn.Module]:
    return load_key_styles(ofa_net, tmp_path_factory.mktemp("ofa_proxyless"), SPACE)


def parity_architectures(seed: int = 0) -> list[Architecture]:
    """Largest at 160 px (batch 1 on a busy CPU), smallest at 128 px, random subnets at 128..160 px."""
    return mbv3_parity.parity_architectures(seed, SPACE, largest_resolution=160)


def test_preset_matches_ofa_shapes(ofa_net):
    """Widths, strides, BN epsilon and the one-block last stage are once-for-all's."""
    space = get_space(SPACE)
    assert ofa_net.first_conv.conv.out_channels == space.stem_width
    assert ofa_net.blocks[0].conv.point_linear.conv.out_channels == space.first_block_width
    stages = [[ofa_net.blocks[i].conv for i in ids] for ids in ofa_net.block_group_info]
    assert [len(ids) for ids in stages] == [max(space.stage_depths(i)) for i in range(space.num_stages)]
    assert [s[0].active_out_channel for s in stages] == [st.width for st in space.stages]
    assert [s[0].stride for s in stages] == [st.stride for st in space.stages]
    assert ofa_net.feature_mix_layer.conv.out_channels == space.final_expand_width
    assert ofa_net.first_conv.bn.eps == space.bn_eps
    assert len(ofa_net.blocks) - 1 == sum(max(space.stage_depths(i)) for i in range(space.num_stages))


def test_both_key_styles_load_the_same_weights(ofa_net, loaded):
    assert_key_styles_load_the_same_weights(ofa_net, loaded, SPACE)


def test_subnets_match_ofa_outputs(ofa_net, loaded):
    archs = parity_architectures()
    assert len(archs) >= N_RANDOM_SUBNETS + 2 and len({a.depth for a in archs}) > N_RANDOM_SUBNETS // 2
    failures = parity_failures(ofa_net, loaded, archs, batch=1)
    assert not failures, "outputs differ from once-for-all:\n" + "\n".join(failures)


def test_macs_and_params_match_the_extracted_subnet(loaded):
    from hwnas.accuracy.features import FeatureEncoder, count_macs_params

    net = loaded["nested"]
    archs = parity_architectures(seed=5)[:4]
    encoder = FeatureEncoder(SPACE, "full")
    features = encoder.transform(GeneLayout(SPACE).encode(archs))
    macs_col = encoder.feature_names.index("macs")
    for arch, row in zip(archs, features):
        expected = count_macs_params(net.extract(arch), (1, 3, arch.resolution, arch.resolution))
        assert macs_and_params(SPACE, arch) == expected
        assert tuple(row[macs_col:macs_col + 2]) == tuple(np.float32(expected))  # float32 feature columns


def test_mobilenet_v3_file_is_refused_for_the_proxyless_space(tmp_path):
    mbv3 = require_ofa("ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3", "OFAMobileNetV3")
    path = tmp_path / "ofa_mbv3.pth"
    torch.save({"state_dict": mbv3(n_classes=1000, dropout_rate=0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                   depth_list=[2, 3, 4]).state_dict()}, path)
    with pytest.raises(HwnasError, match="does not match the 'ofa-proxyless-w1.3' supernet"):
        load_ofa_supernet(path, SPACE)


def test_cli_exports_a_subnet_from_the_published_weights(ofa_net, tmp_path):
    """``hwnas export --supernet ofa-proxyless-w1.3 --weights FILE``: ONNX within the export's parity check."""
    arch = parity_architectures(seed=7)[2]
    meta = cli_export_from_weights(ofa_net, tmp_path, SPACE, arch)
    assert Architecture.from_dict(meta["architecture"]) == arch and meta["space"] == SPACE
