"""Run under ``torchrun``: a few sandwich steps of the DDP trainer on the tiny data set.

Rank 0 writes the weights before and the all-reduced gradients after every step to ``<out>/ddp.pt`` for
tests/test_distributed.py to compare with one process on the same global batch.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_data import tiny_dataset  # noqa: E402

from hwnas.training import SupernetTrainer, TrainConfig  # noqa: E402

STEPS = 2


def config() -> TrainConfig:
    return TrainConfig(space="fmnist-mbv3", epochs=1, warmup_epochs=0, num_random=1, batch_size=16, max_steps_per_epoch=STEPS, calib_images=16,
                       threads=1, device="cpu")


def main(out: str) -> None:
    torch.set_num_threads(1)
    trainer = SupernetTrainer(config(), Path(out) / "run", dataset=tiny_dataset())
    order = torch.randperm(len(trainer.train_labels), generator=trainer._epoch_gen())
    trainer.net.train()
    grads, params = [], []
    for step in range(STEPS):
        params.append({n: p.detach().clone() for n, p in trainer.net.state_dict().items()})
        x, y = trainer._batch(order, step)
        trainer.train_step(x, y, elastic=True)
        grads.append({n: p.grad.clone() for n, p in trainer.net.named_parameters() if p.grad is not None})
        trainer.optimizer.step()
    if trainer.rank == 0:
        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save({"world": trainer.world, "grads": grads, "params": params}, Path(out) / "ddp.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
