"""Published once-for-all (OFA) MobileNetV3, ProxylessNAS and ResNet50 checkpoints -> the hwnas supernet.

The released supernets (``ofa_mbv3_d234_e346_k357_w1.0``, ``ofa_proxyless_d234_e346_k357_w1.3``,
``ofa_resnet50``) are torch pickles holding
``{"state_dict": ...}`` (sometimes the bare state dict). Its key names changed over OFA's
history: older files call the block ``blocks.N.mobile_inverted_conv``, newer ones
``blocks.N.conv``; the dynamic layers nest their torch modules (``bn.bn.weight``,
``conv.conv.weight``, ``linear.linear.weight``) where the static ones are flat. Our modules mirror
the *flat* layout, so every file maps onto them by key normalisation alone; no weight is changed.

Loading never unpickles arbitrary objects (``torch.load(..., weights_only=True)``): a published
file is untrusted input. A ``.safetensors`` file with the same keys is accepted as well.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Collection

import torch
from torch import Tensor

from hwnas.errors import HwnasError
from hwnas.space import SearchSpace, get_space
from hwnas.supernet.network import ElasticMobileNetV3, build_supernet
from hwnas.supernet.resnet import ElasticResNet
from hwnas.torch_file import read_tensor_pickle

OFA_SPACE = "ofa-mbv3-w1.0"

# Applied in order, as once-for-all's own ``OFAMobileNetV3.load_state_dict`` does (nested -> flat).
_KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.mobile_inverted_conv\."), ".conv."),
    (re.compile(r"\.bn\.bn\."), ".bn."),
    (re.compile(r"\.conv\.conv\.weight$"), ".conv.weight"),
    (re.compile(r"(^|\.)linear\.linear\."), r"\1linear."),
)
_MAX_LISTED = 8
_REDOWNLOAD = "download the OFA supernet file again"


def normalize_ofa_key(key: str, known: Collection[str] = ()) -> str:
    """Map any OFA key spelling (old/new block name, nested/flat layers) to this package's name.

    A key already in ``known`` (the network's own names) is kept: ResNet's stem residual conv is
    ``input_stem.1.conv.conv.weight`` when flat, which the nested->flat rules would shorten again.
    """
    if key.startswith("module."):  # saved from DataParallel / DistributedDataParallel
        key = key[len("module."):]
    if key in known:
        return key
    for pattern, replacement in _KEY_RULES:
        key = pattern.sub(replacement, key)
    return key


def head_key(space: SearchSpace, key: str) -> str:
    """A normalised key in ``space``'s module names: OFA's ProxylessNAS calls its one pre-pool head
    conv ``feature_mix_layer``, which is the ``final_expand_layer`` of a space without feature mix."""
    if space.family == "mbconv" and space.feature_width == 0 and key.startswith("feature_mix_layer."):
        return "final_expand_layer." + key[len("feature_mix_layer."):]
    return key


def load_ofa_state_dict(path: str | Path, known: Collection[str] = ()) -> dict[str, Tensor]:
    """Read an OFA checkpoint (torch pickle or safetensors) into a dict with our key names
    (``known``: the network's own names, kept as they are; see :func:`normalize_ofa_key`)."""
    path = Path(path)
    if not path.is_file():
        raise HwnasError(f"OFA checkpoint {path} does not exist; download "
                         "ofa_mbv3_d234_e346_k357_w1.0 from the once-for-all model zoo and pass its path")
    is_safetensors = path.suffix == ".safetensors" or _looks_like_safetensors(path)
    raw = _read_safetensors(path) if is_safetensors else read_tensor_pickle(path, fix=_REDOWNLOAD)
    state = _unwrap(raw, path)
    normalised: dict[str, Tensor] = {}
    for key, value in state.items():
        new_key = normalize_ofa_key(key, known)
        if new_key in normalised:
            raise HwnasError(f"OFA checkpoint {path} holds two tensors for {new_key!r} "
                             "(nested and flat spellings of the same weight); keep one spelling and re-save it")
        normalised[new_key] = value
    return normalised


def load_ofa_supernet(path: str | Path, space: SearchSpace | str = OFA_SPACE) -> ElasticMobileNetV3 | ElasticResNet:
    """The supernet of ``space``'s family (:func:`build_supernet`) holding the published OFA weights, in eval mode.

    Every key and shape must match (no partial loads): a file for another width or space fails with
    one message listing what is missing, unexpected or mis-shaped.
    """
    space = get_space(space)
    net = build_supernet(space)
    expected = net.state_dict()
    state = {head_key(space, k): v for k, v in load_ofa_state_dict(path, expected).items()}
    _fill_batch_counters(state, expected)
    check_ofa_state_dict(state, expected, source=str(path), space=space)
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    return net.eval()


def check_ofa_state_dict(state: dict[str, Tensor], expected: dict[str, Tensor], source: str,
                         space: SearchSpace) -> None:
    """Raise one :class:`HwnasError` listing every missing / unexpected key and shape mismatch."""
    missing = [k for k in expected if k not in state]  # in network order: first layers first
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"OFA checkpoint {source} does not match the {space.name!r} supernet:"]
    hint = _width_hint(state, space)
    if hint:
        lines.append(hint)
    if not any(k in expected for k in state if not k.endswith("num_batches_tracked")):
        lines.append(f"none of its keys name a layer of the {space.name!r} supernet: this is not an OFA "
                     "MobileNetV3 checkpoint, nor a ProxylessNAS one (ResNet supernets and static subnets are not "
                     "supported)")
    if missing:
        lines.append(f"missing {len(missing)} keys: {_listing(missing)}")
    if unexpected:
        lines.append(f"unexpected {len(unexpected)} keys: {_listing(unexpected)}")
    if mismatched:
        shown = [f"{k} file {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
                 for k in mismatched[:_MAX_LISTED]]
        more = f" (+{len(mismatched) - _MAX_LISTED} more)" if len(mismatched) > _MAX_LISTED else ""
        lines.append(f"{len(mismatched)} shape mismatches: " + "; ".join(shown) + more)
    lines.append("Use the once-for-all file that matches the space: ofa_mbv3_d234_e346_k357_w1.0 with space "
                 "'ofa-mbv3-w1.0', ofa_mbv3_d234_e346_k357_w1.2 with space 'ofa-mbv3-w1.2' (kernel 3/5/7, "
                 "expand 3/4/6, depth 2/3/4), ofa_proxyless_d234_e346_k357_w1.3 with space 'ofa-proxyless-w1.3', "
                 "or register a search space that matches the file.")
    raise HwnasError("\n  ".join(lines))


# --------------------------------------------------------------------------------- reading
def _looks_like_safetensors(path: Path) -> bool:
    """safetensors starts with a little-endian u64 header length, then the JSON header's ``{``."""
    with path.open("rb") as fh:
        head = fh.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") + 8 <= path.stat().st_size


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise HwnasError(f"{path} is not a readable safetensors file ({exc}); re-export it or pass the "
                         "original OFA .pth file") from None


def _unwrap(raw: object, path: Path) -> dict[str, Tensor]:
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else raw
    if not isinstance(state, dict) or not state:
        raise HwnasError(f"{path} holds no state dict (found {type(raw).__name__}); expected the OFA file "
                         "with a 'state_dict' entry or a bare state dict")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        top = sorted(map(str, raw))[:_MAX_LISTED] if isinstance(raw, dict) else []
        raise HwnasError(f"{path} is not a state dict of tensors (entries such as {bad[:3]} are not "
                         f"tensors; top-level keys {top}); expected the OFA supernet checkpoint")
    return state


def _fill_batch_counters(state: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    """Files from PyTorch < 0.4.1 lack BN ``num_batches_tracked``; it never affects eval outputs."""
    if not any(k.endswith("running_mean") for k in state):
        return
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)


def _width_hint(state: dict[str, Tensor], space: SearchSpace) -> str:
    weight = state.get("final_expand_layer.conv.weight")
    if space.family != "mbconv" or weight is None or weight.ndim != 4 or weight.shape[0] == space.final_expand_width:
        return ""
    ratio = weight.shape[0] / space.final_expand_width
    return (f"its final expand layer has {weight.shape[0]} channels where space {space.name!r} has "
            f"{space.final_expand_width}: it looks like a supernet {ratio:.2g} times as wide")


def _listing(keys: list[str]) -> str:
    more = f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return ", ".join(keys[:_MAX_LISTED]) + more
