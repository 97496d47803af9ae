"""The ``ofa-resnet50`` space computes what once-for-all's ``OFAResNets`` computes.

Same protocol as tests/test_ofa_parity.py (its random weights, key-style rewriting and comparison
are reused): OFA's network gets random weights, is saved in both key styles, loaded into our
supernet and compared subnet by subnet, as a supernet and as an extracted static subnet. A missing
``ofa`` package fails these tests (``HWNAS_ALLOW_SKIP_OFA=1`` skips them). Small resolutions and
batch 1 keep them quick on a busy CPU. Also: MACs/params against hooks, ONNX export parity, a search
run exported from the CLI, and that the mbconv-only pieces say so.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.encoding import GeneLayout
from hwnas.families import gene_layout
from hwnas.errors import ArchitectureError, SpaceError
from hwnas.export.onnx_export import check_parity, export_subnet, read_metadata
from hwnas.resnet_arch import (ResNetArchitecture, largest_resnet_architecture, resnet_macs_and_params,
                               sample_resnet_architecture, smallest_resnet_architecture)
from hwnas.space import get_space
from ofa_stub import require_ofa  # tests/ is on sys.path
from test_ofa_parity import (N_RANDOM_SUBNETS, assert_key_styles_load_the_same_weights, cli_export_from_weights,
                             load_key_styles, parity_failures, randomize)

torch.set_num_threads(1)

SPACE = "ofa-resnet50"
OFA_KWARGS = dict(n_classes=1000, dropout_rate=0, depth_list=[0, 1, 2], expand_ratio_list=[0.2, 0.25, 0.35],
                  width_mult_list=[0.65, 0.8, 1.0])


@pytest.fixture(scope="module")
def ofa_net() -> nn.Module:
    cls = require_ofa("ofa.imagenet_classification.elastic_nn.networks.ofa_resnets", "OFAResNets")
    return randomize(cls(**OFA_KWARGS), seed=0)


@pytest.fixture(scope="module")
def loaded(ofa_net: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, nn.Module]:
    return load_key_styles(ofa_net, tmp_path_factory.mktemp("ofa_resnet"), SPACE)


def ofa_resnet_forward(ofa_model: nn.Module, arch: ResNetArchitecture, x: torch.Tensor) -> torch.Tensor:
    ofa_model.set_active_subnet(d=list(arch.depth), e=list(arch.expand), w=list(arch.width))
    return ofa_model(x)


def parity_architectures(seed: int = 0) -> list[ResNetArchitecture]:
    """Largest at 160 px, smallest at 128 px, random subnets at 128..160 px."""
    rng = np.random.default_rng(seed)
    archs = [largest_resnet_architecture(SPACE, 160), smallest_resnet_architecture(SPACE, 128)]
    for _ in range(N_RANDOM_SUBNETS):
        archs.append(sample_resnet_architecture(SPACE, rng, resolution=int(rng.choice(range(128, 161, 4)))))
    return archs


def test_preset_matches_ofa_shapes(ofa_net):
    space = get_space(SPACE)
    assert [len(ids) for ids in ofa_net.grouped_block_index] == list(space.stage_max_blocks)
    assert len(ofa_net.blocks) == space.num_blocks
    for i, mult in enumerate(space.width_mults):
        assert ofa_net.input_stem[0].out_channel_list[i] == space.stem_widths(i, i)[0]
        assert ofa_net.input_stem[2].out_channel_list[i] == space.stem_widths(i, i)[1]
        assert [ofa_net.blocks[ids[0]].out_channel_list[i] for ids in ofa_net.grouped_block_index] == \
            [space.stage_width(s, i) for s in range(space.num_stages)]


def test_both_key_styles_load_the_same_weights(ofa_net, loaded):
    assert_key_styles_load_the_same_weights(ofa_net, loaded, SPACE)


def test_subnets_match_ofa_outputs(ofa_net, loaded):
    archs = parity_architectures()
    assert len(archs) >= N_RANDOM_SUBNETS + 2
    assert {a.depth[0] for a in archs} == {0, 2}  # the stem's skippable conv both runs and is skipped
    failures = parity_failures(ofa_net, loaded, archs, batch=1, forward=ofa_resnet_forward)
    assert not failures, "outputs differ from once-for-all:\n" + "\n".join(failures)


def test_macs_and_params_match_the_extracted_subnet(loaded):
    from hwnas.accuracy.features import count_macs_params

    net = loaded["nested"]
    for arch in parity_architectures(seed=5)[:4]:
        expected = count_macs_params(net.extract(arch), (1, 3, arch.resolution, arch.resolution))
        assert resnet_macs_and_params(SPACE, arch) == expected


def test_subnet_exports_to_onnx_within_parity(loaded, tmp_path):
    arch = parity_architectures(seed=6)[3]
    subnet = loaded["nested"].extract(arch).eval()
    path = export_subnet(subnet, arch, tmp_path / "resnet.onnx")
    x = torch.randn(2, 3, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(0))
    _, max_rel = check_parity(path, subnet, x)
    assert max_rel <= 1e-4


def test_architectures_validate_and_read_ofa_dicts():
    arch = sample_resnet_architecture(SPACE, 1)
    assert ResNetArchitecture.from_dict(arch.to_ofa_dict(), SPACE) == arch
    assert ResNetArchitecture.from_dict(arch.to_dict(), SPACE) == arch
    bad = arch.to_dict()
    bad["depth"] = [1, *bad["depth"][1:]]
    with pytest.raises(ArchitectureError, match=r"depth\[0\] \(the stem\) = 1 is not allowed"):
        ResNetArchitecture.from_dict(bad, SPACE)
    bad = {**arch.to_dict(), "width": [3] * 6}
    with pytest.raises(ArchitectureError, match="not a width-multiplier index"):
        ResNetArchitecture.from_dict(bad, SPACE)


def test_mbconv_only_pieces_refuse_the_family_clearly(capsys):
    """The MBConv gene layout and architecture type name the family instead of failing deep inside;
    steps that work on any family get the resnet layout from hwnas.families."""
    with pytest.raises(SpaceError, match=r"not available for space 'ofa-resnet50' \(resnet family\)"):
        GeneLayout(SPACE)
    assert type(gene_layout(SPACE)).__name__ == "ResNetGeneLayout"
    with pytest.raises(SpaceError, match="resnet family"):
        Architecture((3,), (3,), (2,), 128).validate(SPACE)
    assert main(["spaces"]) == 0
    assert SPACE in capsys.readouterr().out


def test_cli_exports_a_subnet_from_the_published_weights(ofa_net, tmp_path):
    """``hwnas export --arch A --supernet ofa-resnet50 --weights FILE`` with once-for-all's d/e/w dict."""
    arch = parity_architectures(seed=8)[2]
    meta = cli_export_from_weights(ofa_net, tmp_path, SPACE, arch)
    assert ResNetArchitecture.from_dict(meta["architecture"], SPACE) == arch and meta["space"] == SPACE


def test_cli_searches_then_exports_a_front_model(ofa_net, tmp_path):
    """``hwnas search --space ofa-resnet50 --objectives macs,params`` (no table), then ``hwnas export RUN
    --pick 1`` of its front with the published weights: the exported model is the record's subnet."""
    run = tmp_path / "run"
    assert main(["search", "--space", SPACE, "--objectives", "macs,params", "--evaluations", "100",
                 "--population", "16", "--macs-cap", "700", "--out", str(run), "--no-progress", "--no-plot"]) == 0
    front = json.loads((run / "front.json").read_text())
    weights = tmp_path / "ofa_weights.pth"
    torch.save({"state_dict": ofa_net.state_dict()}, weights)
    out = tmp_path / "exports"
    assert main(["export", str(run), "--pick", "1", "--supernet", SPACE, "--weights", str(weights), "--out", str(out),
                 "--calib-images", "0", "--eval-images", "0", "--parity-images", "2", "--no-measure",
                 "--no-progress"]) == 0
    (model,) = sorted((out / "models").glob("*.onnx"))  # --pick 1 without latency: the fewest MACs
    exported = ResNetArchitecture.from_dict(read_metadata(model)["architecture"], SPACE)
    fewest = min(r["macs"] for r in front)
    assert exported in [ResNetArchitecture.from_dict(r["arch"], SPACE) for r in front if r["macs"] == fewest]
