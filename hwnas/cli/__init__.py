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

# (command name, module under hwnas.cli, one-line summary for `hwnas --help`). Order is the order shown.
# The summaries live here, not in the modules, so `hwnas --help` imports no command module at all.
COMMANDS: list[tuple[str, str, str]] = [
    ("quickstart", "quickstart", "profile this CPU, search, export, measure (embedded default)"),
    ("train", "train", "train a once-for-all supernet"),
    ("profile", "profile", "measure a per-device latency lookup table"),
    ("collect", "collect", "measure subnet accuracies for predictor training"),
    ("fit-predictor", "fit_predictor", "fit the accuracy predictor (XGBoost)"),
    ("search", "search", "search Pareto-optimal subnets under latency budgets"),
    ("predict", "predict", "predict accuracy, latency, MACs and params of one architecture"),
    ("export", "export", "export searched models to ONNX, verify and measure them"),
    ("agent", "agent", "run or query the edge latency agent (needs only numpy, onnxruntime, PyYAML)"),
    ("spaces", "spaces", "list search-space presets"),
]
# import name -> what to pip install when a command's dependency is missing (e.g. on an edge board)
PIP_NAMES = {"torch": "torch==2.13.0", "sklearn": "scikit-learn", "yaml": "PyYAML", "onnxruntime": "onnxruntime"}


class MissingDependency(HwnasError):
    """A command needs a package this install lacks (an edge board installs only the agent's)."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; with ``only``, that command's real parser (imported now), else stubs for --help."""
    parser = argparse.ArgumentParser(
        prog="hwnas",
        description="Hardware-aware NAS: profile a device, search under a latency budget, export to ONNX.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'hwnas COMMAND --help' for a command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, summary in COMMANDS:
        if only is None:
            sub.add_parser(name, help=summary, add_help=False)
        elif name == only:
            _register(sub, name, module_name)
    return parser


def _register(sub: argparse._SubParsersAction, name: str, module_name: str) -> None:
    """Import one command and add its parser; a missing third-party package -> one-line MissingDependency."""
    try:
        importlib.import_module(f"hwnas.cli.{module_name}").register(sub)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if not missing or missing == "hwnas":
            raise
        raise MissingDependency(
            f"this command needs the Python package {missing!r}, which is not installed here; install it with "
            f"`pip install {PIP_NAMES.get(missing, missing)}`, or the full package with `pip install .` "
            "(an edge board needs only `hwnas agent`)") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the command asked for, so `hwnas agent serve` works without torch installed.
    first = next((a for a in argv if not a.startswith("-")), None)
    names = {name for name, _, _ in COMMANDS}
    try:
        parser = build_parser(only=first if first in names else None)
    except MissingDependency as exc:
        print(f"hwnas {first}: error: {exc}", file=sys.stderr)
        return exc.exit_code
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
