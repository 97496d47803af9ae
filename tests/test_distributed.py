"""The multi-process paths, exercised for real: `torchrun` on the CPU (gloo backend) with 2 workers.

* Training: 2 DDP ranks, each on its shard of a global batch, must produce at every step the
  gradients that one process computes on the same global batch when it evaluates the two shards
  separately (BatchNorm normalises per shard under DDP) and averages their gradients.
* Collection: ``hwnas collect`` under torchrun splits the subnets between ranks and rank 0 merges
  the shards; the merged data set must equal a single-process collection record for record.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddp_train_worker import STEPS, config
from hwnas.accuracy.collect import CollectConfig, arch_key, collect, collection_architectures
from hwnas.atomic_io import read_jsonl
from hwnas.data import load_dataset
from hwnas.supernet.checkpoint import save_supernet
from hwnas.supernet.network import ElasticMobileNetV3
from hwnas.training import SupernetTrainer
from tiny_data import tiny_dataset

TESTS = Path(__file__).parent
REPO = TESTS.parent


def torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def one_process_reference(out: Path, weights: list[dict], world: int = 2) -> tuple[list[dict], list[dict]]:
    """What the DDP job must compute, from one process: per step, from the weights the job had before
    that step, the global batch split into the ranks' shards, each shard's sandwich gradients (same
    subnets, same dropout draws as every rank makes), averaged. Also returns the gradients of shard 0
    alone (a job that forgot to average).

    Starting every step from the job's own weights keeps float rounding from compounding: AdamW
    turns the rounding-noise gradient of a parameter whose exact gradient is zero (a bias feeding a
    BatchNorm) into a full-size step, which would make later steps incomparable."""
    trainer = SupernetTrainer(config(), out, dataset=tiny_dataset())
    order = torch.randperm(len(trainer.train_labels), generator=trainer._epoch_gen())
    trainer.net.train()
    named = dict(trainer.net.named_parameters())
    averaged, shard0 = [], []
    for step in range(STEPS):
        trainer.net.load_state_dict(weights[step])
        x, y = trainer._batch(order, step)
        torch_state, numpy_state = torch.get_rng_state(), trainer.rng.bit_generator.state
        per_shard = []
        for rank in range(world):
            torch.set_rng_state(torch_state)
            trainer.rng.bit_generator.state = numpy_state
            trainer.train_step(x[rank::world], y[rank::world], elastic=True)
            per_shard.append({n: p.grad.clone() for n, p in named.items() if p.grad is not None})
        for n, p in named.items():
            p.grad = sum(g[n] for g in per_shard) / world if n in per_shard[0] else None
        averaged.append({n: p.grad.clone() for n, p in named.items() if p.grad is not None})
        shard0.append(per_shard[0])
    return averaged, shard0


def max_rel_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    scale = max(v.abs().max().item() for v in b.values())
    return max((a[k] - b[k]).abs().max().item() for k in a) / scale


@pytest.mark.slow
def test_torchrun_training_matches_one_process_on_the_same_global_batch(tmp_path):
    torchrun(str(TESTS / "ddp_train_worker.py"), str(tmp_path / "ddp"))
    ddp = torch.load(tmp_path / "ddp" / "ddp.pt", weights_only=True)
    assert ddp["world"] == 2
    torch.set_num_threads(1)
    grads, shard0 = one_process_reference(tmp_path / "ref", ddp["params"])

    assert len(ddp["grads"]) == len(grads) == STEPS
    assert any(not torch.equal(a, b) for a, b in zip(ddp["params"][0].values(), ddp["params"][1].values()))
    for step in range(STEPS):
        assert max_rel_diff(ddp["grads"][step], grads[step]) < 1e-5, f"step {step}"
        # The check can fail: gradients that were not averaged over the ranks are far off.
        assert max_rel_diff(shard0[step], grads[step]) > 1e-2


def write_image_folder(root: Path, per_class: int = 6, size: int = 28) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in range(10):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size), dtype=np.uint8)
            pixels[4:12, 4:12] += np.uint8(label * 19)
            Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
    return root


@pytest.mark.slow
def test_torchrun_collect_merges_the_ranks_shards(tmp_path):
    images = write_image_folder(tmp_path / "images")
    torch.manual_seed(0)
    supernet = str(save_supernet(tmp_path / "supernet.safetensors", ElasticMobileNetV3("fmnist-mbv3")))
    options = dict(supernet=supernet, n=6, val_images=0, calib_images=16, batch_size=64, device="cpu", threads=1,
                   dataset=str(images), val_size=10, data_seed=0)
    torchrun("-m", "hwnas.cli", "collect", "--supernet", supernet, "--num-subnets", "6", "--out", str(tmp_path / "ddp"),
             "--val-images", "0", "--calib-images", "16", "--batch-size", "64", "--device", "cpu", "--threads", "1",
             "--dataset", str(images), "--val-size", "10", "--data-seed", "0", "--no-progress")
    merged = read_jsonl(tmp_path / "ddp" / "dataset.jsonl")
    assert not list((tmp_path / "ddp").glob("dataset.rank*.jsonl")), "rank shards must be merged and removed"

    torch.set_num_threads(1)
    dataset = load_dataset(str(images), val_size=10, seed=0, in_channels=1)
    collect(CollectConfig(out=str(tmp_path / "single"), **options), dataset=dataset, progress=False)
    single = read_jsonl(tmp_path / "single" / "dataset.jsonl")

    space = "fmnist-mbv3"
    planned = {arch_key(a, space) for a in collection_architectures(space, 6, 0)}
    by_key = {arch_key(_arch(r), space): r for r in merged}
    assert set(by_key) == planned and len(merged) == 6
    for record in single:
        twin = by_key[arch_key(_arch(record), space)]
        assert (twin["accuracy"], twin["loss"], twin["macs"]) == (record["accuracy"], record["loss"], record["macs"])


def _arch(record: dict):
    from hwnas.arch import Architecture

    return Architecture.from_dict(record["arch"])
