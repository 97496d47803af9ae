"""Run folders: where a command writes its results, its exact config and its log.

Conventions every command shares: ``--out`` never overwrites an earlier run unless
``--overwrite`` is given, and each run folder gets a ``log.txt`` holding what the command printed.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

from hwnas.errors import ConfigError


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Create ``path`` for a new run; refuse a non-empty one unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is a file; give a folder path")
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise ConfigError(f"--out {path} already holds a run; choose another folder or pass --overwrite")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_logger(run_dir: str | Path, name: str = "hwnas") -> logging.Logger:
    """A logger writing to ``run_dir/log.txt`` and to stdout (messages only)."""
    logger = logging.getLogger(f"{name}.{Path(run_dir).resolve()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        file_handler = logging.FileHandler(Path(run_dir) / "log.txt", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(file_handler)
        logger.addHandler(console)
    return logger
