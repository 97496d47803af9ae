"""Once-for-all supernet: elastic layers, the network, static subnets, checkpoints."""

from hwnas.supernet.network import ElasticMobileNetV3

__all__ = ["ElasticMobileNetV3"]
