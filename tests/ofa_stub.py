"""Importing the ``ofa`` (once-for-all) package in tests, with or without torchvision.

``ofa`` imports torchvision only for its data loaders (``ofa.utils.my_dataloader``), which no test
runs. When torchvision is absent, a stub of exactly what those imports touch stands in for it
while ``ofa`` is imported, and is removed again afterwards. A missing ``ofa`` package FAILS the
parity tests (they are a release requirement); ``HWNAS_ALLOW_SKIP_OFA=1`` skips them instead.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

import pytest


def torchvision_stub() -> dict[str, types.ModuleType]:
    """What ``ofa.utils.my_dataloader.my_random_resize_crop`` touches at import time, and no more.

    It runs ``import torchvision.transforms.functional as F`` / ``import torchvision.transforms as
    transforms`` and subclasses ``transforms.RandomResizedCrop``; ``RandomCrop`` and the functional
    ops are only used when a data loader runs, which these tests never do.
    """
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    transforms.RandomResizedCrop = type("RandomResizedCrop", (), {})
    transforms.RandomCrop = type("RandomCrop", (), {})
    transforms.functional = functional
    root.transforms = transforms
    return {"torchvision": root, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional}


def import_ofa(module: str) -> types.ModuleType:
    """``importlib.import_module(module)`` for an ``ofa.*`` module; the stub is gone afterwards."""
    try:
        import torchvision  # noqa: F401
        stub: dict[str, types.ModuleType] = {}
    except ImportError:
        stub = torchvision_stub()
    with pytest.MonkeyPatch.context() as mp:
        for name, stub_module in stub.items():
            mp.setitem(sys.modules, name, stub_module)
        return importlib.import_module(module)


def require_ofa(module: str, attribute: str) -> Any:
    """``module.attribute`` from the ofa package, or fail (skip with HWNAS_ALLOW_SKIP_OFA=1) naming the fix."""
    try:
        return getattr(import_ofa(module), attribute)
    except ImportError as exc:
        message = (f"the once-for-all package is needed for the OFA parity tests ({exc}); install it with "
                   "`pip install ofa --no-deps`")
        if os.environ.get("HWNAS_ALLOW_SKIP_OFA") == "1":
            pytest.skip(message)
        pytest.fail(message + " (or set HWNAS_ALLOW_SKIP_OFA=1 to skip)", pytrace=False)
