"""Fine-tune a picked subnet before it is exported: once-for-all's last step before deployment.

A subnet cut from a supernet shares its weights with every other subnet; trained alone it would
score higher (``experiments/results/supernet_quality_resvgg_standalone.json``: 0.64-0.74 test points
for ``fmnist-resvgg``'s middle subnets). Fine-tuning starts from the supernet's weights and trains only
the subnet, distilled from the supernet's largest subnet, with the trainer ``hwnas train`` runs
(``--fixed-arch ARCH --init-from SUPERNET``): same data pipeline, split and schedule. Each model's run
lives in its own folder and resumes after an interruption; a finished one is reused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from hwnas.atomic_io import read_jsonl
from hwnas.errors import ConfigError


def finetune_config(source: Any, arch: Any, settings: Any) -> Any:
    """The training run that fine-tunes ``arch`` of ``source``'s supernet (an hwnas checkpoint)."""
    from hwnas.training import TrainConfig

    if source.ofa:
        raise ConfigError("--finetune-epochs needs an hwnas supernet checkpoint; the published once-for-all "
                          "weights are fine-tuned on ImageNet, which hwnas does not train on")
    trained = source.extra.get("train_config") or {}
    dataset = settings.data or trained.get("dataset")
    if dataset is None:
        raise ConfigError("the supernet does not say which data it was trained on; pass --data to fine-tune")
    return TrainConfig(space=source.net.space.name, dataset=dataset, fixed_arch=json.dumps(arch.to_dict()),
                       init_from=str(source.label), epochs=settings.finetune_epochs, warmup_epochs=0,
                       lr=settings.finetune_lr, seed=int(trained.get("seed", 0)),
                       val_size=int(trained.get("val_size", 5000)), device=settings.torch_device)


def finetuned_source(source: Any, arch: Any, settings: Any, folder: Path, progress: bool = False) -> Any:
    """``source`` with its supernet replaced by one whose ``arch`` weights were fine-tuned in ``folder``."""
    from hwnas.supernet.checkpoint import file_sha256, load_supernet
    from hwnas.training import SupernetTrainer

    config = finetune_config(source, arch, settings)
    checkpoint = folder / "supernet.safetensors"
    if not _finished(folder, config):
        SupernetTrainer(config, folder).run(resume=(folder / "train_state.pt").exists(), progress=progress)
    net, extra = load_supernet(checkpoint, source.net.space)
    return replace(source, net=net.eval(), label=str(checkpoint), sha256=file_sha256(checkpoint), extra=extra)


def _finished(folder: Path, config: Any) -> bool:
    """Whether ``folder`` holds this very fine-tune, finished; a different one there is an error."""
    saved = folder / "train_config.json"
    if not saved.exists():
        return False
    from hwnas.training import saved_config

    if saved_config(json.loads(saved.read_text())) != asdict(config):
        raise ConfigError(f"{folder} holds a fine-tune with other options; delete it or export into another --out")
    return (folder / "supernet.safetensors").exists()


def finetune_record(folder: Path) -> dict[str, Any]:
    """What the report states about a fine-tune: its epochs, learning rate, seconds and validation accuracy
    (after the last epoch, and after each)."""
    config = json.loads((folder / "train_config.json").read_text())
    log = read_jsonl(folder / "train_log.jsonl")
    return {"epochs": config["epochs"], "lr": config["lr"], "init_from": config["init_from"],
            "distilled": config["distill"], "train_seconds": log[-1]["elapsed_s"],
            "val_accuracy": log[-1]["val_acc_subnet"], "val_accuracy_by_epoch": [r["val_acc_subnet"] for r in log],
            "folder": str(folder)}
