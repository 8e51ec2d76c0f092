"""``corral drops``: what a running cluster's controller dropped, by channel and reason."""

from __future__ import annotations

import argparse
import json
import sys

from corral.cli._types import positive_float

__all__ = ["add_drops_arguments", "cmd_drops"]


def add_drops_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``corral drops`` to ``parser``."""
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    parser.add_argument(
        "--timeout",
        type=positive_float("the timeout in seconds"),
        default=10.0,
        metavar="SECONDS",
        help="seconds to wait for the controller to answer (default: %(default)s)",
    )


def cmd_drops(args: argparse.Namespace) -> int:
    """``corral drops``: ask the hub for the controller's drop counts and print them."""
    from corral.client import Client, CorralError

    try:
        client = Client(cluster_id=args.cluster_id, timeout=args.timeout)
    except CorralError as err:
        print(f"corral drops: {err}", file=sys.stderr)
        return 1
    try:
        try:
            drops = client.drop_counts()["controller"]
        except CorralError as err:
            print(f"corral drops: {err}", file=sys.stderr)
            return 1
    finally:
        client.close()
    if args.json:
        print(json.dumps(drops, sort_keys=True))
        return 0
    rows = [(channel, reason, n) for channel, reasons in sorted(drops.items()) for reason, n in sorted(reasons.items())]
    if not rows:
        print(f"cluster {args.cluster_id!r}: the controller dropped no message")
        return 0
    print(f"cluster {args.cluster_id!r}: messages the controller dropped (none of them was executed)")
    width = max(len(channel) for channel, _, _ in rows)
    for channel, reason, n in rows:
        print(f"  {channel:<{width}}  {reason:<22} {n:>9,}")
    return 0
