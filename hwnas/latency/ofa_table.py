"""once-for-all's published latency lookup tables (one YAML file per resolution) as an hwnas device table.

once-for-all (OFA) ships per-device tables such as its Note10 ones as ``<resolution>_lookup_table.yaml``:
a mapping from a layer's key to its measured statistics, e.g.::

    expanded_conv-input:56x56x24-output:28x28x40-expand:72-kernel:5-stride:2-idskip:0-se:1-hs:0:
      mean: 1.234

OFA's ``MBv3LatencyTable`` (``ofa.nas.efficiency_predictor``) and its tutorial's ``LatencyEstimator``
predict a subnet as the sum of the ``mean`` of its stem (``Conv``), of every block
(``expanded_conv``, the fixed first block included), and of the head (``Conv_1``, ``AvgPool2D``,
``Conv_2``, ``Logits``). That is exactly the additive model of an hwnas table without a correction,
so :func:`load_ofa_latency_table` turns the files into a :class:`~hwnas.latency.table.LatencyTable`
(stem, block and head entries in hwnas's keys, identity correction, no per-call overhead): it
predicts OFA's numbers, batched over gene matrices, and ``.save()`` writes it as an ordinary hwnas
table JSON. No torch here.

The keys hold channel counts, so a table fits one network width only: OFA's tutorial tables
(Note10) are for the width-1.2 supernet (stem 24 channels); the width-1.0 space needs tables with
16-channel stem keys.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

from hwnas.errors import ConfigError
from hwnas.latency.table import LatencyTable, TableEntry, enumerate_entries
from hwnas.plan import BlockSpec, conv_out, final_size, stem_output_size
from hwnas.space import SearchSpace, get_space

#: ``<resolution>_lookup_table.yaml``, the name OFA's ``Mbv3LatencyModel`` and tutorial download.
OFA_TABLE_NAME = re.compile(r"^(\d+)_lookup_table\.ya?ml$")


# ------------------------------------------------------------------------------------- OFA's keys
def _shape(*dims: int) -> str:
    return "x".join(str(d) for d in dims)


def ofa_block_key(spec: BlockSpec, input_size: int) -> str:
    """``MBv3LatencyTable.query("expanded_conv", ...)``'s key for one block."""
    out = conv_out(input_size, spec.stride)
    return (f"expanded_conv-input:{_shape(input_size, input_size, spec.in_channels)}"
            f"-output:{_shape(out, out, spec.out_channels)}-expand:{spec.mid_channels}-kernel:{spec.kernel}"
            f"-stride:{spec.stride}-idskip:{int(spec.residual)}-se:{int(spec.se_channels > 0)}"
            f"-hs:{int(spec.act == 'hswish')}")


def ofa_stem_keys(space: SearchSpace, resolution: int) -> list[str]:
    size = stem_output_size(space, resolution)
    return [f"Conv-input:{_shape(resolution, resolution, space.in_channels)}"
            f"-output:{_shape(size, size, space.stem_width)}"]


def ofa_head_keys(space: SearchSpace, resolution: int) -> list[str]:
    """The four layers OFA sums after the blocks, in its order."""
    f, last, final, feature = (final_size(space, resolution), space.stages[-1].width, space.final_expand_width,
                               space.feature_width)
    return [f"Conv_1-input:{_shape(f, f, last)}-output:{_shape(f, f, final)}",
            f"AvgPool2D-input:{_shape(f, f, final)}-output:{_shape(1, 1, final)}",
            f"Conv_2-input:{_shape(1, 1, final)}-output:{_shape(1, 1, feature)}",
            f"Logits-input:{_shape(1, 1, feature)}-output:{space.num_classes}"]


def ofa_keys(space: SearchSpace | str, entry: TableEntry, resolution: int) -> list[str]:
    """OFA's keys whose ``mean`` values sum to one hwnas table entry of a network at ``resolution``
    (none for the per-call overhead entry, which OFA's tables do not have)."""
    space = get_space(space)
    if entry.kind == "block" and entry.block is not None:
        return [ofa_block_key(entry.block, entry.input_shape[1])]
    if entry.kind == "stem":
        return ofa_stem_keys(space, resolution)
    if entry.kind == "head":
        return ofa_head_keys(space, resolution)
    return []


# ------------------------------------------------------------------------------------- files
def is_ofa_latency_source(path: str | Path) -> bool:
    """True for an OFA table file (``<r>_lookup_table.yaml``) or a folder holding at least one."""
    path = Path(path)
    if path.is_dir():
        return any(OFA_TABLE_NAME.match(p.name) for p in path.iterdir())
    return path.is_file() and OFA_TABLE_NAME.match(path.name) is not None


def ofa_table_files(source: str | Path) -> dict[int, Path]:
    """``{resolution: file}`` of an OFA table file or of every such file in a folder."""
    source = Path(source)
    files = sorted(source.iterdir()) if source.is_dir() else [source]
    found = {int(m.group(1)): p for p in files if p.is_file() and (m := OFA_TABLE_NAME.match(p.name))}
    if not found:
        what = "folder" if source.is_dir() else "file"
        raise ConfigError(f"{what} {source} holds no once-for-all latency table: expected files named "
                          "<resolution>_lookup_table.yaml (e.g. 224_lookup_table.yaml)")
    return dict(sorted(found.items()))


def read_ofa_lut(path: Path) -> dict[str, float]:
    """``{key: mean}`` of one OFA table file (only ``mean`` is used, as OFA does)."""
    import yaml

    try:
        with path.open("r", encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read once-for-all latency table {path} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); download it again") from None
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{path} is not a once-for-all latency table (a mapping of layer keys to "
                          f"{{mean: ms, ...}}); found {type(raw).__name__}")
    lut: dict[str, float] = {}
    for key, stats in raw.items():
        mean = stats.get("mean") if isinstance(stats, Mapping) else None
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean) or mean < 0:
            raise ConfigError(f"{path}: entry {key!r} has no finite, non-negative 'mean' (found {stats!r}); "
                              "a once-for-all table maps each layer to {mean: ms, ...}")
        lut[str(key)] = float(mean)
    return lut


# ------------------------------------------------------------------------------------- the table
def load_ofa_latency_table(source: str | Path, space: SearchSpace | str = "ofa-mbv3-w1.0",
                           device: str | None = None) -> LatencyTable:
    """OFA's tables at ``source`` (a folder of ``<r>_lookup_table.yaml`` or one such file) for ``space``.

    The result predicts what OFA's ``MBv3LatencyTable`` predicts on the same files, for the
    resolutions that have a file. ``device`` names it (default: the folder's name).
    """
    space = get_space(space)
    files = ofa_table_files(source)
    outside = [r for r in files if r not in space.resolutions]
    if outside:
        raise ConfigError(f"once-for-all latency tables for resolution(s) {outside} at {source}: space "
                          f"{space.name!r} has {space.resolutions[0]}..{space.resolutions[-1]} px; remove those files")
    entries: dict[str, dict[str, Any]] = {}
    for resolution, path in files.items():
        lut = read_ofa_lut(path)
        for entry in enumerate_entries(space, [resolution]):
            keys = ofa_keys(space, entry, resolution)
            if keys:
                entries[entry.key] = {"ms": _lookup_sum(lut, keys, path, space), "ofa_keys": keys}
    source_path = Path(source)
    name = device or (source_path.name if source_path.is_dir() else source_path.parent.name)
    meta = {"device": name, "source": "once-for-all latency lookup tables (sum of 'mean', ms)",
            "ofa_files": {str(r): str(p) for r, p in files.items()}}
    return LatencyTable(space, entries, meta, resolutions=list(files))


def _lookup_sum(lut: dict[str, float], keys: list[str], path: Path, space: SearchSpace) -> float:
    total = 0.0
    for key in keys:
        if key not in lut:
            raise ConfigError(f"once-for-all latency table {path} has no entry {key!r}, which space "
                              f"{space.name!r} needs{_width_hint(lut, space)}")
        total += lut[key]
    return total


def _width_hint(lut: dict[str, float], space: SearchSpace) -> str:
    """Name the stem width the file was measured for when it is not the space's."""
    widths = {m.group(1) for k in lut if (m := re.match(r"^Conv-input:\d+x\d+x\d+-output:\d+x\d+x(\d+)$", k))}
    if widths and str(space.stem_width) not in widths:
        return (f"; the file's stem has {'/'.join(sorted(widths))} output channels where this space has "
                f"{space.stem_width}: it was measured for another network width (OFA's Note10 tables are for "
                "the width-1.2 supernet, stem 24)")
    return "; the file does not cover this space's layers (a table for another network?)"
