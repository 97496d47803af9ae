"""The board install (issue 17): `hwnas --help` and `hwnas agent` without torch, xgboost or scikit-learn.

A board has only numpy, onnxruntime and PyYAML. These tests hide every other third-party package from a
fresh interpreter (an import hook) and run the CLI there; `.ci/board_install_check.sh` does the same for
real in a venv installed as the README says.
"""

from __future__ import annotations

import re
import subprocess
import sys

from agent_process import REPO

HEAVY = ("torch", "xgboost", "sklearn", "numba", "onnx", "scipy", "matplotlib", "optuna", "safetensors", "tqdm")
BOARD = f"""
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Hide())
from hwnas.cli import main
sys.exit(main(sys.argv[1:]))
"""


def board_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BOARD, *argv], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_help_lists_every_command_without_heavy_packages():
    done = board_cli("--help")
    assert done.returncode == 0, done.stderr
    for command in ("quickstart", "train", "profile", "search", "export", "agent", "spaces"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.M), command
    assert board_cli("agent", "serve", "--help").returncode == 0


def test_a_command_needing_torch_says_what_to_install():
    done = board_cli("train", "--help")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "pip install torch==2.13.0" in done.stderr, done.stderr


def test_readme_board_install_pulls_only_the_agent_packages():
    section = (REPO / "README.md").read_text().split("## Measure on an edge board", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("pip install") and "--no-deps" in ln]
    assert len(lines) == 1, "the board section needs exactly one install line (.ci/board_install_check.sh runs it)"
    packages = {w for w in re.split(r"\s+", lines[0]) if w and w not in ("pip", "install", "&&", "--no-deps", ".")}
    assert packages == {"numpy", "onnxruntime", "PyYAML"}
