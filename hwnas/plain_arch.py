"""Subnets of a ``plain``-family space (elastic VGG-style CNN): value object, plan, exact cost.

A subnet is ``depth`` (conv layers per stage), ``kernel`` (one kernel size per layer the supernet
holds, inactive layers included, as once-for-all keeps its per-block lists), ``width`` (one
width-multiplier *index* per stage) and the input resolution. :func:`plain_plan` is the one place
that turns (space, architecture) into layer shapes; the supernet, the static subnet, the latency
table and :func:`plain_macs_and_params` read it. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.errors import ArchitectureError
from hwnas.space import PlainSpace, get_space, require_family


@dataclass(frozen=True)
class PlainArchitecture:
    """A plain-CNN subnet: per-stage ``depth``, per-layer ``kernel``, per-stage ``width`` index, resolution."""

    depth: tuple[int, ...]
    kernel: tuple[int, ...]
    width: tuple[int, ...]
    resolution: int

    def __post_init__(self) -> None:
        try:
            for name in ("depth", "kernel", "width"):
                object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
            object.__setattr__(self, "resolution", int(self.resolution))
        except (TypeError, ValueError) as exc:
            raise ArchitectureError(f"plain-CNN architecture values must be integers: {exc}") from None

    def validate(self, space: PlainSpace | str) -> "PlainArchitecture":
        """Raise :class:`ArchitectureError` naming the first value outside ``space``; return self."""
        space = plain_space(space)
        for name, values, n in (("depth", self.depth, space.num_stages), ("kernel", self.kernel, space.num_layers),
                                ("width", self.width, space.num_stages)):
            if len(values) != n:
                raise ArchitectureError(f"{name} list has {len(values)} entries; space {space.name!r} needs {n}")
        for i, (d, base) in enumerate(zip(self.depth, space.base_depths)):
            allowed = tuple(base + e for e in space.depths)
            if d not in allowed:
                raise ArchitectureError(f"depth[{i}] = {d} is not allowed; choose from {allowed}")
        for i, k in enumerate(self.kernel):
            if k not in space.kernel_sizes:
                raise ArchitectureError(f"kernel[{i}] = {k} is not allowed; choose from {space.kernel_sizes}")
        for i, w in enumerate(self.width):
            if not 0 <= w < len(space.width_mults):
                raise ArchitectureError(f"width[{i}] = {w} is not a width-multiplier index; choose from "
                                        f"0..{len(space.width_mults) - 1} (multipliers {space.width_mults})")
        if self.resolution not in space.resolutions:
            raise ArchitectureError(f"resolution {self.resolution} is not allowed; choose from {space.resolutions}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"depth": list(self.depth), "kernel": list(self.kernel), "width": list(self.width),
                "resolution": self.resolution}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], space: PlainSpace | str | None = None) -> "PlainArchitecture":
        if not isinstance(data, dict):
            raise ArchitectureError(f"an architecture must be a JSON object, got {type(data).__name__}")
        missing = [n for n in ("depth", "kernel", "width", "resolution") if n not in data]
        if missing:
            raise ArchitectureError(f"a plain-CNN architecture needs depth, kernel, width and resolution; "
                                    f"missing {missing}")
        arch = cls(tuple(data["depth"]), tuple(data["kernel"]), tuple(data["width"]), data["resolution"])
        return arch.validate(space) if space is not None else arch


def plain_space(space: PlainSpace | str) -> PlainSpace:
    space = get_space(space)
    require_family(space, "plain", "a plain-CNN architecture")
    return space  # type: ignore[return-value]


# --------------------------------------------------------------------------------- sampling
def sample_plain_architecture(space: PlainSpace | str, rng: np.random.Generator | int | None = None,
                              resolution: int | None = None) -> PlainArchitecture:
    """A uniformly random subnet (every choice independent and uniform)."""
    space = plain_space(space)
    rng = np.random.default_rng(rng)
    return PlainArchitecture(
        depth=tuple(int(b + rng.choice(space.depths)) for b in space.base_depths),
        kernel=tuple(int(k) for k in rng.choice(space.kernel_sizes, space.num_layers)),
        width=tuple(int(w) for w in rng.integers(0, len(space.width_mults), space.num_stages)),
        resolution=int(rng.choice(space.resolutions)) if resolution is None else int(resolution))


def largest_plain_architecture(space: PlainSpace | str, resolution: int | None = None) -> PlainArchitecture:
    space = plain_space(space)
    return PlainArchitecture(space.stage_max_layers, (space.max_kernel,) * space.num_layers,
                             (len(space.width_mults) - 1,) * space.num_stages,
                             max(space.resolutions) if resolution is None else resolution)


def smallest_plain_architecture(space: PlainSpace | str, resolution: int | None = None) -> PlainArchitecture:
    space = plain_space(space)
    return PlainArchitecture(tuple(b + min(space.depths) for b in space.base_depths),
                             (min(space.kernel_sizes),) * space.num_layers, (0,) * space.num_stages,
                             min(space.resolutions) if resolution is None else resolution)


# --------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class LayerPosition:
    """Where one of the supernet's conv layers sits; what about it does not depend on the subnet."""

    layer: int  # index among the supernet's layers (the ``kernel`` list's position)
    stage: int
    position: int  # within the stage; the layer runs when ``position < depth[stage]``
    pool: bool  # 2x2 max pooling runs before it (the first layer of every stage but the first)


@dataclass(frozen=True)
class ConvLayerSpec:
    """One conv layer as it runs: [2x2 max pool] -> k x k conv (stride 1, same padding) -> BN -> [+ input] -> ReLU."""

    in_channels: int
    out_channels: int
    kernel: int
    pool: bool
    input_size: int  # spatial size entering the layer (before its pooling)
    layer: int  # index among the supernet's layers
    residual: bool = False  # relu(x + BN(conv(x))): an identity skip (a residual space, not a stage's first layer)

    @property
    def output_size(self) -> int:
        return self.input_size // 2 if self.pool else self.input_size


@dataclass(frozen=True)
class PlainPlan:
    """The layers a plain-CNN subnet runs, and the head's input."""

    layers: tuple[ConvLayerSpec, ...]
    features: int  # channels entering the head
    final_size: int  # spatial size entering the head


def layer_positions(space: PlainSpace | str) -> tuple[LayerPosition, ...]:
    """Every conv layer the supernet holds, in order (the same for every subnet)."""
    space = plain_space(space)
    out = []
    for stage, n in enumerate(space.stage_max_layers):
        for i in range(n):
            out.append(LayerPosition(len(out), stage, i, pool=stage > 0 and i == 0))
    return tuple(out)


def layer_spec(space: PlainSpace, where: LayerPosition, in_channels: int, out_channels: int, kernel: int,
               resolution: int) -> ConvLayerSpec:
    """The layer at ``where`` with these widths and kernel, at input ``resolution``."""
    size = space.stage_input_size(where.stage - 1 if where.pool else where.stage, resolution)
    return ConvLayerSpec(in_channels, out_channels, kernel, where.pool, size, where.layer,
                         residual=space.residual and where.position > 0)


def layer_input_width(space: PlainSpace, where: LayerPosition, width: tuple[int, ...]) -> int:
    """Channels entering the layer at ``where`` for per-stage width indices ``width``."""
    if where.position > 0:
        return space.stage_width(where.stage, width[where.stage])
    return space.in_channels if where.stage == 0 else space.stage_width(where.stage - 1, width[where.stage - 1])


def plain_plan(space: PlainSpace | str, arch: PlainArchitecture) -> PlainPlan:
    """Every layer ``arch`` runs, in order (validates ``arch``)."""
    space = plain_space(space)
    arch.validate(space)
    layers = [layer_spec(space, p, layer_input_width(space, p, arch.width), space.stage_width(p.stage, arch.width[p.stage]),
                         arch.kernel[p.layer], arch.resolution)
              for p in layer_positions(space) if p.position < arch.depth[p.stage]]
    return PlainPlan(tuple(layers), layers[-1].out_channels, layers[-1].output_size)


# --------------------------------------------------------------------------------- cost
def conv_layer_cost(spec: ConvLayerSpec) -> tuple[int, int]:
    """(MACs, params) of one layer: bias-free conv and BN (weight and bias counted); pooling is free."""
    k2 = spec.kernel * spec.kernel
    return (spec.output_size ** 2 * spec.in_channels * spec.out_channels * k2,
            spec.in_channels * spec.out_channels * k2 + 2 * spec.out_channels)


def plain_head_cost(space: PlainSpace, features: int, size: int) -> tuple[int, int]:
    """(MACs, params) of the head on ``features`` channels of a ``size`` x ``size`` map: its linear layers
    (the hidden one, if the space has one, and the classifier); pooling and flattening are free."""
    inputs, hidden, classes = space.head_inputs(features, size), space.head_hidden, space.num_classes
    if not hidden:
        return inputs * classes, inputs * classes + classes
    return inputs * hidden + hidden * classes, inputs * hidden + hidden + hidden * classes + classes


def plain_macs_and_params(space: PlainSpace | str, arch: PlainArchitecture) -> tuple[int, int]:
    """Exact MACs (convs and classifier) and parameters (BN affine included), as :mod:`hwnas.complexity`."""
    space = plain_space(space)
    plan = plain_plan(space, arch)
    parts = [*(conv_layer_cost(layer) for layer in plan.layers), plain_head_cost(space, plan.features, plan.final_size)]
    return sum(m for m, _ in parts), sum(p for _, p in parts)
