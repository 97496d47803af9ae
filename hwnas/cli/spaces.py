"""``hwnas spaces``: list the registered search-space presets (name, family, fingerprint, description)."""

from __future__ import annotations

import argparse
import json

from hwnas.space import get_space, list_spaces


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spaces", help="list search-space presets",
                       description="List the registered search-space presets.\n\nExample:\n  hwnas spaces --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print full definitions as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in list_spaces():
        space = get_space(name)
        if args.json:
            print(json.dumps(space.to_dict()))
        else:
            print(f"{name:18s} {space.family:7s} {space.fingerprint()}  {space.description}")
    return 0
