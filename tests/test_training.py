"""Supernet training: a few CPU steps, checkpoints, exact resume, BN recalibration."""

import functools
import json

import pytest
import torch

from hwnas.errors import ConfigError
from hwnas.supernet.calibration import evaluate, recalibrate_bn
from hwnas.supernet.checkpoint import load_supernet
from hwnas.training import SupernetTrainer, TrainConfig
from tiny_data import tiny_dataset

torch.set_num_threads(1)


def base_config(**kw) -> TrainConfig:
    base = dict(space="fmnist-mbv3", num_random=1, epochs=2, warmup_epochs=1, batch_size=16, max_steps_per_epoch=2, calib_images=16,
                checkpoint_every=1, threads=1, device="cpu")
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_train_writes_checkpoint_log_and_resumes_exactly(tmp_path, ema_decay):
    data = tiny_dataset()
    config = functools.partial(base_config, ema_decay=ema_decay)
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
    if ema_decay:  # the checkpoint holds the average, not the last weights
        trained = SupernetTrainer(config(), tmp_path / "a", dataset=data)
        trained.load_state()
        assert not torch.equal(trained.net.classifier.linear.weight, trained.ema.module.classifier.linear.weight)
    paused = SupernetTrainer(config(), tmp_path / "b", dataset=data)
    paused.load_state()
    time_before_interruption = paused.state.elapsed_s
    assert time_before_interruption > 0
    SupernetTrainer(config(), tmp_path / "b", dataset=data).run(resume=True, progress=False)
    last_record = json.loads((tmp_path / "b" / "train_log.jsonl").read_text().splitlines()[-1])
    assert last_record["elapsed_s"] >= round(time_before_interruption, 1)  # the whole run, not since --resume

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
    trainer = SupernetTrainer(base_config(), tmp_path / "c", dataset=data)
    sub = trainer.net.extract()
    before = sub.first_conv.bn.running_mean.clone()
    recalibrate_bn(sub, data.train, 28, data.mean, data.std, batch_size=16)
    assert not torch.allclose(before, sub.first_conv.bn.running_mean)
    acc, loss = evaluate(sub, data.val, 28, data.mean, data.std)
    assert 0.0 <= acc <= 1.0 and loss > 0


def test_training_learns_the_tiny_data(tmp_path):
    """A few sandwich steps must lift the largest and smallest subnets well above chance (10 %)."""
    data = tiny_dataset(n_train=160, n_val=100)
    trainer = SupernetTrainer(base_config(epochs=3, warmup_epochs=1, batch_size=16, max_steps_per_epoch=10,
                                          augment=False, checkpoint_every=100), tmp_path / "learn", dataset=data)
    before = trainer.epoch_report()
    history = trainer.run(progress=False)["history"]
    after = history[-1]
    assert before["val_acc_largest"] <= 0.2 and before["val_acc_smallest"] <= 0.2
    assert after["val_acc_largest"] >= 0.3, history  # 0.5 when written: 5x chance after 30 steps
    assert after["val_acc_smallest"] >= 0.2, history  # 0.35 when written
    assert after["val_loss_largest"] < before["val_loss_largest"]
    assert after["val_loss_smallest"] < before["val_loss_smallest"]


def test_standalone_training_updates_only_its_subnet(tmp_path):
    from hwnas.arch import smallest_architecture

    arch = smallest_architecture("fmnist-mbv3")
    trainer = SupernetTrainer(base_config(epochs=1, fixed_arch=arch.to_json()), tmp_path / "alone",
                              dataset=tiny_dataset())
    before = {n: p.detach().clone() for n, p in trainer.net.named_parameters()}
    history = trainer.run(progress=False)["history"]
    assert set(k for k in history[-1] if k.startswith("val_acc")) == {"val_acc_subnet"}
    changed = {n for n, p in trainer.net.named_parameters() if not torch.equal(p, before[n])}
    # the smallest subnet runs 2 blocks per stage: the third and fourth block of a stage never train
    assert any("blocks.1." in n for n in changed) and not any(n.startswith("blocks.3.") for n in changed)
    with pytest.raises(Exception, match="does not exist"):
        TrainConfig(fixed_arch=str(tmp_path / "missing.json"))


def test_fine_tuning_starts_from_the_checkpoint_and_distils_from_its_largest_subnet(tmp_path):
    from hwnas.arch import smallest_architecture

    data = tiny_dataset()
    SupernetTrainer(base_config(epochs=1), tmp_path / "supernet", dataset=data).run(progress=False)
    start = tmp_path / "supernet" / "supernet.safetensors"
    arch = smallest_architecture("fmnist-mbv3")
    tune = SupernetTrainer(base_config(epochs=1, warmup_epochs=0, fixed_arch=arch.to_json(), init_from=str(start)),
                           tmp_path / "tuned", dataset=data)
    initial, _ = load_supernet(start)
    for (name, p), q in zip(tune.net.state_dict().items(), initial.state_dict().values()):
        assert torch.equal(p, q), f"{name} does not start from the checkpoint"
    calls = {"n": 0}
    teacher_logits = tune._teacher_logits

    def counted(x):
        calls["n"] += 1
        return teacher_logits(x)

    tune._teacher_logits = counted
    tune.run(progress=False)
    assert calls["n"] == 2  # one teacher pass per step (max_steps_per_epoch=2)
    tuned, _ = load_supernet(tmp_path / "tuned" / "supernet.safetensors")
    changed = {n for (n, p), q in zip(tuned.named_parameters(), initial.parameters()) if not torch.equal(p, q)}
    assert changed and not any(n.startswith("blocks.3.") for n in changed)  # only the subnet's weights move

    undistilled = SupernetTrainer(base_config(fixed_arch=arch.to_json(), init_from=str(start), distill=False),
                                  tmp_path / "plain", dataset=data)
    assert undistilled.teacher is None
    with pytest.raises(ConfigError, match="init_from .* is not a file"):
        TrainConfig(init_from=str(tmp_path / "missing.safetensors"))
    with pytest.raises(Exception, match="fingerprint|space"):
        SupernetTrainer(base_config(space="fmnist-resvgg", init_from=str(start)), tmp_path / "wrong", dataset=data)


def test_a_training_split_smaller_than_one_batch_is_a_clear_error(tmp_path):
    data = tiny_dataset()
    with pytest.raises(ConfigError, match="fewer than one batch .* smaller --batch-size"):
        SupernetTrainer(base_config(batch_size=len(data.train.labels) + 1), tmp_path / "run", dataset=data)


@pytest.mark.parametrize("seed, split_seed, expected", [(1, None, 1), (1, 0, 0), (0, 3, 3)])
def test_the_split_follows_split_seed_else_seed(tmp_path, monkeypatch, seed, split_seed, expected):
    """Another training seed on the same train/val split is how a network's accuracy spread is measured."""
    import hwnas.training

    asked = []
    monkeypatch.setattr(hwnas.training, "load_dataset", lambda *a, **kw: asked.append(kw["seed"]) or tiny_dataset())
    SupernetTrainer(base_config(seed=seed, split_seed=split_seed), tmp_path / "run")
    assert asked == [expected]
