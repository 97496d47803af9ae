"""Supernet: subnet extraction parity, elastic kernel, channel sorting, complexity, checkpoints."""

import numpy as np
import pytest
import torch

from hwnas.arch import largest_architecture, sample_architecture, smallest_architecture
from hwnas.complexity import ComplexityCounter, macs_and_params
from hwnas.errors import HwnasError, SpaceError
from hwnas.supernet import ElasticMobileNetV3
from hwnas.supernet.checkpoint import load_supernet, save_supernet

torch.set_num_threads(1)


def randomise(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and kernel matrices, so parity checks can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
        for name, p in net.named_parameters():
            if "matrix" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return randomise(ElasticMobileNetV3("fmnist-mbv3"))


@pytest.mark.parametrize("seed", range(6))
def test_extracted_subnet_equals_active_path(net, seed):
    arch = sample_architecture(net.space, seed)
    net.set_active(arch)
    x = torch.randn(2, 1, arch.resolution, arch.resolution)
    expected = net(x)
    sub = net.extract(arch).eval()
    assert torch.allclose(sub(x), expected, atol=1e-6, rtol=1e-5)
    # the static subnet is standalone: changing the supernet does not change it
    assert len(sub.blocks) == 1 + sum(arch.depth)
    assert not any("matrix" in n for n, _ in sub.named_parameters())


def test_depth_changes_output_and_uses_first_blocks(net):
    big = largest_architecture(net.space)
    shallow = type(big)(big.kernel, big.expand, (2,) * 5, big.resolution)
    x = torch.randn(1, 1, 32, 32)
    net.set_active(big)
    y_big = net(x)
    net.set_active(shallow)
    assert not torch.allclose(net(x), y_big)


def test_elastic_kernel_uses_transform_matrices(net):
    block = net.blocks[1].conv.depth_conv["conv"]
    w5 = block.active_weight(8, 5)
    centre = block.weight[:8, :, 1:6, 1:6].reshape(8, 25)
    expected = (centre @ getattr(block, "7to5_matrix").T).reshape(8, 1, 5, 5)
    assert torch.allclose(w5, expected)
    assert block.active_weight(8, 3).shape == (8, 1, 3, 3)


def test_sort_channels_preserves_largest_network():
    torch.manual_seed(1)
    net = randomise(ElasticMobileNetV3("fmnist-mbv3"), 1)
    net.set_active(largest_architecture(net.space))
    x = torch.randn(2, 1, 32, 32)
    before = net(x)
    net.sort_channels()
    assert torch.allclose(net(x), before, atol=1e-5)
    imp = net.blocks[1].conv.point_linear["conv"].weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(imp[:-1] >= imp[1:])


@pytest.mark.parametrize("space", ["fmnist-mbv3", "ofa-mbv3-w1.0"])
def test_analytic_complexity_matches_module_count(space):
    net = ElasticMobileNetV3(space).eval()
    for seed in range(2):
        arch = sample_architecture(space, seed)
        sub = net.extract(arch)
        macs = [0]

        def hook(mod, inp, out):
            if isinstance(mod, torch.nn.Conv2d):
                macs[0] += out[0].numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            elif isinstance(mod, torch.nn.Linear):
                macs[0] += mod.in_features * mod.out_features

        handles = [m.register_forward_hook(hook) for m in sub.modules()]
        with torch.no_grad():
            sub(torch.randn(1, net.space.in_channels, arch.resolution, arch.resolution))
        for h in handles:
            h.remove()
        assert macs_and_params(space, arch) == (macs[0], sum(p.numel() for p in sub.parameters()))


def test_vectorised_complexity_matches_scalar():
    counter = ComplexityCounter("fmnist-mbv3")
    genes = counter.layout.random(50, 3)
    macs, params = counter.macs(genes), counter.params(genes)
    for i, arch in enumerate(counter.layout.decode(genes)):
        assert (macs[i], params[i]) == macs_and_params("fmnist-mbv3", arch)
    small = counter.layout.encode(smallest_architecture("fmnist-mbv3"))
    assert counter.macs(small)[0] <= macs.min() and counter.params(small)[0] <= params.min()


def test_checkpoint_roundtrip_and_refusals(net, tmp_path):
    path = save_supernet(tmp_path / "s.safetensors", net, {"note": "x"})
    loaded, extra = load_supernet(path)
    assert extra == {"note": "x"}
    arch = sample_architecture(net.space, 11)
    net.set_active(arch)
    loaded.set_active(arch)
    x = torch.randn(1, 1, arch.resolution, arch.resolution)
    assert torch.equal(loaded.eval()(x), net(x))
    with pytest.raises(SpaceError, match="different search space"):
        load_supernet(path, space="ofa-mbv3-w1.0")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(HwnasError, match="not a readable"):
        load_supernet(tmp_path / "junk.safetensors")
    with pytest.raises(HwnasError, match="does not exist"):
        load_supernet(tmp_path / "missing.safetensors")


def test_kernel_trimming_is_exact_in_forward_and_backward():
    """Trimming depthwise kernels to the taps that reach the input must not change outputs or gradients."""
    import copy

    from hwnas.supernet.elastic import DynamicDepthwiseConv, trim_kernel_to_input

    assert trim_kernel_to_input(torch.ones(4, 1, 7, 7), 2, 2).shape == (4, 1, 3, 3)
    assert trim_kernel_to_input(torch.ones(4, 1, 7, 7), 3, 5).shape == (4, 1, 5, 7)
    torch.manual_seed(0)
    trimmed = ElasticMobileNetV3("fmnist-mbv3").train()
    full = copy.deepcopy(trimmed)
    for module in full.modules():
        if isinstance(module, DynamicDepthwiseConv):
            module.trim_kernel = False
    rng = np.random.default_rng(0)
    for i, arch in enumerate([largest_architecture(trimmed.space)] +
                             [sample_architecture(trimmed.space, rng) for _ in range(2)]):
        x = torch.randn(8, 1, arch.resolution, arch.resolution)
        outputs = []
        for net in (trimmed, full):
            net.zero_grad()
            net.set_active(arch)
            torch.manual_seed(i)  # same dropout mask
            out = net(x)
            out.square().sum().backward()
            outputs.append(out)
        torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
        for (name, a), b in zip(trimmed.named_parameters(), full.parameters()):
            if b.grad is not None:
                torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
