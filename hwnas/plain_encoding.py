"""Integer gene encoding of ``plain``-family architectures (elastic VGG-style CNN).

Gene order follows :class:`~hwnas.plain_arch.PlainArchitecture`: ``depth`` (one per stage, an index
into the space's ``depths``: depth = base depth + ``depths[gene]``), ``kernel`` (one per conv layer
the supernet holds, an index into ``kernel_sizes``), ``width`` (one multiplier index per stage),
``resolution``. A layer's kernel gene is out of use when the layer lies beyond its stage's depth
(zeroed by :meth:`~hwnas.encoding.GeneLayoutBase.canonicalize`).

Costs of a subnet (MACs, params, latency) are additive over parts whose shape the genes choose:
each active conv layer (its input and output width, its kernel, the resolution) and the head (last
width, resolution). Every layer of a stage has the stage's width, so a layer's input width is the
previous stage's width gene (a stage's first layer), its own stage's (the others) or the fixed
image channels (the very first layer). :meth:`PlainGeneLayout.additive_sum` adds such per-part
tables for a whole gene matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.encoding import GeneLayoutBase
from hwnas.plain_arch import ConvLayerSpec, PlainArchitecture, layer_positions, layer_spec, plain_space
from hwnas.space import PlainSpace


@dataclass(frozen=True)
class PlainArrays:
    """Decoded values of a population: one row per architecture."""

    depth: np.ndarray       # (n, stages) int
    kernel: np.ndarray      # (n, layers) int
    width: np.ndarray       # (n, stages) int, multiplier indices
    resolution: np.ndarray  # (n,) int
    active: np.ndarray      # (n, layers) bool: layer runs


class PlainGeneLayout(GeneLayoutBase):
    """Maps architectures of one ``plain`` space to integer genes and back."""

    family = "plain"

    def __init__(self, space: PlainSpace | str) -> None:
        self.space = space = plain_space(space)
        k, n = space.num_stages, space.num_layers
        self.num_stages, self.num_layers = k, n
        self.depth_genes = slice(0, k)
        self.kernel_genes = slice(k, k + n)
        self.width_genes = slice(k + n, 2 * k + n)
        self.resolution_gene = 2 * k + n
        self.num_genes = self.resolution_gene + 1
        # per stage: depth choice index -> depth
        self.depth_table = np.array([[b + d for d in space.depths] for b in space.base_depths], dtype=np.int64)
        self.kernel_values = np.asarray(space.kernel_sizes, dtype=np.int64)
        self.width_values = np.arange(len(space.width_mults), dtype=np.int64)
        self.resolution_values = np.asarray(space.resolutions, dtype=np.int64)
        self.cardinalities = np.array([len(space.depths)] * k + [len(space.kernel_sizes)] * n
                                      + [len(space.width_mults)] * k + [len(space.resolutions)], dtype=np.int64)
        self.positions = layer_positions(space)
        self.layer_stage = np.array([p.stage for p in self.positions], dtype=np.int64)
        self.layer_position = np.array([p.position for p in self.positions], dtype=np.int64)
        self._set_layer_widths()
        self._set_depth_controls()

    def _set_layer_widths(self) -> None:
        """Which width gene (offset within the width genes) gives each layer's input and output
        channels; the first layer's input is the image (``layer_in_fixed``: its index is always 0)."""
        self.layer_out_width = self.layer_stage.copy()
        first = self.layer_position == 0
        self.layer_in_width = np.where(first, np.maximum(self.layer_stage - 1, 0), self.layer_stage)
        self.layer_in_fixed = first & (self.layer_stage == 0)

    def _set_depth_controls(self) -> None:
        """A kernel gene is in use while its layer lies within its stage's depth."""
        controller = np.full(self.num_genes, -1, dtype=np.int64)
        active_when = np.ones((self.num_genes, int(self.cardinalities.max())), dtype=bool)
        n_depths = self.depth_table.shape[1]
        for p in self.positions:
            gene = self.kernel_genes.start + p.layer
            controller[gene] = self.depth_genes.start + p.stage
            active_when[gene, :n_depths] = p.position < self.depth_table[p.stage]
        self._set_controls(controller, active_when)

    # ----------------------------------------------------------------------------- conversions
    def encode(self, archs: Sequence[PlainArchitecture] | PlainArchitecture) -> np.ndarray:
        """Architectures -> genes ``(n, num_genes)`` (int8). Validates each architecture."""
        if isinstance(archs, PlainArchitecture):
            archs = [archs]
        s = self.space
        depth = [{int(v): i for i, v in enumerate(row)} for row in self.depth_table]
        kernel = {v: i for i, v in enumerate(s.kernel_sizes)}
        resolution = {v: i for i, v in enumerate(s.resolutions)}
        genes = np.empty((len(archs), self.num_genes), dtype=np.int8)
        for row, arch in enumerate(archs):
            arch.validate(s)
            genes[row, self.depth_genes] = [depth[i][d] for i, d in enumerate(arch.depth)]
            genes[row, self.kernel_genes] = [kernel[k] for k in arch.kernel]
            genes[row, self.width_genes] = arch.width
            genes[row, self.resolution_gene] = resolution[arch.resolution]
        return genes

    def depths(self, genes: np.ndarray) -> np.ndarray:
        """``(n, stages)`` depth of each stage (genes must be checked)."""
        return self.depth_table[np.arange(self.num_stages)[None, :], genes[:, self.depth_genes]]

    def active(self, genes: np.ndarray) -> np.ndarray:
        """``(n, layers)`` bool: the layer runs (genes must be checked)."""
        return self.layer_position[None, :] < self.depths(genes)[:, self.layer_stage]

    def values(self, genes: np.ndarray, validate: bool = True) -> PlainArrays:
        """Genes -> value arrays; ``validate=False`` skips :meth:`check` for genes just checked."""
        if validate:
            genes = self.check(genes)
        return PlainArrays(depth=self.depths(genes), kernel=self.kernel_values[genes[:, self.kernel_genes]],
                           width=self.width_values[genes[:, self.width_genes]],
                           resolution=self.resolution_values[genes[:, self.resolution_gene]],
                           active=self.active(genes))

    def decode(self, genes: np.ndarray) -> list[PlainArchitecture]:
        v = self.values(genes)
        return [PlainArchitecture(tuple(v.depth[i]), tuple(v.kernel[i]), tuple(v.width[i]), int(v.resolution[i]))
                for i in range(len(v.resolution))]

    def arch_columns(self) -> list[tuple[str, int, np.ndarray]]:
        """See :meth:`GeneLayoutBase.arch_columns` (depth: each stage's own choices)."""
        return [("depth", self.num_stages, self.depth_table), ("kernel", self.num_layers, self.kernel_values),
                ("width", self.num_stages, self.width_values), ("resolution", 1, self.resolution_values)]

    # ----------------------------------------------------------------------------- additive costs
    def part_indices(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        """The choice indices that pick each part's table entry (genes must be checked): per layer
        ``(n, layers)`` input width (0 for the first layer, whose input is the image), output width,
        kernel and active; ``last_width`` and ``resolution`` ``(n,)``."""
        w = genes[:, self.width_genes].astype(np.int64)
        return {"resolution": genes[:, self.resolution_gene].astype(np.int64),
                "layer_in": np.where(self.layer_in_fixed[None, :], 0, w[:, self.layer_in_width]),
                "layer_out": w[:, self.layer_out_width], "kernel": genes[:, self.kernel_genes].astype(np.int64),
                "active": self.active(genes), "last_width": w[:, -1]}

    def additive_sum(self, genes: np.ndarray, layers: np.ndarray, head: np.ndarray) -> np.ndarray:
        """Per row ``sum over active layers of layers[l, w_in, w_out, k, r] + head[w_last, r]`` (genes
        must be checked; the result has the tables' dtype). The last stage always runs a layer, so
        ``head`` is always reached."""
        i = self.part_indices(genes)
        r = i["resolution"]
        per_layer = layers[np.arange(self.num_layers)[None, :], i["layer_in"], i["layer_out"], i["kernel"], r[:, None]]
        return (per_layer * i["active"]).sum(axis=1) + head[i["last_width"], r]

    def part_tables(self, layer_fn: Callable[[ConvLayerSpec], Any],
                    head_fn: Callable[[int, int], Any]) -> tuple[np.ndarray, np.ndarray]:
        """The ``layers`` ``(layers, widths, widths, kernels, resolutions)`` and ``head`` ``(widths,
        resolutions)`` tables of :meth:`additive_sum` (object arrays), each entry the function's value
        for the part's shapes: ``layer_fn(spec)``, ``head_fn(features, final_size)``. Entries no subnet
        reaches hold None, so a latency table measures nothing twice: a layer's input width differing
        from its output width where both come from one gene, and the first layer's input index not 0."""
        s = self.space
        n_w, res = len(s.width_mults), s.resolutions
        layers = np.empty((self.num_layers, n_w, n_w, len(s.kernel_sizes), len(res)), dtype=object)
        head = np.empty((n_w, len(res)), dtype=object)
        for r, resolution in enumerate(res):
            for p in self.positions:
                for wi, wo in self._width_pairs(p.layer):
                    for k, kernel in enumerate(s.kernel_sizes):
                        spec = layer_spec(s, p, self.layer_in_channels(p.layer, wi), s.stage_width(p.stage, wo),
                                          kernel, resolution)
                        layers[p.layer, wi, wo, k, r] = layer_fn(spec)
            for w in range(n_w):
                head[w, r] = head_fn(s.stage_width(s.num_stages - 1, w), self.final_size(resolution))
        return layers, head

    def _width_pairs(self, layer: int) -> list[tuple[int, int]]:
        """The (input, output) width indices some subnet gives ``layer``."""
        n_w = len(self.space.width_mults)
        if self.layer_in_fixed[layer]:
            return [(0, wo) for wo in range(n_w)]
        if self.layer_in_width[layer] == self.layer_out_width[layer]:
            return [(w, w) for w in range(n_w)]
        return [(wi, wo) for wi in range(n_w) for wo in range(n_w)]

    def layer_in_channels(self, layer: int, index: int) -> int:
        """Channels entering ``layer`` when its input width gene holds ``index`` (the image's for the first)."""
        if self.layer_in_fixed[layer]:
            return self.space.in_channels
        return self.space.stage_width(int(self.layer_in_width[layer]), index)

    def final_size(self, resolution: int) -> int:
        """Spatial size entering global pooling at ``resolution`` (the last stage's)."""
        return self.space.stage_input_size(self.num_stages - 1, resolution)
