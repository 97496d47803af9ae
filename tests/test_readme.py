"""The README cannot rot: every hwnas command it shows must parse with the real CLI, the test
command it gives must be the one CI runs (CI also runs the quickstart command itself), and its
Results section must be what experiments/readme_results.py renders from the result files."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from hwnas.cli import build_parser
from experiment_script import load_experiment

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


def _setup_commands() -> list[str]:
    """What .ci/run executes: the README's two set-up commands, extracted by .ci/readme_commands.py."""
    return load_experiment("readme_commands", folder=".ci").setup_commands((ROOT / "README.md").read_text())


def test_ci_runs_the_readme_setup_commands_which_install_what_the_tests_need():
    install, tests = _setup_commands()
    steps = [s.strip() for s in install.split("&&")]
    assert steps.index("apt-get update") < next(i for i, s in enumerate(steps) if s.startswith("apt-get install"))
    assert any(s.startswith("pip install --no-deps ofa==") for s in steps)  # the OFA parity tests import it
    assert steps[-1] == "hwnas quickstart"
    assert tests == "python3 -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_commands.py" in ci and "pytest" not in ci  # no private variant of the commands
    assert "bash .ci/board_install_check.sh" in ci


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
    return load_experiment("readme_results")


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
    assert f"{ceiling['tau_simulated']:.3f} simulated" in before
    ceiling["tau_simulated"] = 0.123456
    (root / "noise_ceiling.json").write_text(json.dumps(ceiling))
    after = gen.render(root)
    assert "0.123 simulated" in after and after != before
    # a repeat set without the validation halves is an upper bound, and the text says so
    ceiling["noise_var_validation"] = None
    (root / "noise_ceiling.json").write_text(json.dumps(ceiling))
    assert "at most 0.123 (calibration noise only" in gen.render(root)


def test_the_seed_comparison_counts_each_seeds_winner_from_the_files(tmp_path):
    """A's and the small CNN's runs are gathered per seed across their files; a changed accuracy in one
    file changes the means and the count of seeds A wins."""
    gen = _readme_results()
    root = tmp_path / "results"
    root.mkdir()
    names = ["finetune_front_18ep.json", "finetune_front_A_seeds23.json", "reference_models.json",
             *(f"reference_models_seed{s}.json" for s in (1, 2, 3))]
    for name in names:
        shutil.copy(ROOT / "experiments" / "results" / name, root / name)
    row = gen.seed_comparison_row(root)
    assert row is not None and "over seeds 0, 1, 2, 3" in row[1]
    wins = int(row[1].split("more accurate on ")[1].split(" of")[0])
    seed3 = json.loads((root / "reference_models_seed3.json").read_text())
    cnn = next(m for m in seed3["models"] if m["model"] == "small-cnn")
    cnn["test_accuracy"] = 0.99  # the small CNN now wins seed 3
    (root / "reference_models_seed3.json").write_text(json.dumps(seed3))
    changed = gen.seed_comparison_row(root)[1]
    assert f"more accurate on {wins - 1} of the 4 seeds" in changed and "99.00" in changed
    (root / "reference_models_seed3.json").unlink()
    (root / "reference_models_seed2.json").unlink()
    assert gen.seed_comparison_row(root) is None  # two seeds are too few to report a spread


def test_the_retrain_budget_row_pairs_each_quickstart_run_with_references_trained_as_long(tmp_path):
    """Each budget's pick is set beside the small CNN of the references' file with the same epochs; a file
    whose epochs disagree with the pick's is not paired, and a changed accuracy changes the difference."""
    gen = _readme_results()
    root = tmp_path / "results"
    root.mkdir()
    for summary, references, _ in gen.RETRAIN_BUDGETS:
        shutil.copy(ROOT / "experiments" / "results" / summary, root / summary)
        shutil.copy(ROOT / "experiments" / "results" / references, root / references)
    row = gen.retrain_budget_row(root)
    assert row is not None and "18 epochs: front000" in row[1] and "36 epochs: front000" in row[1]
    references = json.loads((root / "reference_models_36ep.json").read_text())
    cnn = next(m for m in references["models"] if m["model"] == "small-cnn")
    cnn["test_accuracy"] = 0.9
    (root / "reference_models_36ep.json").write_text(json.dumps(references))
    assert "small-cnn 90.00 %" in gen.retrain_budget_row(root)[1]
    references["epochs"] = 18  # no longer trained as long as the 36-epoch pick
    (root / "reference_models_36ep.json").write_text(json.dumps(references))
    assert gen.retrain_budget_row(root) is None  # one budget left: nothing to compare across budgets


def test_a_reference_copied_before_the_references_file_was_regenerated_is_marked(tmp_path):
    """A fine-tune result file keeps the reference accuracies of its day; once reference_models.json says
    otherwise, its row says so and gives the file's accuracy now."""
    gen = _readme_results()
    root = tmp_path / "results"
    root.mkdir()
    shutil.copy(ROOT / "experiments" / "results" / "finetune_front_18ep.json", root / "finetune_front_18ep.json")
    tuned = json.loads((root / "finetune_front_18ep.json").read_text())
    references = {"format": "hwnas-reference-models-v1", "epochs": 18,
                  "models": [{"model": r["model"], "test_accuracy": r["test_accuracy"]} for r in tuned["references"]]}
    (root / "reference_models.json").write_text(json.dumps(references))
    assert "as it was then" not in gen.finetune_row(root, "finetune_front_18ep.json")[1]
    references["models"][-1]["test_accuracy"] = 0.5
    (root / "reference_models.json").write_text(json.dumps(references))
    row = gen.finetune_row(root, "finetune_front_18ep.json")[1]
    assert row.count("as it was then") == 1 and "50.00 % since regenerated" in row
