"""The README cannot rot: every hwnas command it shows must parse with the real CLI, the test
command it gives must be the one CI runs (CI also runs the quickstart command itself), and its
Results section must be what experiments/readme_results.py renders from the result files."""

import importlib.util
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from hwnas.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def hwnas_commands() -> list[list[str]]:
    commands = []
    for block in bash_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            for part in line.split("&&"):
                words = shlex.split(part)
                while words and re.match(r"^[A-Z_]+=", words[0]):
                    words = words[1:]  # environment assignments
                if words[:1] == ["hwnas"]:
                    commands.append(words[1:])
                elif "hwnas.cli" in words:
                    commands.append(words[words.index("hwnas.cli") + 1:])
    return commands


def test_readme_has_the_two_setup_commands_and_ci_runs_the_same_test_command():
    blocks = bash_blocks()
    assert "hwnas quickstart" in blocks[0]
    test_command = [l for l in blocks[1].splitlines() if l and not l.startswith("#")][0].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci, f"CI must call the README's test command {test_command!r}"


@pytest.mark.parametrize("argv", hwnas_commands(), ids=lambda a: " ".join(a[:2]))
def test_readme_command_parses(argv):
    parser = build_parser(only=argv[0])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports unknown commands/options by exiting
        pytest.fail(f"README command `hwnas {' '.join(argv)}` does not parse (exit {exc.code})")
    assert getattr(args, "func", None) is not None


# ----------------------------------------------------------------------------------- results section
def _readme_results():
    """experiments/readme_results.py, the generator of the README's Results section."""
    spec = importlib.util.spec_from_file_location("readme_results", ROOT / "experiments" / "readme_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_results_section_matches_the_result_files():
    gen = _readme_results()
    readme = (ROOT / "README.md").read_text()
    assert readme == gen.replace_section(readme, gen.render()), (
        "README.md's Results section differs from the committed result files; regenerate it with "
        "`python experiments/readme_results.py` (`--check` shows the lines)")


def test_readme_results_follow_a_changed_result_file(tmp_path):
    """The section is read from the files: a changed number in one changes the README text."""
    gen = _readme_results()
    root = tmp_path / "results"
    shutil.copytree(ROOT / "experiments" / "results", root)
    ceiling = json.loads((root / "noise_ceiling.json").read_text())
    before = gen.render(root)
    assert f"noise ceiling τ {ceiling['kendall_tau']:.3f}" in before
    ceiling["kendall_tau"] = 0.123456
    (root / "noise_ceiling.json").write_text(json.dumps(ceiling))
    after = gen.render(root)
    assert "noise ceiling τ 0.123" in after and after != before
