"""experiments/reference_models.py records the command that regenerates its result file."""

from __future__ import annotations

import shlex

from experiment_script import load_experiment


def test_the_recorded_command_gives_back_the_run_s_options():
    """Every option that differs from its default is in the command (a seed-2 run on one thread into
    another file included), so rerunning the recorded command trains and writes what the run did."""
    script = load_experiment("reference_models")
    parser = script.argument_parser()
    for argv in (["--epochs", "36", "--out", "experiments/results/reference_models_36ep.json"],
                 ["--epochs", "18", "--seed", "2", "--threads", "1", "--workdir", "runs/refs"],
                 ["--epochs", "18"]):
        args = parser.parse_args(argv)
        command = script.command_line(args)
        assert command.startswith("python experiments/reference_models.py ")
        again = parser.parse_args(shlex.split(command)[2:])
        assert vars(again) == vars(args)
    assert script.command_line(parser.parse_args(["--epochs", "18"])) == "python experiments/reference_models.py --epochs 18"
