"""Importing the ``ofa`` (once-for-all) package in tests, with or without torchvision.

``ofa`` imports torchvision only for its data loaders (``ofa.utils.my_dataloader``), which no test
runs. When torchvision is absent, a stub of exactly what those imports touch stands in for it
while ``ofa`` is imported, and is removed again afterwards. A missing ``ofa`` package FAILS the
parity tests (they are a release requirement); ``HWNAS_ALLOW_SKIP_OFA=1`` skips them instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest


def torchvision_stub() -> dict[str, types.ModuleType]:
    """What ``ofa`` touches of torchvision at import time, and no more.

    ``ofa.utils.my_dataloader.my_random_resize_crop`` runs ``import torchvision.transforms.functional
    as F`` / ``import torchvision.transforms as transforms`` and subclasses
    ``transforms.RandomResizedCrop``; ``ofa.tutorial.imagenet_eval_helper`` runs ``from torchvision
    import transforms, datasets``. ``RandomCrop``, the functional ops and the data sets are only
    used when a data loader runs, which these tests never do.
    """
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    datasets = types.ModuleType("torchvision.datasets")
    transforms.RandomResizedCrop = type("RandomResizedCrop", (), {})
    transforms.RandomCrop = type("RandomCrop", (), {})
    transforms.functional = functional
    root.transforms, root.datasets = transforms, datasets
    return {"torchvision": root, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional, "torchvision.datasets": datasets}


def import_ofa(module: str, standalone: bool = False) -> types.ModuleType:
    """Import an ``ofa.*`` module with the stub in place; the stub is gone afterwards.

    ``standalone`` runs the module's file alone, without its package's ``__init__`` (which for
    ``ofa.tutorial`` imports the model zoo and its download helpers), as a private module.
    """
    try:
        import torchvision  # noqa: F401
        stub: dict[str, types.ModuleType] = {}
    except ImportError:
        stub = torchvision_stub()
    with pytest.MonkeyPatch.context() as mp:
        for name, stub_module in stub.items():
            mp.setitem(sys.modules, name, stub_module)
        if not standalone:
            return importlib.import_module(module)
        package, _, leaf = module.rpartition(".")
        root = importlib.util.find_spec(package.split(".")[0])
        if root is None or not root.submodule_search_locations:
            raise ImportError(f"No module named {package.split('.')[0]!r}")
        path = Path(root.submodule_search_locations[0], *package.split(".")[1:], f"{leaf}.py")
        spec = importlib.util.spec_from_file_location(f"_standalone_{module.replace('.', '_')}", path)
        if spec is None or not path.is_file():
            raise ImportError(f"No module file {path}")
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded


def require_ofa(module: str, attribute: str, standalone: bool = False) -> Any:
    """``module.attribute`` from the ofa package, or fail (skip with HWNAS_ALLOW_SKIP_OFA=1) naming the fix."""
    try:
        return getattr(import_ofa(module, standalone), attribute)
    except ImportError as exc:
        message = (f"the once-for-all package is needed for the OFA parity tests ({exc}); install it with "
                   "`pip install ofa --no-deps`")
        if os.environ.get("HWNAS_ALLOW_SKIP_OFA") == "1":
            pytest.skip(message)
        pytest.fail(message + " (or set HWNAS_ALLOW_SKIP_OFA=1 to skip)", pytrace=False)
