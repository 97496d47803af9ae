"""The ``hwnas`` command line: one sub-command per user verb.

Each command lives in its own module under :mod:`hwnas.cli` and exposes ``register(subparsers)``
(adds its parser, with ``set_defaults(func=run)``) and ``run(args) -> int``. Modules are imported
lazily by name so ``hwnas --help`` stays fast and an edge board running only ``hwnas agent``
never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hwnas.errors import HwnasError

# (command name, module under hwnas.cli). Order is the order shown in --help.
COMMANDS: list[tuple[str, str]] = [
    ("quickstart", "quickstart"),
    ("train", "train"),
    ("profile", "profile"),
    ("collect", "collect"),
    ("fit-predictor", "fit_predictor"),
    ("search", "search"),
    ("predict", "predict"),
    ("export", "export"),
    ("agent", "agent"),
    ("spaces", "spaces"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwnas",
        description="Hardware-aware NAS: profile a device, search under a latency budget, export to ONNX.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'hwnas COMMAND --help' for a command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(f"hwnas.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("hwnas.cli."):
                continue  # command not built yet
            if only is None:
                continue  # optional dependency missing (e.g. torch on an edge board)
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the command asked for, so `hwnas agent serve` works without torch installed.
    first = next((a for a in argv if not a.startswith("-")), None)
    names = {name for name, _ in COMMANDS}
    parser = build_parser(only=first if first in names else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv else 2
    try:
        return int(args.func(args) or 0)
    except HwnasError as exc:
        print(f"hwnas {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"hwnas {args.command}: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
