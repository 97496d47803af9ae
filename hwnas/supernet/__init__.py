"""Once-for-all supernet: elastic layers, the network, static subnets, checkpoints.

The network is imported on first use (PEP 562), so reading a checkpoint's metadata
(:mod:`hwnas.supernet.checkpoint`) does not load torch, so ``hwnas search`` starts without paying for a torch import.
"""

from typing import Any

__all__ = ["ElasticMobileNetV3"]


def __getattr__(name: str) -> Any:
    if name == "ElasticMobileNetV3":
        from hwnas.supernet.network import ElasticMobileNetV3

        return ElasticMobileNetV3
    raise AttributeError(f"module 'hwnas.supernet' has no attribute {name!r}")
