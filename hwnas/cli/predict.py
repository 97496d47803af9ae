"""``hwnas predict``: predicted accuracy, per-device latency, MACs and params of one architecture."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

EXAMPLES = """\
Examples:
  hwnas predict --arch my_arch.json
  hwnas predict --arch my_arch.json --space fmnist-mbv3 --device cpu-1thread --device cpu-all --json
  hwnas predict --arch runs/search-cpu/front.json --index 3   # in the run's space (its config.json)
  hwnas predict --arch ofa_net.json --supernet checkpoints/fmnist-mbv3.safetensors \\
      --predictor predictors/fmnist-mbv3/accuracy_xgb.json
  hwnas predict --arch ofa_net.json --space ofa-mbv3-w1.2 --predictor acc_predictor.pth \\
      --device note10_lookup_tables

The architecture file is hwnas's form {"kernel": [...], "expand": [...], "depth": [...],
"resolution": R}, once-for-all's {"ks", "e", "d", "r"} ({"d", "e", "w", "r"} for ofa-resnet50, or
hwnas's {"depth", "expand", "width", "resolution"}), or a search's front.json / picks.json
(choose the record with --index).
Without --device, every table under latency_tables/*/<space>.json is used.
Without an accuracy predictor (none given, none at the default path) latency, MACs and params are
still printed, with what an accuracy prediction would need.
--json prints the record in front.json's shape (hwnas.search.front.FrontRecord).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict accuracy, latency, MACs and params of one architecture",
                       description="Predict one architecture's accuracy (predictor), latency on each device "
                                   "(latency tables), MACs and parameters (exact).\n\n" + EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", type=Path, required=True, help="architecture JSON file (hwnas or OFA form)")
    p.add_argument("--index", type=int, default=None,
                   help="record to use when --arch holds a list (front.json, picks.json)")
    p.add_argument("--supernet", type=Path, default=None, help="supernet checkpoint naming the space")
    p.add_argument("--space", default=None, help="search space name (instead of --supernet)")
    p.add_argument("--predictor", type=Path, default=None,
                   help="accuracy predictor: an hwnas one or once-for-all's acc_predictor.pth "
                        "(default predictors/<space>/accuracy_xgb.json if it exists)")
    p.add_argument("--device", action="append", default=None, metavar="D",
                   help="device profile name/.yaml, latency table .json or a folder of once-for-all's "
                        "<r>_lookup_table.yaml; repeatable "
                        "(default: every table found for the space)")
    p.add_argument("--json", action="store_true", help="print one JSON record")
    p.set_defaults(func=run)


def discover_devices(space) -> list[str]:
    from hwnas.paths import TABLES_DIR

    return [str(p) for p in sorted(TABLES_DIR.glob(f"*/{space.name}.json"))]


def predict_record(arch, space, predictor, sources: Sequence[Any]) -> Any:
    """One architecture as the :class:`~hwnas.search.front.FrontRecord` a search would write for it
    (``predictor`` None: accuracy None)."""
    from hwnas.families import complexity_counter, gene_layout
    from hwnas.search.front import FrontRecord

    genes = gene_layout(space).encode(arch)
    counter = complexity_counter(space)
    return FrontRecord(arch=arch.to_dict(), accuracy=None if predictor is None else predictor.predict(genes)[0],
                       latency_ms={s.device: s.table.predict_genes(genes)[0] for s in sources},
                       macs=counter.macs(genes)[0], params=counter.params(genes)[0])


def run_space(arch_file: Path) -> str | None:
    """The space of the search run an architecture file belongs to (its folder's config.json), if any:
    a run's front.json is read in its own space, not the default one."""
    config = arch_file.parent / "config.json"
    try:
        return json.loads(config.read_text()).get("space") if config.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None


def run(args: argparse.Namespace) -> int:
    from hwnas.errors import ArchitectureError
    from hwnas.search import runner

    chosen = args.space or (None if args.supernet is not None else run_space(args.arch))
    space, _ = runner.resolve_space(args.supernet, chosen)
    from hwnas.search.front import load_arch_file

    try:
        arch = load_arch_file(args.arch, space, args.index)
    except ArchitectureError as exc:
        if chosen is None and args.supernet is None:  # the default space was guessed
            raise ArchitectureError(f"{exc} (read in the default space {space.name}; pass --space or --supernet "
                                    "for the architecture's own space)") from None
        raise
    specs = args.device if args.device else discover_devices(space)
    sources = runner.resolve_latency_sources(specs, space)
    default = runner.default_predictor_path(space)
    if args.predictor is not None or default.is_file():
        predictor = runner.load_accuracy_predictor(args.predictor or default, space)
    else:
        predictor = None
    record = predict_record(arch, space, predictor, sources)
    if args.json:
        print(json.dumps(record.to_dict()))
        return 0
    print(f"space       {space.name}")
    print(f"resolution  {arch.resolution}   depth {'-'.join(map(str, arch.depth))}")
    if record.accuracy is None:
        print(f"accuracy    not predicted: no accuracy predictor at {default}; pass --predictor PATH (fit one "
              f"with `hwnas fit-predictor`, or once-for-all's acc_predictor.pth for its spaces)")
    else:
        print(f"accuracy    {100 * record.accuracy:.2f} % (predicted)")
    for device, ms in record.latency_ms.items():
        print(f"latency     {ms:.3f} ms on {device} (predicted)")
    if not record.latency_ms:
        print(f"latency     no table for space {space.name} under {runner.TABLES_DIR}/; "
              f"run `hwnas profile` or pass --device")
    print(f"MACs        {record.macs / 1e6:.2f} M")
    print(f"params      {record.params / 1e6:.3f} M")
    return 0
