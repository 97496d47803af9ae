"""once-for-all's accuracy predictors, loaded and scored by hwnas, give once-for-all's own numbers.

The ``ofa`` package builds each predictor with seeded random weights (He-scaled, so outputs are
O(1) and vary between architectures far more than the tolerance); the test saves it in the layouts
once-for-all loads and compares hwnas's batched numpy scores on 1,200 random architectures spanning
every resolution of the space with OFA's own forward pass on OFA's own encoding, run in float64
(max abs diff <= 1e-6; hwnas computes in float64), and with OFA's float32 ``predict_acc`` /
``predict_accuracy`` as users call them (within float32 rounding of O(1) outputs).
A missing ``ofa`` package fails these tests (see ``tests/ofa_stub.py``).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.accuracy.ofa_predictor import (ARCH_ENCODER, TUTORIAL, load_ofa_predictor,
                                          ofa_predictor_from_state_dict)
from hwnas.arch import Architecture, sample_architecture
from hwnas.encoding import GeneLayout
from hwnas.errors import ArchitectureError, HwnasError
from hwnas.space import get_space
from ofa_stub import require_ofa  # tests/ is on sys.path

SPACE = get_space("ofa-mbv3-w1.0")
N_ARCHS = 1200
TOL = 1e-6  # against OFA's forward in float64
TOL_FLOAT32 = 5e-6  # against OFA's float32 predict_acc: room for its own float32 rounding of O(1) outputs


@torch.no_grad()
def randomize(model: nn.Module, seed: int) -> nn.Module:
    """He-scaled random Linear weights and small random biases; ``base_acc`` (if any) 0.7."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.in_features) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    if hasattr(model, "base_acc"):
        model.base_acc.fill_(0.7)
    return model


@pytest.fixture(scope="module")
def genes() -> np.ndarray:
    g = GeneLayout(SPACE).random(N_ARCHS, rng=0)
    g[:len(SPACE.resolutions), -1] = np.arange(len(SPACE.resolutions))  # every resolution at least once
    return g


@pytest.fixture(scope="module")
def archs(genes: np.ndarray) -> list[Architecture]:
    return GeneLayout(SPACE).decode(genes)


# ----------------------------------------------------------------------------------- ofa.nas AccuracyPredictor
@pytest.fixture(scope="module")
def nas_model() -> nn.Module:
    encoder_cls = require_ofa("ofa.nas.accuracy_predictor", "MobileNetArchEncoder")
    predictor_cls = require_ofa("ofa.nas.accuracy_predictor", "AccuracyPredictor")
    encoder = encoder_cls(image_size_list=list(SPACE.resolutions), ks_list=[3, 5, 7], expand_list=[3, 4, 6],
                          depth_list=[2, 3, 4], n_stage=5)
    return randomize(predictor_cls(encoder, hidden_size=400, n_layers=3, device="cpu"), seed=0).eval()


def ofa_dicts(archs: list[Architecture]) -> list[dict]:
    return [{**a.to_ofa_dict(), "image_size": a.resolution} for a in archs]


@torch.no_grad()
def float64_forward(model: nn.Module, features: np.ndarray) -> np.ndarray:
    """OFA's module forward (its layers, its base_acc) in float64 on OFA's encoder output."""
    return copy.deepcopy(model).double()(torch.from_numpy(features)).numpy().reshape(-1)


@pytest.fixture(scope="module")
def nas_expected(nas_model: nn.Module, archs: list[Architecture]) -> dict[str, np.ndarray]:
    features = np.stack([nas_model.arch_encoder.arch2feature(d) for d in ofa_dicts(archs)])
    with torch.no_grad():
        float32 = nas_model.predict_acc(ofa_dicts(archs)).numpy().astype(np.float64)
    return {"features": features, "float64": float64_forward(nas_model, features), "float32": float32}


@pytest.mark.parametrize("layout", ["bare", "wrapped", "data-parallel"])
def test_arch_encoder_predictor_matches_ofa(nas_model, nas_expected, genes, archs, layout, tmp_path):
    state = nas_model.state_dict()
    saved = {"bare": state, "wrapped": {"state_dict": state},
             "data-parallel": {"state_dict": {f"module.{k}": v for k, v in state.items()}}}[layout]
    torch.save(saved, tmp_path / "acc_predictor.pth")
    ours = load_ofa_predictor(tmp_path / "acc_predictor.pth", SPACE)
    assert ours.encoding.kind == ARCH_ENCODER and ours.resolutions == SPACE.resolutions
    predicted = ours.predict(genes)
    assert predicted.shape == (N_ARCHS,) and predicted.dtype == np.float64
    assert np.std(nas_expected["float64"]) > 1000 * TOL  # the comparisons below can fail
    assert np.max(np.abs(predicted - nas_expected["float64"])) <= TOL
    assert np.max(np.abs(predicted - nas_expected["float32"])) <= TOL_FLOAT32
    # architectures or genes alike (BLAS may round differently for another number of rows)
    np.testing.assert_allclose(ours.predict(archs[:50]), predicted[:50], rtol=1e-12, atol=1e-12)


def test_arch_encoder_features_equal_ofa_encoder(nas_model, nas_expected, genes):
    ours = ofa_predictor_from_state_dict(nas_model.state_dict(), SPACE)
    assert np.array_equal(ours.features(genes), nas_expected["features"])


def test_arch_encoder_with_ofa_default_image_sizes(genes, archs):
    """A predictor whose encoder covers four image sizes: they are inferred; other resolutions are refused."""
    encoder_cls = require_ofa("ofa.nas.accuracy_predictor", "MobileNetArchEncoder")
    predictor_cls = require_ofa("ofa.nas.accuracy_predictor", "AccuracyPredictor")
    sizes = [128, 160, 192, 224]
    model = randomize(predictor_cls(encoder_cls(image_size_list=sizes), device="cpu"), seed=1).eval()
    ours = ofa_predictor_from_state_dict({"state_dict": model.state_dict()}, SPACE)
    assert ours.resolutions == tuple(sizes)
    keep = np.isin(SPACE.resolutions, sizes)[genes[:, -1]]
    kept = ofa_dicts([a for a, k in zip(archs, keep) if k])
    expected = float64_forward(model, np.stack([model.arch_encoder.arch2feature(d) for d in kept]))
    assert np.max(np.abs(ours.predict(genes[keep]) - expected)) <= TOL
    with pytest.raises(ArchitectureError, match=r"no input for resolution\(s\) \[132\].*restrict the search"):
        ours.predict(sample_architecture(SPACE, 0, resolution=132))


# ----------------------------------------------------------------------------------- ofa.tutorial AccuracyPredictor
@pytest.fixture(scope="module")
def tutorial_model() -> nn.Module:
    tutorial_cls = require_ofa("ofa.tutorial.accuracy_predictor", "AccuracyPredictor", standalone=True)
    return tutorial_cls, randomize(tutorial_cls(pretrained=False, device="cpu").model, seed=2).eval()


def test_tutorial_predictor_matches_ofa(tutorial_model, genes, archs, tmp_path):
    tutorial_cls, model = tutorial_model
    torch.save(model.state_dict(), tmp_path / "acc_predictor.pth")  # as the published file is
    ours = load_ofa_predictor(tmp_path / "acc_predictor.pth", SPACE)
    assert ours.encoding.kind == TUTORIAL and ours.resolutions == SPACE.resolutions
    predictor = tutorial_cls(pretrained=False, device="cpu")
    predictor.model = model
    float32 = predictor.predict_accuracy([a.to_ofa_dict() for a in archs]).numpy()[:, 0].astype(np.float64)
    features = np.stack([tutorial_cls.spec2feats(list(a.kernel), list(a.expand), list(a.depth), a.resolution).numpy()
                         for a in archs]).astype(np.float64)
    assert np.array_equal(ours.features(genes), features)
    expected = float64_forward(model, features)
    assert np.std(expected) > 1000 * TOL
    predicted = ours.predict(genes)
    assert np.max(np.abs(predicted - expected)) <= TOL
    assert np.max(np.abs(predicted - float32)) <= TOL_FLOAT32


# ----------------------------------------------------------------------------------- bad files (no ofa needed)
def _linear_state(sizes: list[int]) -> dict[str, torch.Tensor]:
    state = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        state[f"{2 * i}.weight"], state[f"{2 * i}.bias"] = torch.zeros(b, a), torch.zeros(b)
    return state


@pytest.mark.parametrize("make, pattern", [
    (lambda p: p.write_bytes(b"not a torch file at all"), "not a PyTorch tensor checkpoint.*acc_predictor.pth"),
    (lambda p: torch.save({"first_conv.conv.weight": torch.zeros(16, 3, 3, 3)}, p),
     r"not a once-for-all accuracy predictor.*first_conv\.conv\.weight"),
    (lambda p: torch.save([torch.zeros(2)], p), "holds no state dict"),
    (lambda p: torch.save(_linear_state([145, 400, 1]), p), "takes 145 inputs.*tutorial encoding of this space gives 128"),
    (lambda p: torch.save(_linear_state([128, 400, 3]), p), "last layer has 3 outputs"),
    (lambda p: torch.save({"0.weight": torch.zeros(4, 128), "0.bias": torch.zeros(4), "4.weight": torch.zeros(1, 4),
                           "4.bias": torch.zeros(1)}, p), r"layers \[0, 4\] are not once-for-all's Linear/ReLU"),
    (lambda p: torch.save({"layers.0.0.weight": torch.zeros(4, 131), "layers.0.0.bias": torch.zeros(4),
                           "layers.1.weight": torch.zeros(1, 4), "base_acc": torch.zeros(1)}, p),
     "encoder had 11 image sizes; pass"),
    (lambda p: torch.save({"layers.0.0.weight": torch.zeros(4, 124), "layers.1.weight": torch.zeros(1, 4),
                           "base_acc": torch.zeros(1)}, p), r"not once-for-all's AccuracyPredictor.*layers\.0\.0\.bias"),
    (lambda p: None, "does not exist"),
], ids=["random-bytes", "supernet", "list", "wrong-width", "three-outputs", "gap", "image-sizes", "no-bias", "missing"])
def test_bad_files_raise_clear_errors(tmp_path, make, pattern):
    path = tmp_path / "acc_predictor.pth"
    make(path)
    with pytest.raises(HwnasError, match=pattern):
        load_ofa_predictor(path, SPACE)


def test_tutorial_encoding_refuses_another_space_shape():
    from tiny_spaces import tiny_space

    with pytest.raises(HwnasError, match="Use it with space 'ofa-mbv3-w1.0'"):
        ofa_predictor_from_state_dict(_linear_state([128, 8, 1]), tiny_space())


def test_scoring_needs_no_torch():
    """A search scores the predictor without torch: only loading a .pth file imports it."""
    code = (
        "import sys, numpy as np\n"
        "from hwnas.accuracy.ofa_predictor import ofa_predictor_from_state_dict\n"
        "from hwnas.encoding import GeneLayout\n"
        "rng = np.random.default_rng(0)\n"
        "state = {'0.weight': rng.random((8, 128)), '0.bias': rng.random(8), '2.weight': rng.random((1, 8)),\n"
        "         '2.bias': rng.random(1)}\n"
        "p = ofa_predictor_from_state_dict(state, 'ofa-mbv3-w1.0')\n"
        "y = p.predict(GeneLayout('ofa-mbv3-w1.0').random(100, rng=0))\n"
        "assert y.shape == (100,) and np.isfinite(y).all() and np.ptp(y) > 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_torch_files_are_told_from_hwnas_predictors_by_content(tmp_path):
    from hwnas.torch_file import looks_like_torch_file

    torch.save(_linear_state([128, 4, 1]), tmp_path / "predictor.json")  # a misleading name
    torch.save(_linear_state([128, 4, 1]), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    (tmp_path / "accuracy_xgb.json").write_text('{"learner": {}}')
    assert looks_like_torch_file(tmp_path / "predictor.json") and looks_like_torch_file(tmp_path / "legacy.pth")
    assert not looks_like_torch_file(tmp_path / "accuracy_xgb.json")
    assert not looks_like_torch_file(tmp_path / "missing.pth")
    assert load_ofa_predictor(tmp_path / "legacy.pth", SPACE).encoding.kind == TUTORIAL
