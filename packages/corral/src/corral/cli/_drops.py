"""``corral drops``: what a running cluster's controller dropped, by channel and reason."""

from __future__ import annotations

import argparse
import json
import sys

from corral.cli._types import add_timeout_argument, connect

__all__ = ["add_drops_arguments", "cmd_drops"]


def add_drops_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``corral drops`` to ``parser``."""
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    add_timeout_argument(parser)


def cmd_drops(args: argparse.Namespace) -> int:
    """``corral drops``: ask the hub for the controller's drop counts and print them."""
    from corral.client import CorralError

    client = connect("drops", args)
    if client is None:
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
