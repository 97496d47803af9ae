"""Integer gene encoding of ``resnet``-family architectures (once-for-all's elastic ResNet).

Gene order follows :class:`~hwnas.resnet_arch.ResNetArchitecture`: ``depth`` (the stem's, then one
per stage), ``expand`` (one per block the supernet holds), ``width`` (multiplier indices: the first
two stem convs, the last stem conv, one per stage), ``resolution``. The stem's depth gene has two
choices (the smallest and largest depth: its middle conv runs or not, as once-for-all samples it); a
stage's depth gene indexes the space's ``depths``; an expand gene of a block beyond its stage's depth
is out of use (zeroed by :meth:`~hwnas.encoding.GeneLayoutBase.canonicalize`).

Costs of a subnet (MACs, params, latency) are additive over parts whose shape the genes choose:
the stem (resolution, two stem widths, stem depth), each active block (its input and output width,
its expand ratio, the resolution) and the head (last width, resolution). :meth:`ResNetGeneLayout.additive_sum`
adds such per-part tables for a whole gene matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from hwnas.encoding import GeneLayoutBase
from hwnas.plan import conv_out
from hwnas.resnet_arch import BottleneckSpec, ResNetArchitecture, block_positions, bottleneck_spec
from hwnas.space import ResNetSpace, get_space, require_family


@dataclass(frozen=True)
class ResNetArrays:
    """Decoded values of a population: one row per architecture."""

    depth: np.ndarray       # (n, 1 + stages) int
    expand: np.ndarray      # (n, blocks) float
    width: np.ndarray       # (n, 2 + stages) int, multiplier indices
    resolution: np.ndarray  # (n,) int
    active: np.ndarray      # (n, blocks) bool: block runs


class ResNetGeneLayout(GeneLayoutBase):
    """Maps architectures of one ``resnet`` space to integer genes and back."""

    family = "resnet"

    def __init__(self, space: ResNetSpace | str) -> None:
        self.space = space = get_space(space)
        require_family(space, "resnet", "ResNet gene encoding")
        k, b, w = space.num_stages, space.num_blocks, space.num_width_choices
        self.num_stages, self.num_blocks, self.num_widths = k, b, w
        self.depth_genes = slice(0, 1 + k)
        self.expand_genes = slice(1 + k, 1 + k + b)
        self.width_genes = slice(1 + k + b, 1 + k + b + w)
        self.resolution_gene = 1 + k + b + w
        self.num_genes = self.resolution_gene + 1
        depths = list(space.depths)
        stem = sorted({min(depths), max(depths)})
        pad = max(len(stem), len(depths))
        # per depth gene: choice index -> depth (rows padded with their largest choice)
        self.depth_table = np.array([row + [row[-1]] * (pad - len(row)) for row in [stem] + [depths] * k],
                                    dtype=np.int64)
        self.expand_values = np.asarray(space.expand_ratios, dtype=np.float64)
        self.width_values = np.arange(len(space.width_mults), dtype=np.int64)
        self.resolution_values = np.asarray(space.resolutions, dtype=np.int64)
        self.cardinalities = np.array([len(stem)] + [len(depths)] * k + [len(space.expand_ratios)] * b
                                      + [len(space.width_mults)] * w + [len(space.resolutions)], dtype=np.int64)
        self.positions = block_positions(space)
        self.block_stage = np.array([p.stage for p in self.positions], dtype=np.int64)
        # width gene (offset within the width genes) giving each block's input and output channels
        self.block_out_width = 2 + self.block_stage
        self.block_in_width = np.array([(1 if p.stage == 0 else 1 + p.stage) if p.position == 0 else 2 + p.stage
                                        for p in self.positions], dtype=np.int64)
        controller = np.full(self.num_genes, -1, dtype=np.int64)
        active_when = np.ones((self.num_genes, int(self.cardinalities.max())), dtype=bool)
        for p in self.positions:
            gene = self.expand_genes.start + p.block
            controller[gene] = 1 + p.stage
            active_when[gene, :len(depths)] = p.position < space.base_depths[p.stage] + np.asarray(depths)
        self._set_controls(controller, active_when)

    # ----------------------------------------------------------------------------- conversions
    def encode(self, archs: Sequence[ResNetArchitecture] | ResNetArchitecture) -> np.ndarray:
        """Architectures -> genes ``(n, num_genes)`` (int8). Validates each architecture."""
        if isinstance(archs, ResNetArchitecture):
            archs = [archs]
        s = self.space
        depth = [{int(v): i for i, v in enumerate(row[:n])} for row, n in zip(self.depth_table, self.cardinalities)]
        expand = {v: i for i, v in enumerate(s.expand_ratios)}
        resolution = {v: i for i, v in enumerate(s.resolutions)}
        genes = np.empty((len(archs), self.num_genes), dtype=np.int8)
        for row, arch in enumerate(archs):
            arch.validate(s)
            genes[row, self.depth_genes] = [depth[i][d] for i, d in enumerate(arch.depth)]
            genes[row, self.expand_genes] = [expand[e] for e in arch.expand]
            genes[row, self.width_genes] = arch.width
            genes[row, self.resolution_gene] = resolution[arch.resolution]
        return genes

    def depths(self, genes: np.ndarray) -> np.ndarray:
        """``(n, 1 + stages)`` depth of the stem and each stage (genes must be checked)."""
        return self.depth_table[np.arange(1 + self.num_stages)[None, :], genes[:, self.depth_genes]]

    def active(self, genes: np.ndarray) -> np.ndarray:
        """``(n, blocks)`` bool: the block runs (genes must be checked)."""
        return self.in_use(genes)[:, self.expand_genes]

    def values(self, genes: np.ndarray, validate: bool = True) -> ResNetArrays:
        """Genes -> value arrays; ``validate=False`` skips :meth:`check` for genes just checked."""
        if validate:
            genes = self.check(genes)
        return ResNetArrays(depth=self.depths(genes), expand=self.expand_values[genes[:, self.expand_genes]],
                            width=self.width_values[genes[:, self.width_genes]],
                            resolution=self.resolution_values[genes[:, self.resolution_gene]],
                            active=self.active(genes))

    def decode(self, genes: np.ndarray) -> list[ResNetArchitecture]:
        v = self.values(genes)
        return [ResNetArchitecture(tuple(v.depth[i]), tuple(v.expand[i]), tuple(v.width[i]), int(v.resolution[i]))
                for i in range(len(v.resolution))]

    def arch_columns(self) -> list[tuple[str, int, np.ndarray]]:
        """See :meth:`GeneLayoutBase.arch_columns`."""
        return [("depth", 1 + self.num_stages, self.depth_table), ("expand", self.num_blocks, self.expand_values),
                ("width", self.num_widths, self.width_values), ("resolution", 1, self.resolution_values)]

    # ----------------------------------------------------------------------------- additive costs
    def part_indices(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        """The choice indices that pick each part's table entry (genes must be checked): ``stem``
        ``(n, 4)`` = (resolution, w0, w1, stem depth), per block ``(n, blocks)`` input width, output
        width, expand and active, ``last_width`` and ``resolution`` ``(n,)``."""
        w = genes[:, self.width_genes].astype(np.int64)
        r = genes[:, self.resolution_gene].astype(np.int64)
        return {"resolution": r, "w0": w[:, 0], "w1": w[:, 1], "stem_depth": genes[:, 0].astype(np.int64),
                "block_in": w[:, self.block_in_width], "block_out": w[:, self.block_out_width],
                "expand": genes[:, self.expand_genes].astype(np.int64), "active": self.active(genes),
                "last_width": w[:, -1]}

    def additive_sum(self, genes: np.ndarray, stem: np.ndarray, blocks: np.ndarray, head: np.ndarray) -> np.ndarray:
        """Per row ``stem[r, w0, w1, stem depth] + sum over active blocks of blocks[b, w_in, w_out, e, r]
        + head[w_last, r]`` (genes must be checked; the result has the tables' dtype)."""
        i = self.part_indices(genes)
        r = i["resolution"]
        per_block = blocks[np.arange(self.num_blocks)[None, :], i["block_in"], i["block_out"], i["expand"], r[:, None]]
        return (stem[r, i["w0"], i["w1"], i["stem_depth"]] + (per_block * i["active"]).sum(axis=1)
                + head[i["last_width"], r])

    def part_tables(self, stem_fn: Callable[[int, int, bool, int], Any], block_fn: Callable[[BottleneckSpec], Any],
                    head_fn: Callable[[int, int], Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``stem``, ``blocks`` and ``head`` tables of :meth:`additive_sum` (object arrays), each
        entry the function's value for the part's shapes: ``stem_fn(stem_mid, stem_out, skip, resolution)``,
        ``block_fn(spec)``, ``head_fn(features, final_size)``. Entries no subnet reaches (a block's
        input width differing from its output width's where both come from one gene) hold None."""
        s = self.space
        n_w, n_e, res = len(s.width_mults), len(s.expand_ratios), s.resolutions
        stem = np.empty((len(res), n_w, n_w, self.cardinalities[0]), dtype=object)
        blocks = np.empty((self.num_blocks, n_w, n_w, n_e, len(res)), dtype=object)
        head = np.empty((n_w, len(res)), dtype=object)
        for r, resolution in enumerate(res):
            for w0 in range(n_w):
                for w1 in range(n_w):
                    mid, out = s.stem_widths(w0, w1)
                    for d, depth in enumerate(self.depth_table[0, :self.cardinalities[0]]):
                        stem[r, w0, w1, d] = stem_fn(mid, out, int(depth) != max(s.depths), resolution)
            for p in self.positions:
                for wi in range(n_w):
                    for wo in range(n_w):
                        if self.block_in_width[p.block] == self.block_out_width[p.block] and wi != wo:
                            continue
                        for e, expand in enumerate(s.expand_ratios):
                            blocks[p.block, wi, wo, e, r] = block_fn(bottleneck_spec(
                                s, p, self.width_channels(int(self.block_in_width[p.block]), wi),
                                s.stage_width(p.stage, wo), expand, resolution))
            final = self.final_size(resolution)
            for w in range(n_w):
                head[w, r] = head_fn(s.stage_width(s.num_stages - 1, w), final)
        return stem, blocks, head

    def width_channels(self, width_gene: int, index: int) -> int:
        """Channels of the layer width gene ``width_gene`` (offset within the width genes) sets to ``index``."""
        s = self.space
        if width_gene < 2:
            return s.stem_widths(index, index)[width_gene]
        return s.stage_width(width_gene - 2, index)

    def final_size(self, resolution: int) -> int:
        """Spatial size of the last block's output at ``resolution``."""
        last = self.positions[-1]
        return conv_out(bottleneck_spec(self.space, last, 1, 1, self.space.expand_ratios[0], resolution).input_size,
                        last.stride)
