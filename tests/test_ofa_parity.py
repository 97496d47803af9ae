"""Published once-for-all checkpoints load into our supernet and compute exactly what OFA computes.

This parity is a release requirement, so a missing ``ofa`` package FAILS these tests (install it
with ``pip install ofa --no-deps``); set ``HWNAS_ALLOW_SKIP_OFA=1`` to skip them locally instead.
``ofa`` imports torchvision only for its data loaders; when torchvision is absent a stub stands in
for it during the import only (see ``tests/ofa_stub.py``).

OFA's network gets random weights that make every part matter (non-identity BN, kernel matrices
``I + noise``, random SE), is saved in both key styles, and is compared with ours subnet by subnet.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.arch import Architecture, largest_architecture, sample_architecture, smallest_architecture
from hwnas.errors import HwnasError
from hwnas.space import get_space
from hwnas.supernet.ofa_checkpoint import (OFA_SPACE, head_key, load_ofa_state_dict, load_ofa_supernet,
                                           normalize_ofa_key)
from ofa_stub import require_ofa  # tests/ is on sys.path

torch.set_num_threads(1)

TOL = 1e-5
N_RANDOM_SUBNETS = 20
OFA_KWARGS = dict(n_classes=1000, dropout_rate=0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                  depth_list=[2, 3, 4])


# ----------------------------------------------------------------------------------- the ofa package
@pytest.fixture(scope="module")
def ofa_cls() -> type:
    return require_ofa("ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3", "OFAMobileNetV3")


@torch.no_grad()
def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights on a unit-variance scale (logits stay O(1), so TOL is ~1e-5 relative)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("_matrix"):
            p.copy_(torch.eye(p.shape[0]) + 0.1 * torch.randn(p.shape, generator=g))
        elif p.ndim == 4:
            p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
        elif p.ndim == 2:
            p.copy_(torch.randn(p.shape, generator=g) * (10.0 / p.shape[1]) ** 0.5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.copy_(0.1 * torch.randn(c, generator=g))
            m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.eval()


def old_flat_key(key: str) -> str:
    """OFA's nested key -> the older published spelling (``mobile_inverted_conv``, flat layers)."""
    if key.startswith("blocks."):
        index, rest = key[len("blocks."):].split(".", 1)
        if rest.startswith("conv."):
            key = f"blocks.{index}.mobile_inverted_conv.{rest[len('conv.'):]}"
    return key.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight") \
              .replace(".linear.linear.", ".linear.")


@pytest.fixture(scope="module")
def ofa_net(ofa_cls: type) -> nn.Module:
    return randomize(ofa_cls(width_mult=1.0, **OFA_KWARGS), seed=0)


@pytest.fixture(scope="module")
def ofa_files(ofa_net: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_ofa_files(ofa_net, tmp_path_factory.mktemp("ofa"))


def write_ofa_files(ofa_net: nn.Module, folder) -> dict[str, str]:
    """OFA's weights saved in both published key styles (experiments/ofa_parity.py uses it too)."""
    state = ofa_net.state_dict()
    nested, old = folder / "ofa_nested.pth", folder / "ofa_old_flat.pth"
    torch.save({"state_dict": state}, nested)  # as OFA saves it today: blocks.N.conv, bn.bn, conv.conv
    old_state = {f"module.{old_flat_key(k)}": v for k, v in state.items()}  # bare, DataParallel prefix
    mbconv = any(re.match(r"blocks\.\d+\.conv\.", k) for k in state)  # not ResNet's conv1/conv2/conv3
    assert any(".mobile_inverted_conv." in k for k in old_state) or not mbconv
    assert not any(".bn.bn." in k or ".conv.conv.conv." in k or ".linear.linear." in k for k in old_state)
    torch.save(old_state, old)
    return {"nested": str(nested), "old_flat": str(old)}


def load_key_styles(ofa_net: nn.Module, folder, space: str = OFA_SPACE) -> dict[str, nn.Module]:
    """Our supernet for ``space`` loaded from OFA's weights saved in each key style."""
    return {style: load_ofa_supernet(path, space) for style, path in write_ofa_files(ofa_net, folder).items()}


def cli_export_from_weights(ofa_net: nn.Module, folder, space: str, arch) -> dict:
    """``hwnas export --arch A --supernet SPACE --weights FILE`` (no images: parity on random inputs) with
    OFA's weights and ``arch`` in OFA's dict form; returns the exported model's metadata."""
    from hwnas.cli import main
    from hwnas.export.onnx_export import read_metadata

    weights, arch_file, out = folder / "ofa_weights.pth", folder / "arch.json", folder / "model.onnx"
    torch.save({"state_dict": ofa_net.state_dict()}, weights)
    arch_file.write_text(json.dumps(arch.to_ofa_dict()))
    assert main(["export", "--arch", str(arch_file), "--supernet", space, "--weights", str(weights), "--out",
                 str(out), "--calib-images", "0", "--eval-images", "0", "--parity-images", "2", "--no-progress"]) == 0
    return read_metadata(out)


@pytest.fixture(scope="module")
def loaded(ofa_files: dict[str, str]) -> dict[str, nn.Module]:
    return {style: load_ofa_supernet(path) for style, path in ofa_files.items()}


def parity_architectures(seed: int = 0, space: str = OFA_SPACE, largest_resolution: int = 224) -> list[Architecture]:
    """Largest at 224 px, smallest at 128 px, and random subnets at 128..160 px (2 shared cores)."""
    rng = np.random.default_rng(seed)
    archs = [largest_architecture(space, largest_resolution), smallest_architecture(space, 128)]
    for _ in range(N_RANDOM_SUBNETS):
        archs.append(sample_architecture(space, rng, resolution=int(rng.choice(range(128, 161, 4)))))
    return archs


def ofa_forward(ofa_model: nn.Module, arch: Architecture, x: torch.Tensor) -> torch.Tensor:
    ofa_model.set_active_subnet(ks=list(arch.kernel), e=list(arch.expand), d=list(arch.depth))
    return ofa_model(x)


def parity_outputs(ofa_net: nn.Module, loaded: dict[str, nn.Module], archs: list[Architecture] | None = None,
                   batch: int = 2, forward=ofa_forward):
    """Per subnet of ``archs`` (default :func:`parity_architectures`): ``(index, arch, x, OFA's output,
    {what: ours})``.

    ``what`` is the supernet loaded from each key style and, for every other subnet, a statically
    extracted subnet (slow to build). experiments/ofa_parity.py records the same comparison."""
    g = torch.Generator().manual_seed(1)
    for i, arch in enumerate(parity_architectures() if archs is None else archs):
        x = torch.randn(batch, 3, arch.resolution, arch.resolution, generator=g)
        expected = forward(ofa_net, arch, x)
        outputs = {}
        for style, net in loaded.items():
            net.set_active(arch)
            outputs[f"supernet[{style}]"] = net(x)
        if i % 2 == 0:
            extractor = loaded["nested" if i % 4 else "old_flat"]
            outputs["extract"] = extractor.extract(arch).eval()(x)
        yield i, arch, x, expected, outputs


def assert_key_styles_load_the_same_weights(ofa_net: nn.Module, loaded: dict[str, nn.Module],
                                            space: str = OFA_SPACE) -> None:
    """Every tensor of OFA's network lands, unchanged, under its normalised name in each loaded supernet."""
    space = get_space(space)
    reference = {head_key(space, normalize_ofa_key(k)): v for k, v in ofa_net.state_dict().items()}
    for style, net in loaded.items():
        ours = net.state_dict()
        assert set(ours) == set(reference), style
        different = [k for k in ours if not torch.equal(ours[k], reference[k])]
        assert not different, f"{style}: {different[:5]}"


@torch.no_grad()
def parity_failures(ofa_net: nn.Module, loaded: dict[str, nn.Module], archs: list[Architecture],
                    batch: int, forward=ofa_forward) -> list[str]:
    """One line per output of ours that differs from OFA's by more than ``TOL`` (``archs[0]`` must be
    another network than ``archs[2]``: that the subnet matters is checked on them)."""
    failures = []
    for i, arch, x, expected, outputs in parity_outputs(ofa_net, loaded, archs, batch, forward):
        assert expected.shape == (batch, 1000) and expected.abs().max() > 0.5  # logits are not trivially small
        for what, y in outputs.items():
            diff = (y - expected).abs().max().item()
            if not diff <= TOL:
                failures.append(f"{what} {arch.to_dict()}: max |diff| {diff:.3g}")
        if i == 2:  # the subnet really matters at this tolerance (the test can fail)
            assert (forward(ofa_net, archs[0], x) - expected).abs().max() > 1000 * TOL
    return failures


# ----------------------------------------------------------------------------------- parity
def test_both_key_styles_load_the_same_weights(ofa_net, loaded):
    assert_key_styles_load_the_same_weights(ofa_net, loaded)


def test_subnets_match_ofa_outputs(ofa_net, loaded):
    archs = parity_architectures()
    assert len(archs) >= N_RANDOM_SUBNETS and 224 in {a.resolution for a in archs}
    failures = parity_failures(ofa_net, loaded, archs, batch=2)
    assert not failures, "outputs differ from once-for-all:\n" + "\n".join(failures)


@torch.no_grad()
def test_float64_parity_is_exact(ofa_net, ofa_files):
    """In float64 the only differences left are rounding: same formulas, same order of transforms."""
    ofa64 = copy.deepcopy(ofa_net).double()
    ours64 = load_ofa_supernet(ofa_files["nested"]).double()
    kernel = (7, 5, 3, 3) * 5  # every transform chain: none, 7->5, 7->5->3
    arch = Architecture(kernel, (6, 4, 3, 4) * 5, (4, 3, 2, 4, 3), 128)
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = ofa_forward(ofa64, arch, x)
    ours64.set_active(arch)
    assert (ours64(x) - expected).abs().max().item() <= 1e-10
    assert (ours64.extract(arch).eval()(x) - expected).abs().max().item() <= 1e-10


def test_safetensors_file_loads(ofa_net, tmp_path):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in ofa_net.state_dict().items()}
    save_file(state, str(tmp_path / "ofa.safetensors"))
    loaded_state = load_ofa_state_dict(tmp_path / "ofa.safetensors")
    assert set(loaded_state) == {normalize_ofa_key(k) for k in state}
    assert all(torch.equal(loaded_state[normalize_ofa_key(k)], v) for k, v in state.items())
    (tmp_path / "ofa.safetensors").rename(tmp_path / "renamed.pth")  # recognised by content, not name
    net = load_ofa_supernet(tmp_path / "renamed.pth")
    assert torch.equal(net.state_dict()["blocks.5.conv.depth_conv.conv.weight"],
                       state["blocks.5.conv.depth_conv.conv.conv.weight"])


def test_torchvision_stub_does_not_outlive_the_ofa_import(ofa_cls):
    module = sys.modules.get("torchvision")
    assert module is None or getattr(module, "__file__", None), "the torchvision stub leaked into sys.modules"


def test_width_1_2_file_is_rejected_with_the_reason(ofa_cls, tmp_path):
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.2.pth"
    torch.save({"state_dict": ofa_cls(width_mult=1.2, **OFA_KWARGS).state_dict()}, path)
    with pytest.raises(HwnasError, match=r"1\.2 times as wide") as info:
        load_ofa_supernet(path)
    assert "shape mismatches: first_conv.conv.weight file (24, 3, 3, 3) vs network (16, 3, 3, 3)" in str(info.value)
    assert "'ofa-mbv3-w1.2'" in str(info.value)


@torch.no_grad()
def test_width_1_2_supernet_matches_ofa_with_its_preset(ofa_cls, tmp_path):
    """once-for-all's acc_predictor.pth and Note10 tables belong to the width-1.2 supernet: its preset
    loads the published layout and computes what OFA computes."""
    ofa_12 = randomize(ofa_cls(width_mult=1.2, **OFA_KWARGS), seed=2)
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.2.pth"
    torch.save({"state_dict": ofa_12.state_dict()}, path)
    ours = load_ofa_supernet(path, "ofa-mbv3-w1.2").eval()
    rng, g = np.random.default_rng(3), torch.Generator().manual_seed(3)
    archs = [largest_architecture("ofa-mbv3-w1.2", 160)] + [
        sample_architecture("ofa-mbv3-w1.2", rng, resolution=128) for _ in range(3)]
    for arch in archs:
        x = torch.randn(2, 3, arch.resolution, arch.resolution, generator=g)
        ours.set_active(arch)
        torch.testing.assert_close(ours(x), ofa_forward(ofa_12, arch, x), rtol=TOL, atol=TOL)


def test_missing_and_unexpected_keys_are_listed(ofa_files, tmp_path):
    state = load_ofa_state_dict(ofa_files["nested"])
    state.pop("blocks.5.conv.depth_conv.conv.7to5_matrix")
    state["blocks.5.conv.depth_conv.conv.9to7_matrix"] = torch.eye(49)
    torch.save({"state_dict": state}, tmp_path / "edited.pth")
    with pytest.raises(HwnasError) as info:
        load_ofa_supernet(tmp_path / "edited.pth")
    message = str(info.value)
    assert "missing 1 keys: blocks.5.conv.depth_conv.conv.7to5_matrix" in message
    assert "unexpected 1 keys: blocks.5.conv.depth_conv.conv.9to7_matrix" in message


# ----------------------------------------------------------------------------------- keys (no ofa needed)
@pytest.mark.parametrize("key, expected", [
    ("blocks.3.mobile_inverted_conv.depth_conv.conv.conv.weight", "blocks.3.conv.depth_conv.conv.weight"),
    ("blocks.3.conv.depth_conv.conv.7to5_matrix", "blocks.3.conv.depth_conv.conv.7to5_matrix"),
    ("module.blocks.3.conv.inverted_bottleneck.bn.bn.running_var",
     "blocks.3.conv.inverted_bottleneck.bn.running_var"),
    ("blocks.3.mobile_inverted_conv.point_linear.conv.weight", "blocks.3.conv.point_linear.conv.weight"),
    ("blocks.0.mobile_inverted_conv.depth_conv.conv.weight", "blocks.0.conv.depth_conv.conv.weight"),
    ("blocks.9.conv.depth_conv.se.fc.reduce.weight", "blocks.9.conv.depth_conv.se.fc.reduce.weight"),
    ("classifier.linear.linear.weight", "classifier.linear.weight"),
    ("final_expand_layer.bn.weight", "final_expand_layer.bn.weight"),
])
def test_key_normalisation(key, expected):
    assert normalize_ofa_key(key) == expected
    assert normalize_ofa_key(expected) == expected  # our own names are fixed points


# ----------------------------------------------------------------------------------- bad files (no ofa needed)
# torch.load fails on these byte strings with UnpicklingError, IndexError, UnicodeDecodeError, KeyError
RANDOM_BYTE_SEEDS = (0, 17, 54, 62)


def _small_checkpoint(path):
    torch.save({"state_dict": {"w": torch.randn(256)}}, path)
    return path


@pytest.mark.parametrize("make, pattern", [
    *[(lambda p, seed=seed: p.write_bytes(np.random.default_rng(seed).bytes(4096)),
       "not a PyTorch tensor checkpoint") for seed in RANDOM_BYTE_SEEDS],
    (lambda p: p.write_bytes(b""), "not a PyTorch tensor checkpoint"),
    (lambda p: p.write_text('{"kernel": [3]}'), "not a PyTorch tensor checkpoint"),
    (lambda p: p.write_bytes(_small_checkpoint(p).read_bytes()[:300]), "corrupted, truncated"),
    (lambda p: torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, p),
     r"not a plain tensor checkpoint.*argparse\.Namespace"),
    (lambda p: torch.save({"state_dict": {"w": 3}}, p), "not a state dict of tensors"),
    (lambda p: torch.save([torch.zeros(2)], p), "holds no state dict"),
    (lambda p: torch.save({"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}, p),
     "not an OFA MobileNetV3 checkpoint"),
    (lambda p: None, "does not exist"),
], ids=[*(f"random-bytes-{seed}" for seed in RANDOM_BYTE_SEEDS), "empty", "json-text", "truncated", "pickled-object", "non-tensor-values",
        "list", "unrelated-model", "missing"])
def test_bad_files_raise_clear_errors(tmp_path, make, pattern):
    path = tmp_path / "supernet.pth"
    make(path)
    with pytest.raises(HwnasError, match=pattern):
        load_ofa_supernet(path)


def test_corrupted_safetensors_raises_clear_error(tmp_path):
    path = tmp_path / "supernet.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(HwnasError, match="not a readable safetensors file"):
        load_ofa_state_dict(path)
