"""Architectures: one subnet of a search space as a validated, JSON-serialisable value object.

Layout follows once-for-all: ``kernel`` and ``expand`` hold one value per block *slot*
(``num_stages * max_depth``), ``depth`` one value per stage, and a slot beyond its stage's depth
is inactive (its values are kept but ignore by every consumer). A stage whose depth choices stop
below ``max_depth`` (ProxylessNAS's one-block last stage) has slots that are never active; OFA's
own lists end at its last real block, which ``set_active_subnet`` reaches first, so the trailing
never-active slots are ignored there too. hwnas's JSON form and OFA's dict
form (``ks``, ``e``, ``d`` and ``r`` or ``image_size``) are both accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from hwnas.errors import ArchitectureError
from hwnas.space import SearchSpace, get_space, require_family


@dataclass(frozen=True)
class Architecture:
    """A subnet: per-slot kernel and expand ratio, per-stage depth, input resolution."""

    kernel: tuple[int, ...]
    expand: tuple[int, ...]
    depth: tuple[int, ...]
    resolution: int

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kernel", tuple(int(k) for k in self.kernel))
            object.__setattr__(self, "expand", tuple(int(e) for e in self.expand))
            object.__setattr__(self, "depth", tuple(int(d) for d in self.depth))
            object.__setattr__(self, "resolution", int(self.resolution))
        except (TypeError, ValueError) as exc:
            raise ArchitectureError(f"architecture values must be integers: {exc}") from None

    # ----------------------------------------------------------------------------- validation
    def validate(self, space: SearchSpace | str) -> "Architecture":
        """Raise :class:`ArchitectureError` naming the first value outside ``space``; return self."""
        space = get_space(space)
        require_family(space, "mbconv", "an MBConv architecture (kernel/expand/depth)")
        slots = space.num_block_slots
        if len(self.kernel) != slots:
            raise ArchitectureError(
                f"kernel list has {len(self.kernel)} entries; space {space.name!r} has {slots} block "
                f"slots ({space.num_stages} stages x {space.max_depth})")
        if len(self.expand) != slots:
            raise ArchitectureError(
                f"expand list has {len(self.expand)} entries; space {space.name!r} has {slots} block slots")
        if len(self.depth) != space.num_stages:
            raise ArchitectureError(
                f"depth list has {len(self.depth)} entries; space {space.name!r} has {space.num_stages} stages")
        for i, k in enumerate(self.kernel):
            if k not in space.kernel_sizes:
                raise ArchitectureError(f"kernel[{i}] = {k} is not allowed; choose from {space.kernel_sizes}")
        for i, e in enumerate(self.expand):
            if e not in space.expand_ratios:
                raise ArchitectureError(f"expand[{i}] = {e} is not allowed; choose from {space.expand_ratios}")
        for i, d in enumerate(self.depth):
            if d not in space.stage_depths(i):
                raise ArchitectureError(f"depth[{i}] = {d} is not allowed; choose from {space.stage_depths(i)}")
        if self.resolution not in space.resolutions:
            raise ArchitectureError(
                f"resolution {self.resolution} is not allowed; choose from {space.resolutions}")
        return self

    # ----------------------------------------------------------------------------- structure
    def active_blocks(self) -> Iterator[tuple[int, int, int]]:
        """Yield ``(stage, index_in_stage, slot)`` for every active block, in execution order."""
        max_depth = len(self.kernel) // len(self.depth)
        for stage, d in enumerate(self.depth):
            for i in range(d):
                yield stage, i, stage * max_depth + i

    def canonical(self, space: SearchSpace | str) -> "Architecture":
        """Same network with inactive slots reset to the smallest choices (for de-duplication)."""
        space = get_space(space)
        kernel = [space.kernel_sizes[0]] * len(self.kernel)
        expand = [space.expand_ratios[0]] * len(self.expand)
        for _, _, slot in self.active_blocks():
            kernel[slot] = self.kernel[slot]
            expand[slot] = self.expand[slot]
        return Architecture(tuple(kernel), tuple(expand), self.depth, self.resolution)

    # ----------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        return {"kernel": list(self.kernel), "expand": list(self.expand),
                "depth": list(self.depth), "resolution": self.resolution}

    def to_ofa_dict(self) -> dict[str, Any]:
        """once-for-all's own form, as ``OFAMobileNetV3.set_active_subnet`` and its finder use."""
        return {"ks": list(self.kernel), "e": list(self.expand), "d": list(self.depth),
                "r": [self.resolution]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], space: SearchSpace | str | None = None) -> "Architecture":
        """Parse hwnas's form or OFA's (``ks``/``e``/``d``/``r`` or ``image_size``); validate if a space is given."""
        if not isinstance(data, dict):
            raise ArchitectureError(f"an architecture must be a JSON object, got {type(data).__name__}")
        if "kernel" in data:
            keys = {"kernel": "kernel", "expand": "expand", "depth": "depth", "resolution": "resolution"}
        elif "ks" in data:
            keys = {"kernel": "ks", "expand": "e", "depth": "d",
                    "resolution": "r" if "r" in data else "image_size"}
        else:
            raise ArchitectureError(
                "an architecture needs keys kernel/expand/depth/resolution (hwnas) or ks/e/d/r (once-for-all); "
                f"got {sorted(data)}")
        missing = [v for v in keys.values() if v not in data]
        if missing:
            raise ArchitectureError(f"architecture is missing {missing}")
        resolution = data[keys["resolution"]]
        if isinstance(resolution, (list, tuple)):
            if len(resolution) != 1:
                raise ArchitectureError(f"resolution must be one value, got {resolution}")
            resolution = resolution[0]
        kernel, expand, depth = (list(data[keys[k]]) for k in ("kernel", "expand", "depth"))
        if space is not None and "ks" in data:
            kernel, expand, depth = _from_ofa_blocks(get_space(space), kernel, expand, depth)
        arch = cls(tuple(kernel), tuple(expand), tuple(depth), resolution)
        return arch.validate(space) if space is not None else arch

    @classmethod
    def from_json(cls, text: str, space: SearchSpace | str | None = None) -> "Architecture":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"architecture is not valid JSON: {exc}") from None
        return cls.from_dict(data, space)

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | str | None = None) -> "Architecture":
        path = Path(path)
        if not path.is_file():
            raise ArchitectureError(f"architecture file {path} does not exist")
        return cls.from_json(path.read_text(), space)


def _from_ofa_blocks(space: SearchSpace, kernel: list, expand: list, depth: list) -> tuple[list, list, list]:
    """once-for-all's per-block lists -> per-slot lists, where a stage has fewer blocks than ``max_depth``.

    OFA lists one entry per *built* block (21 for ProxylessNAS, whose last stage is one block, where
    the slot grid has 24) and clamps a stage's depth to its block count; this does the same. Lists
    that already have one entry per slot pass through unchanged.
    """
    blocks = [max(space.stage_depths(i)) for i in range(space.num_stages)]
    if len(kernel) != sum(blocks) or len(expand) != sum(blocks) or len(kernel) == space.num_block_slots:
        return kernel, expand, depth
    kernel_slots, expand_slots, start = [], [], 0
    for n in blocks:
        pad = space.max_depth - n
        kernel_slots += kernel[start:start + n] + [min(space.kernel_sizes)] * pad
        expand_slots += expand[start:start + n] + [min(space.expand_ratios)] * pad
        start += n
    if len(depth) == space.num_stages:
        depth = [min(int(d), n) if len(space.stage_depths(i)) == 1 else d for i, (d, n) in enumerate(zip(depth, blocks))]
    return kernel_slots, expand_slots, depth


# --------------------------------------------------------------------------------- sampling
def sample_architecture(space: SearchSpace | str, rng: np.random.Generator | int | None = None,
                        resolution: int | None = None) -> Architecture:
    """Uniformly random subnet (every slot drawn, inactive ones included, as OFA does)."""
    space = get_space(space)
    rng = np.random.default_rng(rng)
    n = space.num_block_slots
    return Architecture(
        kernel=tuple(int(v) for v in rng.choice(space.kernel_sizes, n)),
        expand=tuple(int(v) for v in rng.choice(space.expand_ratios, n)),
        depth=_sample_depths(space, rng),
        resolution=int(rng.choice(space.resolutions)) if resolution is None else int(resolution),
    )


def _sample_depths(space: SearchSpace, rng: np.random.Generator) -> tuple[int, ...]:
    """One depth per stage; stages sharing the space's choices draw together (the stream OFA-style
    spaces have always used, so seeded samples of existing spaces stay the same)."""
    if all(st.depths is None for st in space.stages):
        return tuple(int(v) for v in rng.choice(space.depths, space.num_stages))
    return tuple(int(rng.choice(space.stage_depths(i))) for i in range(space.num_stages))


def largest_architecture(space: SearchSpace | str, resolution: int | None = None) -> Architecture:
    space = get_space(space)
    n = space.num_block_slots
    return Architecture((space.max_kernel,) * n, (max(space.expand_ratios),) * n,
                        tuple(max(space.stage_depths(i)) for i in range(space.num_stages)),
                        max(space.resolutions) if resolution is None else resolution)


def smallest_architecture(space: SearchSpace | str, resolution: int | None = None) -> Architecture:
    space = get_space(space)
    n = space.num_block_slots
    return Architecture((min(space.kernel_sizes),) * n, (min(space.expand_ratios),) * n,
                        tuple(min(space.stage_depths(i)) for i in range(space.num_stages)),
                        min(space.resolutions) if resolution is None else resolution)
