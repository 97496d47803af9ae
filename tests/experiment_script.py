"""Load a repository script (under experiments/, or .ci/) as a module, so tests can call its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_experiment(name: str, folder: str = "experiments") -> ModuleType:
    """``<folder>/<name>.py`` of the repository, freshly executed (its sibling scripts importable)."""
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))
    spec = importlib.util.spec_from_file_location(f"{folder.strip('.')}_{name}", ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
