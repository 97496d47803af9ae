"""What each family of search spaces provides, looked up in one place by ``space.family``.

A family is a kind of network: its space description (:mod:`hwnas.space`), its architecture value
type and the exact cost of an architecture (this module), and its supernet
(:func:`hwnas.supernet.network.build_supernet`). Steps that work on any family (export, MACs)
ask here instead of branching on the family themselves. No torch here.
"""

from __future__ import annotations

from typing import Any, Callable

from hwnas.arch import Architecture
from hwnas.complexity import macs_and_params as mbconv_macs_and_params
from hwnas.resnet_arch import ResNetArchitecture, resnet_macs_and_params
from hwnas.space import AnySpace, get_space

AnyArchitecture = Architecture | ResNetArchitecture

ARCHITECTURES: dict[str, type] = {"mbconv": Architecture, "resnet": ResNetArchitecture}
COSTS: dict[str, Callable[[Any, Any], tuple[int, int]]] = {"mbconv": mbconv_macs_and_params,
                                                          "resnet": resnet_macs_and_params}


def architecture_from_dict(data: dict[str, Any], space: AnySpace | str) -> AnyArchitecture:
    """An architecture of ``space``'s family from hwnas's or once-for-all's JSON form, validated."""
    space = get_space(space)
    return ARCHITECTURES[space.family].from_dict(data, space)


def macs_and_params(space: AnySpace | str, arch: AnyArchitecture) -> tuple[int, int]:
    """Exact MACs and parameter count of ``arch`` (the convention of :mod:`hwnas.complexity`)."""
    space = get_space(space)
    return COSTS[space.family](space, arch)
