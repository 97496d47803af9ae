"""What each family of search spaces provides, looked up in one place by ``space.family``.

A family is a kind of network: its space description (:mod:`hwnas.space`), its architecture value
type, the exact cost of an architecture, its gene layout and vectorised cost counter (this module),
and its supernet (:func:`hwnas.supernet.network.build_supernet`). Steps that work on any family
(export, MACs, search) ask here instead of branching on the family themselves. No torch here.
"""

from __future__ import annotations

from typing import Any, Callable

from hwnas.arch import Architecture, largest_architecture as mbconv_largest, sample_architecture as mbconv_sample
from hwnas.arch import smallest_architecture as mbconv_smallest
from hwnas.complexity import ComplexityCounter
from hwnas.complexity import macs_and_params as mbconv_macs_and_params
from hwnas.encoding import GeneLayout, GeneLayoutBase
from hwnas.plain_arch import (PlainArchitecture, largest_plain_architecture, plain_macs_and_params,
                              sample_plain_architecture, smallest_plain_architecture)
from hwnas.plain_complexity import PlainComplexityCounter
from hwnas.plain_encoding import PlainGeneLayout
from hwnas.resnet_arch import (ResNetArchitecture, largest_resnet_architecture, resnet_macs_and_params,
                               sample_resnet_architecture, smallest_resnet_architecture)
from hwnas.resnet_complexity import ResNetComplexityCounter
from hwnas.resnet_encoding import ResNetGeneLayout
from hwnas.space import AnySpace, get_space

AnyArchitecture = Architecture | ResNetArchitecture | PlainArchitecture
AnyCounter = ComplexityCounter | ResNetComplexityCounter | PlainComplexityCounter

ARCHITECTURES: dict[str, type] = {"mbconv": Architecture, "resnet": ResNetArchitecture, "plain": PlainArchitecture}
COSTS: dict[str, Callable[[Any, Any], tuple[int, int]]] = {"mbconv": mbconv_macs_and_params,
                                                          "resnet": resnet_macs_and_params,
                                                          "plain": plain_macs_and_params}
SAMPLERS: dict[str, Callable[..., Any]] = {"mbconv": mbconv_sample, "resnet": sample_resnet_architecture,
                                           "plain": sample_plain_architecture}
LARGEST: dict[str, Callable[..., Any]] = {"mbconv": mbconv_largest, "resnet": largest_resnet_architecture,
                                          "plain": largest_plain_architecture}
SMALLEST: dict[str, Callable[..., Any]] = {"mbconv": mbconv_smallest, "resnet": smallest_resnet_architecture,
                                           "plain": smallest_plain_architecture}
LAYOUTS: dict[str, type] = {"mbconv": GeneLayout, "resnet": ResNetGeneLayout, "plain": PlainGeneLayout}
COUNTERS: dict[str, type] = {"mbconv": ComplexityCounter, "resnet": ResNetComplexityCounter,
                             "plain": PlainComplexityCounter}


def architecture_from_dict(data: dict[str, Any], space: AnySpace | str) -> AnyArchitecture:
    """An architecture of ``space``'s family from hwnas's or once-for-all's JSON form, validated."""
    space = get_space(space)
    return ARCHITECTURES[space.family].from_dict(data, space)


def macs_and_params(space: AnySpace | str, arch: AnyArchitecture) -> tuple[int, int]:
    """Exact MACs and parameter count of ``arch`` (the convention of :mod:`hwnas.complexity`)."""
    space = get_space(space)
    return COSTS[space.family](space, arch)


def gene_layout(space: AnySpace | str) -> GeneLayoutBase:
    """The gene layout of ``space``'s family (:class:`~hwnas.encoding.GeneLayoutBase` is what they share)."""
    space = get_space(space)
    return LAYOUTS[space.family](space)


def complexity_counter(space: AnySpace | str) -> AnyCounter:
    """Vectorised exact MACs / params of gene matrices of ``space`` (``macs(genes)``, ``params(genes)``)."""
    space = get_space(space)
    return COUNTERS[space.family](space)


def sample_architecture(space: AnySpace | str, rng: Any = None, resolution: int | None = None) -> AnyArchitecture:
    """A uniformly random subnet of ``space`` (its family's sampler; seeded streams as before)."""
    space = get_space(space)
    return SAMPLERS[space.family](space, rng, resolution=resolution)


def largest_architecture(space: AnySpace | str, resolution: int | None = None) -> AnyArchitecture:
    """The largest subnet of ``space`` (at ``resolution``, default its largest)."""
    space = get_space(space)
    return LARGEST[space.family](space, resolution)


def smallest_architecture(space: AnySpace | str, resolution: int | None = None) -> AnyArchitecture:
    """The smallest subnet of ``space`` (at ``resolution``, default its smallest)."""
    space = get_space(space)
    return SMALLEST[space.family](space, resolution)
