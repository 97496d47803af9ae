"""Reading untrusted torch pickles of tensors (published checkpoints, predictors) safely.

``torch.load(..., weights_only=True)`` never runs code from the file, but on a wrong file it raises
almost anything (``UnpicklingError``, ``IndexError``, ``KeyError``, ...) with advice that does not
apply. :func:`read_tensor_pickle` turns all of that into one :class:`HwnasError` that says what the
file is not and what to do. torch is imported on call, so importing this module costs nothing.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

from hwnas.errors import HwnasError

_UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_tensor_pickle(path: str | Path, fix: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU; ``fix`` ends the error for an unreadable file."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _UNSAFE_GLOBAL.search(str(exc))
        if found is None:  # not a pickle at all, or a broken one
            raise unreadable(path, exc, fix) from None
        raise HwnasError(
            f"{path} is not a plain tensor checkpoint: it pickles the Python object {found.group(1)}, and hwnas "
            "never unpickles arbitrary objects (that can run code). Re-save just the tensors, e.g. "
            "torch.save({'state_dict': model.state_dict()}, path), or convert the file to .safetensors.") from None
    except Exception as exc:  # noqa: BLE001 - on arbitrary bytes torch.load raises anything (IndexError, KeyError, ...)
        raise unreadable(path, exc, fix) from None


def unreadable(path: Path, exc: BaseException, fix: str) -> HwnasError:
    """The error for bytes torch cannot read as a tensor pickle: its first line, without torch's advice."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:  # torch's long advice is wrong here: the bytes are not a pickle
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = lines[0].split(". ")[0] if lines else type(exc).__name__
    return HwnasError(f"{path} is not a PyTorch tensor checkpoint (corrupted, truncated or another kind of "
                      f"file: {detail}); {fix}")


def looks_like_torch_file(path: str | Path) -> bool:
    """True when ``path`` starts like a ``torch.save`` file: a zip archive (PyTorch >= 1.6) or a
    protocol-2+ pickle (older files). Tells once-for-all's ``.pth`` files from hwnas's JSON ones by
    content, whatever the file is called."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        head = fh.read(4)
    return head == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)
