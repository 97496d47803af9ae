"""Module structure: no import cycles (lazy ones included), and the light commands stay light.

A cycle hidden behind a function-level import still couples two modules both ways; the graph
below counts every ``import`` statement, wherever it sits. ``hwnas export --help`` and ``hwnas
search`` must not import torch (seconds of start-up, and an edge board may not have it).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hwnas"


def module_names() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """hwnas modules ``name`` imports anywhere in its file (not its own parent packages)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{prefix}.{base}" if base else prefix
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_even_through_lazy_imports():
    modules = module_names()
    graph = {name: imported(name, path, set(modules)) for name, path in modules.items()}
    assert graph["hwnas.latency.measure"], "the import scan found nothing; it is broken"
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the detector works
    assert cycles(graph) == []


def _modules_after(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('MODULES', *sorted(sys.modules))"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.splitlines()[-1].split()[1:])


def test_export_help_imports_no_torch():
    loaded = _modules_after("from hwnas.cli import main\ntry:\n    main(['export', '--help'])\n"
                            "except SystemExit:\n    pass")
    assert "hwnas.cli.export" in loaded and "torch" not in loaded and "onnx" not in loaded


def test_search_end_to_end_imports_no_torch(tmp_path):
    out = tmp_path / "run"
    loaded = _modules_after(
        "from hwnas.cli import main\n"
        f"assert main(['search', '--device', 'cpu-1thread', '--budget-ms', '0.35', '--evaluations', '200', "
        f"'--out', {str(out)!r}, '--no-progress']) == 0")
    assert (out / "front.json").is_file() and (out / "pareto.png").is_file()
    assert "hwnas.search.runner" in loaded and "torch" not in loaded
