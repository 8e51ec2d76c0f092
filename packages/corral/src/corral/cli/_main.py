"""Argument parsing and dispatch for the ``corral`` command."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence

from corral.cli._version import __version__

__all__ = ["build_parser", "installed_distributions", "main"]


def installed_distributions() -> list[tuple[str, str]]:
    """Return ``(name, version)`` of every installed corral distribution, sorted by name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name == "corral" or name.startswith("corral-"):
            found[name] = dist.version
    return sorted(found.items())


def _version_text() -> str:
    from corral.wire import PROTOCOL_VERSION

    lines = [f"corral {__version__} (protocol {PROTOCOL_VERSION})"]
    lines += [f"  {name} {version}" for name, version in installed_distributions() if name != "corral"]
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, help="show every installed corral distribution and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(_version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``corral`` command."""
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Interactive parallel computing for Python: start, stop and inspect corral clusters.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "selfcheck",
        help="check that this machine can sign, send and run a request over ZeroMQ",
        description="Run a request through a real loopback ZeroMQ connection: serialize a function "
        "and a numpy array, sign, send, verify, run it, and check the reply.",
    )
    check.add_argument("--size-mb", type=float, default=80.0, help="size of the array sent (default: 80)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``corral`` command; return its exit status.

    Raises
    ------
    SystemExit
        For ``--help``, ``--version`` and invalid arguments (from argparse).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "selfcheck":
        from corral.cli._selfcheck import selfcheck

        if args.size_mb <= 0:
            parser.error("--size-mb must be positive, e.g. --size-mb 80")
        return selfcheck(size_mb=args.size_mb)
    parser.print_help(sys.stderr)
    return 2
