"""The ``plain`` family's elastic supernet: it computes what its extracted static subnets compute.

The extracted subnet is what gets exported, measured and deployed, so the supernet's forward (what
training and accuracy collection run) must equal it for every subnet. Checked on the ``fmnist-cnn``
preset with random BN statistics; channel sorting on it and on a tiny space whose first stage has a
layer that never ends it (that layer gets its own channel order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.accuracy.features import count_macs_params
from hwnas.export.bn_fold import fold_batchnorm
from hwnas.export.onnx_export import check_parity, export_subnet, read_metadata
from hwnas.families import macs_and_params
from hwnas.plain_arch import (PlainArchitecture, largest_plain_architecture, plain_plan, sample_plain_architecture,
                              smallest_plain_architecture)
from hwnas.errors import SpaceError
from hwnas.space import get_space, space_from_dict
from hwnas.supernet.network import build_supernet
from hwnas.supernet.plain import ElasticPlainCNN, PlainConvLayer, PlainHead, SubnetPlainCNN
from hwnas.supernet.static import ConvBNAct

from tiny_spaces import tiny_plain_space  # noqa: E402 (tests/ is on sys.path)

torch.set_num_threads(1)
SPACE = get_space("fmnist-cnn")
TINY = tiny_plain_space()
VGG = get_space("fmnist-vgg")  # flattened head with a hidden layer
RESVGG = get_space("fmnist-resvgg")  # the same with identity skips around every layer but a stage's first


@torch.no_grad()
def randomize_bn(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so slicing a wrong channel shows."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.2, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.2, generator=g)
    return net


def random_net(space=SPACE, seed: int = 0) -> ElasticPlainCNN:
    torch.manual_seed(seed)
    net = build_supernet(space)
    nn.init.normal_(net.classifier.linear.weight, 0, 0.5)  # a visible classifier, not 0.01-scale logits
    return randomize_bn(net, seed).eval()


def parity_architectures(space=SPACE, n_random: int = 20, seed: int = 0) -> list[PlainArchitecture]:
    """Largest and smallest at every resolution, then random subnets cycling through the resolutions."""
    rng = np.random.default_rng(seed)
    archs = [f(space, r) for r in space.resolutions for f in (largest_plain_architecture, smallest_plain_architecture)]
    for i in range(n_random):
        archs.append(sample_plain_architecture(space, rng, resolution=space.resolutions[i % len(space.resolutions)]))
    return archs


def images(arch: PlainArchitecture, batch: int = 2, seed: int = 0, space=SPACE) -> torch.Tensor:
    return torch.randn(batch, space.in_channels, arch.resolution, arch.resolution,
                       generator=torch.Generator().manual_seed(seed))


def test_supernet_is_registered_and_holds_the_largest_shapes():
    net = build_supernet(SPACE)
    assert isinstance(net, ElasticPlainCNN)
    widest = plain_plan(SPACE, largest_plain_architecture(SPACE))
    assert len(net.layers) == SPACE.num_layers == len(widest.layers)
    for layer, spec in zip(net.layers, widest.layers):
        assert tuple(layer.weight.shape) == (spec.out_channels, spec.in_channels, SPACE.max_kernel, SPACE.max_kernel)
    assert tuple(net.classifier.linear.weight.shape) == (SPACE.num_classes, widest.features)
    assert net.active == largest_plain_architecture(SPACE)
    assert net.set_smallest() == smallest_plain_architecture(SPACE) == net.active


@pytest.mark.parametrize("space", [SPACE, VGG, RESVGG], ids=lambda s: s.name)
def test_extracted_subnets_compute_what_the_supernet_computes(space):
    net = random_net(space)
    archs = parity_architectures(space)
    assert len(archs) >= 20 + 2 * len(space.resolutions)
    assert {a.resolution for a in archs} == set(space.resolutions)
    for i, arch in enumerate(archs):
        x = images(arch, seed=i, space=space)
        net.set_active(arch)
        with torch.no_grad():
            expected = net(x)
            sub = net.extract()
            assert isinstance(sub, SubnetPlainCNN) and sub.arch == arch and not sub.training
            got = sub(x)
            channels_last = net(x.to(memory_format=torch.channels_last))
        assert expected.abs().max() > 1e-2, "logits too small for the comparison to mean anything"
        tolerance = 1e-5 * max(1.0, expected.abs().max().item())  # float32 rounding grows with the logits' scale
        assert (got - expected).abs().max().item() <= tolerance, arch
        assert (channels_last - expected).abs().max().item() <= tolerance, arch


def test_the_static_subnet_runs_the_planned_layers():
    net = random_net()
    arch = sample_plain_architecture(SPACE, 3)
    sub = net.extract(arch)
    plan = plain_plan(SPACE, arch)
    assert len(sub.layers) == len(plan.layers)
    for layer, spec in zip(sub.layers, plan.layers):
        assert isinstance(layer, PlainConvLayer) and isinstance(layer.conv, ConvBNAct)
        assert (layer.pool is not None) == spec.pool
        assert tuple(layer.conv.conv.weight.shape) == (spec.out_channels, spec.in_channels, spec.kernel, spec.kernel)
    assert isinstance(sub.head, PlainHead) and sub.head.classifier.in_features == plan.features
    shared, rest = sub.split_shared()
    x = images(arch)
    with torch.no_grad():
        assert torch.equal(rest(shared(x)), sub(x))


@pytest.mark.parametrize("space", [SPACE, TINY, VGG, RESVGG], ids=lambda s: s.name)
def test_sorting_channels_keeps_the_full_width_function_at_every_depth_and_kernel(space):
    net = random_net(space, seed=1)
    rng = np.random.default_rng(1)
    full = len(space.width_mults) - 1
    archs = [largest_plain_architecture(space, r) for r in space.resolutions]
    for _ in range(6):
        a = sample_plain_architecture(space, rng)
        archs.append(PlainArchitecture(a.depth, a.kernel, (full,) * space.num_stages, a.resolution))
    before = []
    with torch.no_grad():
        for i, arch in enumerate(archs):
            net.set_active(arch)
            before.append(net(images(arch, seed=i, space=space)))
        net.sort_channels()
        for i, arch in enumerate(archs):
            net.set_active(arch)
            tolerance = 1e-5 * max(1.0, before[i].abs().max().item())  # float32 rounding, at the logits' scale
            assert (net(images(arch, seed=i, space=space)) - before[i]).abs().max().item() <= tolerance, arch
    # the leading channels are now the important ones: every layer's filter norms run downhill,
    # summed over the layers that share one order
    exits = [layer for p, layer in zip(net.positions, net.layers)  # with skips, a stage shares one order
             if space.residual or p.position >= space.base_depths[p.stage] + min(space.depths) - 1]
    inner = [layer for layer in net.layers if all(layer is not e for e in exits)]
    assert len(inner) == (1 if space is TINY else 0)
    for layer in inner:
        assert torch.all(layer.importance()[:-1] >= layer.importance()[1:])
    for stage in range(space.num_stages):
        shared = sum(layer.importance() for p, layer in zip(net.positions, net.layers)
                     if p.stage == stage and any(layer is e for e in exits))
        assert torch.all(shared[:-1] >= shared[1:])


def test_sorting_changes_what_a_narrow_subnet_sees():
    """Without sorting the narrow slices would be arbitrary channels: after it they are the strongest."""
    net = random_net(TINY, seed=2)
    arch = smallest_plain_architecture(TINY)
    with torch.no_grad():
        net.set_active(arch)
        before = net(images(arch, space=TINY))
        net.sort_channels()
        assert not torch.allclose(net(images(arch, space=TINY)), before)


def test_folding_batchnorm_leaves_no_bn_and_the_same_outputs():
    net = random_net()
    for arch in parity_architectures(n_random=3, seed=2)[-4:]:
        sub = net.extract(arch).eval()
        folded = fold_batchnorm(sub)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        x = images(arch)
        with torch.no_grad():
            assert (folded(x) - sub(x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("space", [SPACE, VGG, RESVGG], ids=lambda s: s.name)
def test_subnet_exports_to_onnx_within_parity(tmp_path, space):
    net = random_net(space)
    for i, arch in enumerate([largest_plain_architecture(space, min(space.resolutions)),
                              sample_plain_architecture(space, 6)]):
        sub = net.extract(arch).eval()
        path = export_subnet(sub, arch, tmp_path / f"plain{i}.onnx")
        assert read_metadata(path)["architecture"] == arch.to_dict()
        _, max_rel = check_parity(path, sub, images(arch, batch=3, seed=i, space=space))
        assert max_rel <= 1e-4


def test_a_flattened_head_reads_every_position_of_the_leading_channels():
    """fmnist-vgg's head: flatten (channel-major) -> hidden ReLU layer -> dropout -> classifier, sliced to
    the active last-stage width; a change at any position of an active channel moves the logits, a
    change in an inactive channel does not."""
    net = random_net(VGG).eval()
    arch = sample_plain_architecture(VGG, 2)
    plan = plain_plan(VGG, arch)
    sub = net.extract(arch).eval()
    assert sub.head.flatten and sub.head.hidden.in_features == plan.features * plan.final_size ** 2
    assert (sub.head.hidden.out_features, sub.head.classifier.in_features) == (VGG.head_hidden, VGG.head_hidden)
    feats = torch.randn(1, plan.features, plan.final_size, plan.final_size, generator=torch.Generator().manual_seed(0))
    moved = feats.clone()
    moved[0, -1, -1, -1] += 5.0  # the last position of the last active channel
    with torch.no_grad():
        assert not torch.allclose(sub.head(moved), sub.head(feats))


def test_a_flattened_head_needs_one_final_map_size():
    import dataclasses

    with pytest.raises(SpaceError, match="one final map size"):
        dataclasses.replace(VGG, name="vgg-two-sizes", resolutions=(24, 28))
    with pytest.raises(SpaceError, match="head must be one of"):
        dataclasses.replace(VGG, name="vgg-bad-head", head="attention")


def test_the_plain_head_fields_keep_earlier_spaces_fingerprints():
    """head / head_hidden came after fmnist-cnn's artifacts shipped: at their defaults they stay out of
    the description, so its table, predictor and checkpoint still match; any other value changes it."""
    import dataclasses

    assert "head" not in SPACE.to_dict() and VGG.to_dict()["head"] == "flatten"
    assert dataclasses.replace(SPACE, head_hidden=64).fingerprint() != SPACE.fingerprint()
    assert space_from_dict(VGG.to_dict()) == VGG


@pytest.mark.parametrize("space", [VGG, RESVGG], ids=lambda s: s.name)
def test_a_layer_whose_bn_outputs_zero_can_be_dropped_only_with_skips(space):
    """Why the skips: with them, a layer contributing nothing is an identity, so the subnet one layer
    shorter computes the same logits (elastic depth leaves a stage's representation in place);
    without them the shorter stage hands the next stage a different layer's features."""
    net = random_net(space)
    long = PlainArchitecture((3, 3, 3), (3,) * space.num_layers, (4, 4, 4), 28)
    short = PlainArchitecture((3, 2, 3), long.kernel, long.width, 28)
    dropped = net.layers[[p.layer for p in net.positions if p.stage == 1][2]]
    with torch.no_grad():
        dropped.bn.weight.zero_()
        dropped.bn.bias.zero_()
        x = images(long, space=space)
        same = torch.allclose(net.set_active(long) and net(x), net.set_active(short) and net(x), atol=1e-5)
    assert same == space.residual
    kinds = [(layer.residual, layer.conv.act is None) for layer in net.extract(long).layers]
    assert kinds == [(space.residual and i % 3 > 0,) * 2 for i in range(9)]


def test_identity_skips_keep_earlier_spaces_fingerprints():
    """``residual`` came after fmnist-vgg shipped: off, it stays out of the description (same fingerprint);
    on, it is part of it, and a non-boolean value is refused."""
    import dataclasses

    assert "residual" not in VGG.to_dict() and RESVGG.to_dict()["residual"] is True
    assert dataclasses.replace(RESVGG, name=VGG.name, description=VGG.description, residual=False) == VGG
    assert RESVGG.fingerprint() != dataclasses.replace(RESVGG, residual=False).fingerprint()
    assert space_from_dict(RESVGG.to_dict()) == RESVGG
    with pytest.raises(SpaceError, match="residual must be true or false"):
        dataclasses.replace(RESVGG, name="bad-skips", residual="yes")


def test_training_steps_on_sampled_subnets_change_weights_and_stay_finite():
    torch.manual_seed(0)
    net = build_supernet(SPACE).to(memory_format=torch.channels_last).train()
    start = {k: v.detach().clone() for k, v in net.state_dict().items()}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    for step in range(4):
        arch = net.set_largest() if step == 0 else net.sample_active(rng)
        x = torch.randn(8, 1, arch.resolution, arch.resolution).to(memory_format=torch.channels_last)
        y = torch.randint(0, SPACE.num_classes, (8,))
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    for name, value in net.state_dict().items():
        assert torch.isfinite(value.float()).all(), name
    changed = [k for k, v in net.state_dict().items() if k.endswith("weight") and not torch.equal(v, start[k])]
    assert {f"layers.{i}.weight" for i in range(SPACE.num_layers)} <= set(changed)
    assert "classifier.linear.weight" in changed
    assert not torch.equal(net.layers[0].bn.running_mean, start["layers.0.bn.running_mean"])


@pytest.mark.parametrize("space", [SPACE, VGG, RESVGG], ids=lambda s: s.name)
def test_macs_and_params_match_hooks_on_the_static_subnet(space):
    net = build_supernet(space)
    for arch in parity_architectures(space, n_random=6, seed=4):
        expected = count_macs_params(net.extract(arch), (1, space.in_channels, arch.resolution, arch.resolution))
        assert macs_and_params(space, arch) == expected, arch


def test_search_reads_a_plain_checkpoints_space(tmp_path):
    """hwnas search --supernet on a trained plain supernet: its stored space is a PlainSpace, not mbconv's."""
    from hwnas.search.runner import resolve_space
    from hwnas.supernet.checkpoint import save_supernet

    path = save_supernet(tmp_path / "cnn.safetensors", ElasticPlainCNN("fmnist-cnn"))
    space, supernet = resolve_space(path, None)
    assert space.name == "fmnist-cnn" and space.family == "plain" and Path(supernet) == path
