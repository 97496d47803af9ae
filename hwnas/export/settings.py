"""What an export does, as one value: :class:`ExportSettings` (no torch import, so ``--help`` is fast).

The ONNX form is chosen to match the latency tables: ``hwnas profile`` times TorchScript-exported
opset-17 graphs, so exports default to opset 17 too (the dynamo exporter needs 18). The remaining
difference, a dynamic batch axis in deployed files against a fixed one in table graphs, is measured
by ``experiments/export_form_latency.py`` (``experiments/results/export_form_latency.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hwnas.errors import ConfigError

TABLE_OPSET = 17            # what hwnas.latency.block_models exports table graphs with
DEFAULT_OPSET = TABLE_OPSET
MIN_OPSET = 17
DYNAMO_MIN_OPSET = 18
EXPORTERS = ("torchscript", "dynamo")
OFA_SUPERNET = "ofa-mbv3-w1.0"
#: Spaces whose published once-for-all weights ``--supernet NAME --weights FILE`` loads, and that file's name.
OFA_SUPERNETS = {"ofa-mbv3-w1.0": "ofa_mbv3_d234_e346_k357_w1.0", "ofa-mbv3-w1.2": "ofa_mbv3_d234_e346_k357_w1.2",
                 "ofa-proxyless-w1.3": "ofa_proxyless_d234_e346_k357_w1.3", "ofa-resnet50": "ofa_resnet50"}
#: Test images whose accuracy an export measures by default: a CPU evaluates them in reasonable time, not hours.
DEFAULT_EVAL_IMAGES = 1000
PICK_HELP = "all | budget (the search's own picks, from picks.json) | N (N models spread along the front by latency)"


@dataclass(frozen=True)
class ExportSettings:
    """Everything that defines one export run; add a field (with a default) to add an option.

    ``opset`` None means the table's opset for the TorchScript exporter and the dynamo exporter's
    minimum for dynamo. ``measure`` None means the run's own devices (a run) or none (``--arch``).
    ``calib_images`` 0 keeps the supernet's own BN statistics (no training images needed; accuracy
    is lower than after recalibration); ``eval_images`` caps the test images whose accuracy is
    measured (0: none), so a 50,000-image validation folder does not take hours on a CPU.
    """

    out: Path
    pick: str = "all"
    supernet: str | None = None
    weights: Path | None = None
    data: str | None = None
    measure: tuple[str, ...] | None = None
    no_measure: bool = False
    repeats: int | None = None
    int8: bool = False
    calib_images: int = 1000
    eval_images: int = DEFAULT_EVAL_IMAGES
    int8_calib_images: int = 300
    parity_images: int = 256
    batch: int | None = None
    opset: int | None = None
    exporter: str = "torchscript"
    torch_device: str = "cpu"
    # >0: fine-tune each model that many epochs from the supernet's weights before export
    # (hwnas.export.subnet_training); the learning rate is a third of hwnas train's (3e-3), for weights
    # that are trained already.
    finetune_epochs: int = 0
    finetune_lr: float = 1e-3
    # >0: retrain each model that many epochs from scratch before export (hwnas.export.subnet_training),
    # with hwnas train --fixed-arch's recipe and --seed as its training seed.
    retrain_epochs: int = 0
    # Fine-tune or retrain only the N exported models of highest predicted accuracy (None: all of them);
    # the others keep the supernet's weights. Training time grows with a model's size, so the most
    # accurate models are both the slowest to train and the ones a user deploys.
    train_top: int | None = None
    seed: int = 0
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.measure is not None:
            object.__setattr__(self, "measure", tuple(self.measure))
        for flag, value in (("--int8-calib-images", self.int8_calib_images), ("--parity-images", self.parity_images)):
            if value < 1:
                raise ConfigError(f"{flag} must be a positive image count, got {value}")
        for flag, value in (("--calib-images", self.calib_images), ("--eval-images", self.eval_images)):
            if value < 0:
                raise ConfigError(f"{flag} must be an image count >= 0 (0: {'keep the supernet BN statistics' if flag == '--calib-images' else 'no accuracy'}), got {value}")
        if self.finetune_epochs < 0 or self.finetune_lr <= 0:
            raise ConfigError(f"--finetune-epochs must be >= 0 (0: no fine-tuning) and --finetune-lr positive, got "
                              f"{self.finetune_epochs} and {self.finetune_lr}")
        if self.retrain_epochs < 0:
            raise ConfigError(f"--retrain-epochs must be >= 0 (0: no retraining), got {self.retrain_epochs}")
        if self.finetune_epochs and self.retrain_epochs:
            raise ConfigError("--finetune-epochs and --retrain-epochs exclude each other: a model is either "
                              "fine-tuned from the supernet's weights or retrained from scratch; pass one")
        if self.train_top is not None and self.train_top < 1:
            raise ConfigError(f"--train-top must be a positive number of models, got {self.train_top}; omit it "
                              "to train every exported model")
        check_onnx_options(self.batch, self.resolved_opset, self.exporter)

    @property
    def needs_data(self) -> bool:
        """Whether this export reads images at all (BN recalibration, accuracy or INT8 ranges)."""
        return self.calib_images > 0 or self.eval_images > 0 or self.int8

    @property
    def resolved_opset(self) -> int:
        if self.opset is not None:
            return self.opset
        return DYNAMO_MIN_OPSET if self.exporter == "dynamo" else DEFAULT_OPSET

    def replace(self, **changes: object) -> "ExportSettings":
        return replace(self, **changes)


def check_onnx_options(batch: int | None, opset: int, exporter: str) -> None:
    """Refuse an exporter, opset or batch this pipeline cannot produce, naming the fix."""
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    if batch is not None and batch < 1:
        raise ConfigError(f"--batch must be a positive size, got {batch}; omit it for a dynamic batch axis")
    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} is too old; use opset {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    if exporter == "dynamo" and opset < DYNAMO_MIN_OPSET:
        raise ConfigError(f"the dynamo exporter emits opset {DYNAMO_MIN_OPSET} or newer; pass --opset "
                          f"{DYNAMO_MIN_OPSET} or use --exporter torchscript for opset {opset}")
