"""Supernet weights on disk: safetensors (no pickle) with the space stamped into the metadata.

A checkpoint carries the space definition and its fingerprint, so loading it into a different
space fails with a clear message instead of shape errors or, worse, silently wrong weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from hwnas.atomic_io import atomic_write_bytes
from hwnas.errors import HwnasError
from hwnas.space import SearchSpace, get_space, space_from_dict

if TYPE_CHECKING:  # torch loads on first save/load, not to read metadata (`hwnas search` needs no torch)
    import torch


def save_supernet(path: str | Path, net: "torch.nn.Module", extra: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save as st_save

    space: SearchSpace = net.space
    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    meta = {"format": "hwnas-supernet-v1", "space": json.dumps(space.to_dict()),
            "space_name": space.name, "space_fingerprint": space.fingerprint(),
            "extra": json.dumps(extra or {})}
    return atomic_write_bytes(path, st_save(tensors, metadata=meta))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_metadata(path: str | Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise HwnasError(f"{path} is not a readable hwnas supernet checkpoint (safetensors): {exc}") from None
    if meta.get("format") != "hwnas-supernet-v1":
        raise HwnasError(f"{path} is not an hwnas supernet checkpoint (no hwnas metadata); "
                         "for a published once-for-all file use --weights with the ofa-mbv3-w1.0 space")
    return meta


def load_supernet(path: str | Path, space: SearchSpace | str | None = None, map_location: str = "cpu"):
    """Load a supernet saved by :func:`save_supernet`. Returns ``(net, extra_metadata)``."""
    from hwnas.supernet.network import build_supernet

    path = Path(path)
    if not path.is_file():
        raise HwnasError(f"supernet checkpoint {path} does not exist; train one with `hwnas train` "
                         "or use the shipped default (checkpoints/fmnist-mbv3.safetensors)")
    meta = read_metadata(path)
    stored = space_from_dict(json.loads(meta["space"]))
    if space is not None:
        space = get_space(space)
        space.check_fingerprint(stored.fingerprint(), f"checkpoint {path}")
    else:
        try:
            space = get_space(stored.name)
            space.check_fingerprint(stored.fingerprint(), f"checkpoint {path}")
        except HwnasError:
            space = stored
    net = build_supernet(space)
    from safetensors.torch import load as st_load

    state = st_load(path.read_bytes())
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise HwnasError(f"checkpoint {path} does not match the network: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    net.to(map_location)
    return net, json.loads(meta.get("extra", "{}"))
