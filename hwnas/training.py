"""Once-for-all supernet training with the sandwich rule and in-place distillation.

Why sandwich (BigNAS/AttentiveNAS style) rather than OFA's progressive shrinking: it trains every
elastic dimension (kernel, width, depth, resolution) from the first elastic epoch in one phase,
which matters on a short budget. Each step trains the largest subnet on the labels, then the
smallest and ``num_random`` random subnets on the largest subnet's soft predictions (in-place
distillation), with gradients accumulated into one optimiser step. The largest subnet sees the
largest resolution, the smallest the smallest, random subnets a random one.

Before elastic training starts, a warm-up phase trains only the largest network; hidden channels
are then importance-sorted (OFA) so smaller expand ratios slice the most useful channels.

Checkpoints (weights, optimiser, schedule position, RNG state) are written atomically every
``checkpoint_every`` steps and at each epoch end; ``resume=True`` continues exactly where an
interrupted run stopped. The loader of a training state uses ``torch.load(weights_only=True)``.
Multi-GPU: launch under ``torchrun``; each rank trains on its shard of every batch (DDP).

The same trainer trains one subnet alone (``fixed_arch``): from scratch, the standalone baseline, or
from a trained supernet's weights (``init_from``), the fine-tune before deployment that ``hwnas export
--finetune-epochs`` runs.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hwnas import paths
from hwnas.arch import Architecture
from hwnas.atomic_io import append_jsonl, atomic_write_bytes, atomic_write_json
from hwnas.data import (Dataset, calibration_subset, default_crop_padding, load_dataset, random_crop_flip,
                        resize_batch)
from hwnas.errors import ArchitectureError, ConfigError
from hwnas.families import (AnyArchitecture, architecture_from_dict, largest_architecture, sample_architecture,
                            smallest_architecture)
from hwnas.space import get_space
from hwnas.supernet.calibration import evaluate, recalibrate_bn
from hwnas.supernet.checkpoint import save_supernet
from hwnas.supernet.network import build_supernet


PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved beside the checkpoint)."""

    # The embedded default's recipe: checkpoints/fmnist-resvgg.safetensors (experiments/results/
    # train_fmnist_resvgg/: command, log, 102 min on 2 CPU cores); its quality on the test set is
    # experiments/results/supernet_quality_resvgg.json, and the recipes tried before it are in the README.
    space: str = paths.DEFAULT_SPACE
    dataset: str = "fashion-mnist"
    epochs: int = 40
    warmup_epochs: float = 1.0  # largest network only, then channel sorting, then sandwich
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    ema_decay: float = 0.0  # >0: evaluate and ship an exponential moving average of the weights
    # An architecture (JSON text or a JSON file): train only that subnet, no sandwich -- from scratch on
    # the labels, the standalone baseline a supernet subnet is compared with; with init_from, a fine-tune.
    fixed_arch: str = ""
    # A supernet checkpoint (safetensors) to start from instead of random weights. With fixed_arch this
    # fine-tunes one subnet of a trained supernet, once-for-all's step before deployment; with distill
    # on, the checkpoint's largest subnet (frozen) is the teacher (loss: half label CE, half distillation).
    init_from: str = ""
    # Random subnets per step besides largest and smallest: two trained fmnist-resvgg's middle subnets
    # 0.07-0.45 test points better than one at a 14 % longer step (train_fmnist_resvgg_30ep/ against
    # train_fmnist_resvgg/).
    num_random: int = 2
    distill: bool = True
    augment: bool = True
    seed: int = 0
    # The train/val split's seed (None: ``seed``). Another ``seed`` on the same split measures how much
    # one network's accuracy spreads over training runs (experiments/finetune_front.py --alone-seeds).
    split_seed: int | None = None
    val_size: int = 5000
    calib_images: int = 2000
    max_steps_per_epoch: int = 0  # 0 = full epochs; >0 caps steps (tests, smoke runs)
    checkpoint_every: int = 50
    device: str = "auto"
    threads: int = 0
    # Layout, precision and compilation: the defaults are the fastest accuracy-safe choice measured by
    # experiments/train_speed.py (results/train_speed.json); the others stay selectable for other hardware.
    channels_last: bool = True
    precision: str = "fp32"  # "fp32" or "bf16" (autocast)
    compile: bool = False  # torch.compile the supernet

    def standalone_architecture(self) -> AnyArchitecture | None:
        """The architecture of a standalone run (``fixed_arch``: JSON text or a JSON file), validated
        against the space (of any family)."""
        if not self.fixed_arch:
            return None
        text = self.fixed_arch.strip()
        if not text.startswith("{") and not Path(text).is_file():
            raise ArchitectureError(f"fixed_arch file {text} does not exist; pass an architecture JSON file "
                                    "(hwnas search writes them) or the JSON text itself")
        if get_space(self.space).family == "mbconv":
            return (Architecture.from_json(text, self.space) if text.startswith("{")
                    else Architecture.load(text, self.space))
        try:
            data = json.loads(text if text.startswith("{") else Path(text).read_text())
        except (OSError, ValueError) as exc:
            raise ArchitectureError(f"fixed_arch {text[:80]!r} is neither JSON text nor a readable JSON file: "
                                    f"{exc}") from None
        return architecture_from_dict(data, self.space)

    def __post_init__(self) -> None:
        get_space(self.space)
        if self.epochs < 1:
            raise ConfigError("epochs must be >= 1")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError("warmup_epochs must lie between 0 and epochs")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be >= 2 (BatchNorm needs more than one image)")
        if self.lr <= 0:
            raise ConfigError("lr must be positive")
        if self.num_random < 0:
            raise ConfigError("num_random must be >= 0")
        if self.fixed_arch:
            self.standalone_architecture()  # fail now, not after the data set has loaded
        if self.init_from and not Path(self.init_from).is_file():
            raise ConfigError(f"init_from {self.init_from!r} is not a file; pass a supernet checkpoint trained "
                              f"for space {self.space!r} (e.g. checkpoints/{self.space}.safetensors)")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must lie in [0, 1) (0 = off), got {self.ema_decay}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {PRECISIONS}")


@dataclass
class TrainState:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    sorted_channels: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    # Wall time spent training, summed over every resumed part: the train log's elapsed_s must
    # count the whole run, not the time since the last --resume.
    elapsed_s: float = 0.0


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available; use --device cpu")
    return torch.device(name)


def warmup_cosine_lr(step: int, total_steps: int, steps_per_epoch: int, base_lr: float) -> float:
    """Linear warm-up over a quarter epoch, then cosine decay to zero at ``total_steps``.

    The one schedule of hwnas training; reference models in experiments/ use it too, so they get
    the same recipe as the supernet.
    """
    warm = max(1, steps_per_epoch // 4)
    if step < warm:
        return base_lr * (step + 1) / warm
    progress = (step - warm) / max(1, total_steps - warm)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A run's saved ``TrainConfig`` (as a dict) with the options added since it was saved at their
    defaults, so a run from before an option existed still compares equal to the same run today."""
    return {**{f.name: f.default for f in fields(TrainConfig)}, **saved}


def data_split_seed(config: dict[str, Any]) -> int:
    """The seed of a run's train/val split (``TrainConfig`` as a dict, saved or current): its ``split_seed``,
    else its training ``seed``."""
    saved = saved_config(config)
    return saved["seed"] if saved["split_seed"] is None else saved["split_seed"]


class SupernetTrainer:
    """Runs (or resumes) one training job writing into ``out_dir``."""

    def __init__(self, config: TrainConfig, out_dir: str | Path, dataset: Dataset | None = None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = _device(config.device)
        if self.world > 1:
            self._init_distributed()
        self.dataset = dataset or load_dataset(config.dataset, val_size=config.val_size,
                                               seed=data_split_seed(asdict(config)))
        self.space = get_space(config.space)
        if self.dataset.num_classes != self.space.num_classes or self.dataset.in_channels != self.space.in_channels:
            raise ConfigError(
                f"dataset {config.dataset!r} has {self.dataset.num_classes} classes and "
                f"{self.dataset.in_channels} channels, space {self.space.name!r} expects "
                f"{self.space.num_classes} and {self.space.in_channels}; pick a matching space")
        torch.manual_seed(config.seed)
        self.net = build_supernet(self.space).to(self.device)
        self.teacher = self._start_from_checkpoint() if config.init_from else None
        if config.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.model = torch.compile(self.net) if config.compile else self.net
        if self.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, find_unused_parameters=True,
                device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.ema = self._new_ema() if config.ema_decay else None
        self.standalone = config.standalone_architecture()
        self.train_images = self.dataset.train.images.to(self.device)
        self.train_labels = self.dataset.train.labels.to(self.device)
        self.steps_per_epoch = len(self.train_labels) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"the training split holds {len(self.train_labels)} images, fewer than one batch of "
                              f"{config.batch_size}; pass a smaller --batch-size or more images")
        if config.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, config.max_steps_per_epoch)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.state = TrainState()
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.mean = torch.tensor(self.dataset.mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(self.dataset.std, device=self.device).view(1, -1, 1, 1)

    def _start_from_checkpoint(self) -> torch.nn.Module | None:
        """Load ``init_from`` into the network; return the frozen teacher of a distilled fine-tune (its
        largest subnet, BN recalibrated), or None."""
        from hwnas.supernet.checkpoint import load_supernet

        start, _ = load_supernet(self.config.init_from, self.space)
        self.net.load_state_dict(start.state_dict())
        if not (self.config.fixed_arch and self.config.distill):
            return None
        big = largest_architecture(self.space)
        teacher = start.extract(big).to(self.device)
        # The supernet's running BN statistics mix every subnet's batches; the teacher gets its own, as
        # every evaluation here does.
        calib = calibration_subset(self.dataset.train, self.config.calib_images, self.config.seed)
        recalibrate_bn(teacher, calib, big.resolution, self.dataset.mean, self.dataset.std, device=self.device)
        teacher.eval().requires_grad_(False)
        return teacher.to(memory_format=torch.channels_last) if self.config.channels_last else teacher

    def _new_ema(self) -> torch.optim.swa_utils.AveragedModel:
        """torch's own EMA of parameters and buffers (``AveragedModel`` with an EMA average function)."""
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        return AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay), use_buffers=True)

    @property
    def shipped_net(self) -> torch.nn.Module:
        """The weights that are evaluated and saved: the EMA when enabled, else the trained ones."""
        return self.ema.module if self.ema is not None else self.net

    def _init_distributed(self) -> None:
        import torch.distributed as dist

        if self.device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    # ----------------------------------------------------------------------------- checkpoints
    @property
    def state_path(self) -> Path:
        return self.out_dir / "train_state.pt"

    def save_state(self) -> None:
        if self.rank != 0:
            return
        buf = io.BytesIO()
        torch.save({
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "optimizer": self.optimizer.state_dict(),
            "state": json.dumps(asdict(self.state)),
            "config": json.dumps(asdict(self.config)),
            "torch_rng": self.gen.get_state(),
            "global_rng": torch.get_rng_state(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
        }, buf)
        atomic_write_bytes(self.state_path, buf.getvalue())

    def load_state(self) -> bool:
        if not self.state_path.exists():
            return False
        blob = torch.load(self.state_path, map_location=self.device, weights_only=True)
        saved = saved_config(json.loads(blob["config"]))
        if saved != asdict(self.config):
            changed = sorted(k for k in saved if saved[k] != asdict(self.config).get(k))
            raise ConfigError(f"cannot resume {self.out_dir}: its config differs in {changed}; "
                              "rerun with the original options or use a new --out folder")
        self.net.load_state_dict(blob["model"])
        if self.ema is not None:
            self.ema.load_state_dict(blob["ema"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.state = TrainState(**json.loads(blob["state"]))
        self.gen.set_state(blob["torch_rng"])
        torch.set_rng_state(blob["global_rng"])
        self.rng.bit_generator.state = json.loads(blob["numpy_rng"])
        return True

    # ----------------------------------------------------------------------------- schedule
    def lr_at(self, step: int) -> float:
        return warmup_cosine_lr(step, self.total_steps, self.steps_per_epoch, self.config.lr)

    def _batch(self, order: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The global batch ``step`` of the epoch, augmented, then this rank's shard of it.

        Every rank augments the whole global batch with the same generator before taking its shard,
        so a ``torchrun`` job sees exactly the images (crops, flips) a single process would.
        """
        bs = self.config.batch_size
        idx = order[step * bs:(step + 1) * bs]
        images = self.train_images[idx]
        if self.config.augment:
            images = random_crop_flip(images, self.gen, default_crop_padding(self.dataset.train.image_size))
        x = (images.float() / 255.0 - self.mean) / self.std
        y = self.train_labels[idx]
        if self.world > 1:
            x, y = x[self.rank::self.world], y[self.rank::self.world]
        return x, y

    # ----------------------------------------------------------------------------- step
    def _forward(self, x: torch.Tensor, resolution: int) -> torch.Tensor:
        """The active subnet's fp32 logits at ``resolution`` (bf16 autocast inside when configured)."""
        x = resize_batch(x, resolution)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.config.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return self.model(x).float()
        return self.model(x)

    @torch.no_grad()
    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_batch(x, largest_architecture(self.space).resolution)
        return self.teacher(x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, elastic: bool) -> dict[str, float]:
        cfg, space = self.config, self.space
        self.optimizer.zero_grad(set_to_none=True)
        if self.standalone is not None:
            return self._standalone_step(x, y)
        big = largest_architecture(space)
        self.net.set_active(big)
        logits = self._forward(x, big.resolution)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        loss.backward()
        stats = {"loss": loss.item(), "acc": (logits.argmax(1) == y).float().mean().item()}
        if not elastic:
            return stats
        soft = F.softmax(logits.detach(), dim=1)
        subnets = [smallest_architecture(space)] + [
            sample_architecture(space, self.rng) for _ in range(cfg.num_random)]
        for arch in subnets:
            self.net.set_active(arch)
            out = self._forward(x, arch.resolution)
            if cfg.distill:
                sub_loss = torch.sum(-soft * F.log_softmax(out, dim=1), dim=1).mean()
            else:
                sub_loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
            sub_loss.backward()
        stats["subnet_loss"] = sub_loss.item()
        return stats

    def _standalone_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.net.set_active(self.standalone)
        logits = self._forward(x, self.standalone.resolution)
        loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        if self.teacher is not None:
            soft = F.softmax(self._teacher_logits(x), dim=1)
            loss = 0.5 * loss + 0.5 * torch.sum(-soft * F.log_softmax(logits, dim=1), dim=1).mean()
        loss.backward()
        return {"loss": loss.item(), "acc": (logits.argmax(1) == y).float().mean().item()}

    def run(self, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        from tqdm.auto import tqdm

        if resume and self.load_state() and self.rank == 0:
            print(f"resumed {self.out_dir} at epoch {self.state.epoch} step {self.state.step_in_epoch}")
        elif self.state_path.exists() and not resume:
            raise ConfigError(f"{self.out_dir} already holds a training run; pass --resume to continue it "
                              "or choose another --out")
        cfg = self.config
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out_dir / "train_config.json", asdict(cfg))
        warmup_steps = int(cfg.warmup_epochs * self.steps_per_epoch)
        bar = tqdm(total=self.total_steps, initial=self.state.global_step, desc="train subnet" if cfg.fixed_arch else "train supernet",
                   disable=not progress or self.rank != 0, dynamic_ncols=True)
        started = time.time() - self.state.elapsed_s
        while self.state.epoch < cfg.epochs:
            order = torch.randperm(len(self.train_labels), generator=self._epoch_gen()).to(self.device)
            self.net.train()
            while self.state.step_in_epoch < self.steps_per_epoch:
                step = self.state.global_step
                elastic = step >= warmup_steps and self.standalone is None
                if elastic and not self.state.sorted_channels:
                    if hasattr(self.net, "sort_channels"):  # the trainable families' supernets do
                        self.net.sort_channels()
                    self.state.sorted_channels = True
                    self.optimizer.state.clear()  # moments belong to the old channel order
                    if self.ema is not None:  # so does the average: restart it from the sorted weights
                        self.ema = self._new_ema()
                for group in self.optimizer.param_groups:
                    group["lr"] = self.lr_at(step)
                x, y = self._batch(order, self.state.step_in_epoch)
                stats = self.train_step(x, y, elastic)
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.net)
                self.state.step_in_epoch += 1
                self.state.global_step += 1
                bar.update(1)
                bar.set_postfix(epoch=self.state.epoch, loss=f"{stats['loss']:.3f}", acc=f"{stats['acc']:.3f}",
                                phase=self._phase(elastic))
                if self.state.global_step % cfg.checkpoint_every == 0:
                    self.state.elapsed_s = time.time() - started
                    self.save_state()
            self.state.epoch += 1
            self.state.step_in_epoch = 0
            record = self.epoch_report()
            self.state.elapsed_s = time.time() - started
            record["elapsed_s"] = round(self.state.elapsed_s, 1)
            self.state.history.append(record)
            if self.rank == 0:
                append_jsonl(self.out_dir / "train_log.jsonl", record)
                bar.write(json.dumps(record))
            self.save_state()
        bar.close()
        if self.rank == 0:
            save_supernet(self.out_dir / "supernet.safetensors", self.shipped_net,
                          {"train_config": asdict(cfg), "history": self.state.history})
        return {"history": self.state.history, "checkpoint": str(self.out_dir / "supernet.safetensors")}

    def _phase(self, elastic: bool) -> str:
        if self.standalone is not None:
            return "fine-tune" if self.config.init_from else "alone"
        return "sandwich" if elastic else "warmup"

    def _epoch_gen(self) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed(self.config.seed * 1000 + self.state.epoch)
        return g

    def epoch_report(self) -> dict[str, Any]:
        """Validation accuracy of the largest and smallest subnets (or the standalone one) after BN
        recalibration."""
        calib = calibration_subset(self.dataset.train, self.config.calib_images, self.config.seed)
        record: dict[str, Any] = {"epoch": self.state.epoch, "step": self.state.global_step}
        subnets = ((("subnet", self.standalone),) if self.standalone is not None else
                   (("largest", largest_architecture(self.space)), ("smallest", smallest_architecture(self.space))))
        for label, arch in subnets:
            sub = self.shipped_net.extract(arch).to(self.device)
            recalibrate_bn(sub, calib, arch.resolution, self.dataset.mean, self.dataset.std, device=self.device)
            acc, loss = evaluate(sub, self.dataset.val, arch.resolution, self.dataset.mean, self.dataset.std,
                                 device=self.device)
            record[f"val_acc_{label}"] = round(acc, 5)
            record[f"val_loss_{label}"] = round(loss, 5)
        return record
