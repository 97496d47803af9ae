"""experiments/finetune_front.py: the command recorded in its result file, and its --arch argument checks."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from experiment_script import load_experiment


def _module():
    return load_experiment("finetune_front")


def _args(**kw) -> argparse.Namespace:
    base = dict(run=None, arch=None, supernet=None, models=None, alone=False, alone_seeds="0", epochs=18, lr=1e-3,
                workdir=Path("runs/ft"), out=Path("experiments/results/ft.json"), no_progress=True)
    return argparse.Namespace(**{**base, **kw})


def test_the_recorded_command_of_an_arch_run_names_every_architecture_and_option():
    args = _args(arch=["A=a.json", "B=b.json"], supernet="checkpoints/x.safetensors", alone=True, alone_seeds="0,1")
    command = _module().command_line(args, [])
    assert command == ("python experiments/finetune_front.py --supernet checkpoints/x.safetensors --arch A=a.json "
                       "--arch B=b.json --alone --alone-seeds 0,1 --epochs 18 --lr 0.001 --workdir runs/ft "
                       "--out experiments/results/ft.json")


def test_the_recorded_command_of_a_run_names_the_models_it_tuned():
    command = _module().command_line(_args(run=Path("runs/qs"), epochs=6), [{"model": "front003"}, {"model": "front001"}])
    assert command.startswith("python experiments/finetune_front.py --run runs/qs --models front003,front001 --epochs 6 ")


@pytest.mark.parametrize("spec", ["A", "=a.json", "A=does/not/exist.json"])
def test_a_malformed_arch_argument_is_refused_by_name(tmp_path, spec):
    with pytest.raises(SystemExit, match="expected NAME=FILE"):
        _module().arch_models([spec], "checkpoints/fmnist-resvgg.safetensors", _args(workdir=tmp_path))
