"""Integer gene encoding of architectures, for vectorised work on whole populations.

Search, latency prediction, FLOPs counting and accuracy predictors all work on numpy arrays of
shape ``(n, num_genes)`` holding *choice indices*, never on Python objects, so that scoring a
population of 100k candidates is a handful of array operations.

Gene order: ``kernel[slot] * S``, ``expand[slot] * S``, ``depth[stage] * K``, ``resolution``
(S block slots, K stages). A stage's depth gene indexes *its* depth choices
(:meth:`~hwnas.space.SearchSpace.stage_depths`), so its cardinality can differ between stages. :class:`GeneLayout` converts between genes, value arrays and
:class:`~hwnas.arch.Architecture` objects.

:class:`GeneLayoutBase` is what every family's layout offers the steps that work on any family
(search, evaluated-candidate files): checking, random rows, the resolution gene, and canonicalisation
described as data - each gene may have a *controller* gene (a depth) whose value decides whether the
gene is in use - so the compiled search engine zeroes unused genes of any family with one loop. Get
the layout of a space with :func:`hwnas.families.gene_layout` (the ``resnet`` family's is
:class:`hwnas.resnet_encoding.ResNetGeneLayout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hwnas.arch import Architecture
from hwnas.errors import ArchitectureError
from hwnas.space import SearchSpace, get_space, require_family


@dataclass(frozen=True)
class ArchArrays:
    """Decoded values of a population: one row per architecture."""

    kernel: np.ndarray      # (n, slots) int
    expand: np.ndarray      # (n, slots) int
    depth: np.ndarray       # (n, stages) int
    resolution: np.ndarray  # (n,) int
    active: np.ndarray      # (n, slots) bool: slot is within its stage's depth


class GeneLayoutBase:
    """The family-independent part of a gene layout; subclasses set the attributes in ``__init__``.

    ``controller[g]`` is the gene whose value decides whether gene ``g`` is in use (-1: always in use)
    and ``active_when[g, v]`` says whether it is when the controller holds ``v``; a gene out of use
    is zeroed by :meth:`canonicalize`, so equal networks have equal genes.
    """

    family: str
    space: Any
    num_genes: int
    cardinalities: np.ndarray   # (num_genes,) int64
    resolution_gene: int
    resolution_values: np.ndarray
    controller: np.ndarray      # (num_genes,) int64, -1 = always in use
    active_when: np.ndarray     # (num_genes, max cardinality) bool
    _upper_u8: np.ndarray

    def _set_controls(self, controller: np.ndarray, active_when: np.ndarray) -> None:
        self.controller = np.asarray(controller, dtype=np.int64)
        self.active_when = np.asarray(active_when, dtype=bool)
        self._controlled = np.flatnonzero(self.controller >= 0)
        self._upper_u8 = self.cardinalities.astype(np.uint8)

    def check(self, genes: np.ndarray) -> np.ndarray:
        """``genes`` as a 2-D array, after checking its width and that every index is in range."""
        genes = np.asarray(genes)
        if genes.ndim != 2:
            genes = np.atleast_2d(genes)
        if genes.shape[1] != self.num_genes:
            raise ArchitectureError(
                f"gene matrix has {genes.shape[1]} columns; space {self.space.name!r} needs {self.num_genes}")
        if genes.dtype == np.int8:  # the engine's dtype: negatives wrap to >= 128, so one comparison
            bad = (genes.view(np.uint8) >= self._upper_u8).any()
        else:
            bad = (genes < 0).any() or (genes >= self.cardinalities).any()
        if bad:
            raise ArchitectureError("gene matrix holds a choice index outside the space")
        return genes

    def in_use(self, genes: np.ndarray) -> np.ndarray:
        """``(n, num_genes)`` bool: the gene changes the network (genes must be checked)."""
        out = np.ones(genes.shape, dtype=bool)
        cols = self._controlled
        out[:, cols] = self.active_when[cols[None, :], genes[:, self.controller[cols]]]
        return out

    def canonicalize(self, genes: np.ndarray) -> np.ndarray:
        """Zero the genes not in use, so equal networks have equal genes (returns a copy)."""
        genes = self.check(genes).copy()
        cols = self._controlled
        genes[:, cols] *= self.active_when[cols[None, :], genes[:, self.controller[cols]]]
        return genes

    def random(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        rng = np.random.default_rng(rng)
        return (rng.random((n, self.num_genes)) * self.cardinalities).astype(np.int8)

    def encode(self, archs: Any) -> np.ndarray:  # pragma: no cover - every family overrides
        raise NotImplementedError

    def decode(self, genes: np.ndarray) -> list[Any]:  # pragma: no cover - every family overrides
        raise NotImplementedError

    def arch_columns(self) -> list[tuple[str, int, np.ndarray]]:  # pragma: no cover
        """``(field, genes, values)`` per architecture field in gene order: ``values[choice]`` (or
        ``values[column, choice]`` where columns differ) is the field's value, as the family's
        architecture ``to_dict`` holds it (what ``evaluated.npz`` stores to decode its genes)."""
        raise NotImplementedError


class GeneLayout(GeneLayoutBase):
    """Maps architectures of one ``mbconv`` space to integer genes and back."""

    family = "mbconv"

    def __init__(self, space: SearchSpace | str) -> None:
        self.space = get_space(space)
        require_family(self.space, "mbconv", "gene encoding (search, latency tables, accuracy predictors)")
        s = self.space
        self.num_slots = s.num_block_slots
        self.num_stages = s.num_stages
        self.kernel_values = np.asarray(s.kernel_sizes, dtype=np.int64)
        self.expand_values = np.asarray(s.expand_ratios, dtype=np.int64)
        self.depth_values = np.asarray(s.depths, dtype=np.int64)  # the space's default choices
        # per stage: depth choice index -> depth (padded with the stage's largest choice)
        stage_choices = [s.stage_depths(i) for i in range(s.num_stages)]
        width = max(len(c) for c in stage_choices)
        self.stage_depth_values = np.array([list(c) + [c[-1]] * (width - len(c)) for c in stage_choices],
                                           dtype=np.int64)
        self.resolution_values = np.asarray(s.resolutions, dtype=np.int64)
        self.kernel_genes = slice(0, self.num_slots)
        self.expand_genes = slice(self.num_slots, 2 * self.num_slots)
        self.depth_genes = slice(2 * self.num_slots, 2 * self.num_slots + self.num_stages)
        self.resolution_gene = 2 * self.num_slots + self.num_stages
        self.num_genes = self.resolution_gene + 1
        self.cardinalities = np.array(
            [len(s.kernel_sizes)] * self.num_slots + [len(s.expand_ratios)] * self.num_slots
            + [len(c) for c in stage_choices] + [len(s.resolutions)], dtype=np.int64)
        # slot -> (stage, position) for the depth mask
        self.slot_stage = np.repeat(np.arange(self.num_stages), s.max_depth)
        self.slot_position = np.tile(np.arange(s.max_depth), self.num_stages)
        # [stage, depth index, position]: is the slot active? One gather gives the whole mask
        self.active_by_depth = np.arange(s.max_depth)[None, None, :] < self.stage_depth_values[:, :, None]
        controller = np.full(self.num_genes, -1, dtype=np.int64)
        active_when = np.ones((self.num_genes, int(self.cardinalities.max())), dtype=bool)
        for slot in range(self.num_slots):
            stage, pos = self.slot_stage[slot], self.slot_position[slot]
            for gene in (slot, self.num_slots + slot):
                controller[gene] = self.depth_genes.start + stage
                active_when[gene, :width] = self.active_by_depth[stage, :, pos]
        self._set_controls(controller, active_when)

    # ----------------------------------------------------------------------------- conversions
    def encode(self, archs: Sequence[Architecture] | Architecture) -> np.ndarray:
        """Architectures -> genes ``(n, num_genes)`` (int8). Validates each architecture."""
        if isinstance(archs, Architecture):
            archs = [archs]
        genes = np.empty((len(archs), self.num_genes), dtype=np.int8)
        lookup = [
            {v: i for i, v in enumerate(self.space.kernel_sizes)},
            {v: i for i, v in enumerate(self.space.expand_ratios)},
            [{v: i for i, v in enumerate(self.space.stage_depths(st))} for st in range(self.num_stages)],
            {v: i for i, v in enumerate(self.space.resolutions)},
        ]
        for row, arch in enumerate(archs):
            arch.validate(self.space)
            genes[row, self.kernel_genes] = [lookup[0][k] for k in arch.kernel]
            genes[row, self.expand_genes] = [lookup[1][e] for e in arch.expand]
            genes[row, self.depth_genes] = [lookup[2][st][d] for st, d in enumerate(arch.depth)]
            genes[row, self.resolution_gene] = lookup[3][arch.resolution]
        return genes

    def active(self, genes: np.ndarray) -> np.ndarray:
        """``(n, slots)`` bool: slot lies within its stage's depth (genes must be checked)."""
        stages = np.arange(self.num_stages)[None, :]
        return self.active_by_depth[stages, genes[:, self.depth_genes]].reshape(len(genes), self.num_slots)

    def depths(self, genes: np.ndarray) -> np.ndarray:
        """``(n, stages)`` depth of each stage (genes must be checked)."""
        return self.stage_depth_values[np.arange(self.num_stages)[None, :], genes[:, self.depth_genes]]

    def values(self, genes: np.ndarray, validate: bool = True) -> ArchArrays:
        """Genes -> value arrays (kernel sizes, expand ratios, depths, resolutions, active mask).

        ``validate=False`` skips :meth:`check` for genes the caller has just checked.
        """
        if validate:
            genes = self.check(genes)
        return ArchArrays(
            kernel=self.kernel_values[genes[:, self.kernel_genes]],
            expand=self.expand_values[genes[:, self.expand_genes]],
            depth=self.depths(genes),
            resolution=self.resolution_values[genes[:, self.resolution_gene]],
            active=self.active(genes),
        )

    def decode(self, genes: np.ndarray) -> list[Architecture]:
        v = self.values(genes)
        return [Architecture(tuple(v.kernel[i]), tuple(v.expand[i]), tuple(v.depth[i]), int(v.resolution[i]))
                for i in range(len(v.resolution))]

    def arch_columns(self) -> list[tuple[str, int, np.ndarray]]:
        """See :meth:`GeneLayoutBase.arch_columns` (depth: each stage's own choices)."""
        return [("kernel", self.num_slots, self.kernel_values), ("expand", self.num_slots, self.expand_values),
                ("depth", self.num_stages, self.stage_depth_values), ("resolution", 1, self.resolution_values)]
