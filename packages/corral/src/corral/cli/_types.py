"""What the ``corral`` subcommands share: argparse types, the controller timeout, connecting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corral.client import Client

__all__ = ["add_timeout_argument", "connect", "positive_float"]


def positive_float(what: str) -> Callable[[str], float]:
    """Return an argparse type accepting positive numbers; errors name ``what``."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number ({what})") from None
        if not number > 0:
            raise argparse.ArgumentTypeError(f"{what} must be positive, not {value}")
        return number

    return parse


def add_timeout_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--timeout SECONDS``: how long to wait for a running cluster's controller."""
    parser.add_argument(
        "--timeout",
        type=positive_float("the timeout in seconds"),
        default=10.0,
        metavar="SECONDS",
        help="seconds to wait for the controller to answer (default: %(default)s)",
    )


def connect(command: str, args: argparse.Namespace) -> Client | None:
    """A Client of the cluster ``args.cluster_id``; None (after saying why on stderr) if none answers."""
    from corral.client import Client, CorralError

    try:
        return Client(cluster_id=args.cluster_id, timeout=args.timeout)
    except CorralError as err:
        print(f"corral {command}: {err}", file=sys.stderr)
        return None
