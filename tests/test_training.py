"""Supernet training: a few CPU steps, checkpoints, exact resume, BN recalibration."""

import pytest
import torch

from hwnas.data import Dataset, Split
from hwnas.errors import ConfigError
from hwnas.supernet.calibration import evaluate, recalibrate_bn
from hwnas.supernet.checkpoint import load_supernet
from hwnas.training import SupernetTrainer, TrainConfig

torch.set_num_threads(1)


def tiny_dataset(n_train: int = 48, n_val: int = 16, size: int = 28) -> Dataset:
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        labels = torch.arange(n) % 10
        images = torch.randint(0, 60, (n, 1, size, size), generator=g, dtype=torch.uint8)
        images[:, :, 4:12, 4:12] += (labels * 19).to(torch.uint8).view(n, 1, 1, 1)  # learnable signal
        return Split(images, labels)

    return Dataset("tiny", split(n_train), split(n_val), split(n_val), 10, 1,
                   tuple(str(i) for i in range(10)), (0.2,), (0.3,))


def config(**kw) -> TrainConfig:
    base = dict(epochs=2, warmup_epochs=1, batch_size=16, max_steps_per_epoch=2, calib_images=16,
                checkpoint_every=1, threads=1, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_train_writes_checkpoint_log_and_resumes_exactly(tmp_path):
    data = tiny_dataset()
    full = SupernetTrainer(config(), tmp_path / "a", dataset=data).run(progress=False)
    assert len(full["history"]) == 2 and "val_acc_largest" in full["history"][0]
    assert (tmp_path / "a" / "train_log.jsonl").exists()

    interrupted = SupernetTrainer(config(), tmp_path / "b", dataset=data)
    calls = {"n": 0}
    original = interrupted.train_step

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    interrupted.train_step = flaky
    with pytest.raises(KeyboardInterrupt):
        interrupted.run(progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        SupernetTrainer(config(), tmp_path / "b", dataset=data).run(progress=False)
    with pytest.raises(ConfigError, match="differs"):
        SupernetTrainer(config(lr=1e-2), tmp_path / "b", dataset=data).run(resume=True, progress=False)
    SupernetTrainer(config(), tmp_path / "b", dataset=data).run(resume=True, progress=False)

    net_a, _ = load_supernet(tmp_path / "a" / "supernet.safetensors")
    net_b, _ = load_supernet(tmp_path / "b" / "supernet.safetensors")
    for (name, pa), pb in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_config_validation():
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        TrainConfig(batch_size=1)


def test_bn_recalibration_changes_statistics_and_evaluates(tmp_path):
    data = tiny_dataset()
    trainer = SupernetTrainer(config(), tmp_path / "c", dataset=data)
    sub = trainer.net.extract()
    before = sub.first_conv.bn.running_mean.clone()
    recalibrate_bn(sub, data.train, 28, data.mean, data.std, batch_size=16)
    assert not torch.allclose(before, sub.first_conv.bn.running_mean)
    acc, loss = evaluate(sub, data.val, 28, data.mean, data.std)
    assert 0.0 <= acc <= 1.0 and loss > 0
