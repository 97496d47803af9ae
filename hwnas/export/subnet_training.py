"""Train a picked subnet alone before it is exported: fine-tuned from the supernet's weights, or
retrained from scratch.

A subnet cut from a supernet shares its weights with every other subnet. Both ways train the subnet
alone with the trainer ``hwnas train`` runs (``--fixed-arch ARCH``), on the supernet's own data and
train/val split:

- **fine-tune** (``--finetune-epochs``, once-for-all's last step): start from the supernet's weights
  (``--init-from``), distilled from its largest subnet, at a third of the training learning rate;
- **retrain** (``--retrain-epochs``, the usual last step of NAS): from random weights, with the recipe
  of ``hwnas train --fixed-arch`` -- the recipe the hand-designed references are trained with
  (``experiments/reference_models.py``), so a retrained model and a reference compare like for like.
  Measured on ``fmnist-resvgg`` at the small CNN's latency (``experiments/results/
  finetune_front_18ep.json``), 18 epochs of retraining gave 94.06 % against 94.03 % for 18 of
  fine-tuning: the supernet's value there lay in choosing the architecture, not in its weights.

Each model's run lives in its own folder and resumes after an interruption; a finished one is reused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from hwnas.atomic_io import read_jsonl
from hwnas.errors import ConfigError

FINETUNE, RETRAIN = "fine-tune", "retrain"
#: Each mode's name in its command-line flag (``--<name>-epochs``) and in its run folders.
OPTION_NAME = {FINETUNE: "finetune", RETRAIN: "retrain"}


def training_mode(settings: Any) -> str | None:
    """``FINETUNE``, ``RETRAIN`` or None (export the supernet's weights as they are)."""
    if settings.finetune_epochs:
        return FINETUNE
    return RETRAIN if settings.retrain_epochs else None


def training_config(source: Any, arch: Any, settings: Any) -> Any:
    """The run that trains ``arch`` of ``source``'s supernet (an hwnas checkpoint) as ``settings`` ask."""
    from hwnas.training import TrainConfig, data_split_seed

    mode = training_mode(settings)
    if source.ofa:
        raise ConfigError(f"--{OPTION_NAME[mode]}-epochs needs an hwnas supernet "
                          "checkpoint; the published once-for-all weights are trained on ImageNet, which hwnas "
                          "does not train on")
    trained = source.extra.get("train_config") or {}
    dataset = settings.data or trained.get("dataset")
    if dataset is None:
        raise ConfigError("the supernet does not say which data it was trained on; pass --data to train the subnet")
    common = dict(space=source.net.space.name, dataset=dataset, fixed_arch=json.dumps(arch.to_dict()), warmup_epochs=0,
                  val_size=int(trained.get("val_size", 5000)), device=settings.torch_device)
    if mode == FINETUNE:
        return TrainConfig(**common, init_from=str(source.label), epochs=settings.finetune_epochs,
                           lr=settings.finetune_lr, seed=int(trained.get("seed", 0)))
    return TrainConfig(**common, epochs=settings.retrain_epochs, seed=settings.seed,
                       split_seed=int(data_split_seed(trained)))


def train_alone(config: Any, folder: Path, progress: bool = False, dataset: Any = None) -> Path:
    """Run ``config`` (one subnet, ``fixed_arch``) in ``folder`` unless it finished there already; resumes
    an interrupted run. Returns the trained checkpoint."""
    from hwnas.training import SupernetTrainer

    checkpoint = folder / "supernet.safetensors"
    if not _finished(folder, config):
        SupernetTrainer(config, folder, dataset=dataset).run(resume=(folder / "train_state.pt").exists(),
                                                             progress=progress)
    return checkpoint


def trained_source(source: Any, arch: Any, settings: Any, folder: Path, progress: bool = False) -> Any:
    """``source`` with its supernet replaced by the one ``arch`` was trained alone into in ``folder``."""
    from hwnas.supernet.checkpoint import file_sha256, load_supernet

    checkpoint = train_alone(training_config(source, arch, settings), folder, progress)
    net, extra = load_supernet(checkpoint, source.net.space)
    return replace(source, net=net.eval(), label=str(checkpoint), sha256=file_sha256(checkpoint), extra=extra)


def _finished(folder: Path, config: Any) -> bool:
    """Whether ``folder`` holds this very run, finished; a different run there is an error."""
    saved = folder / "train_config.json"
    if not saved.exists():
        return False
    from hwnas.training import saved_config

    if saved_config(json.loads(saved.read_text())) != asdict(config):
        raise ConfigError(f"{folder} holds a training run with other options; delete it or export into another --out")
    return (folder / "supernet.safetensors").exists()


def training_record(folder: Path) -> dict[str, Any]:
    """What the report states about a subnet's training before export: fine-tune or retrain, its epochs,
    learning rate, seed, seconds and validation accuracy (after the last epoch, and after each)."""
    config = json.loads((folder / "train_config.json").read_text())
    log = read_jsonl(folder / "train_log.jsonl")
    return {"mode": FINETUNE if config["init_from"] else RETRAIN, "epochs": config["epochs"], "lr": config["lr"],
            "seed": config["seed"], "init_from": config["init_from"],
            "distilled": bool(config["distill"] and config["init_from"]), "train_seconds": log[-1]["elapsed_s"],
            "val_accuracy": log[-1]["val_acc_subnet"], "val_accuracy_by_epoch": [r["val_acc_subnet"] for r in log],
            "folder": str(folder)}
