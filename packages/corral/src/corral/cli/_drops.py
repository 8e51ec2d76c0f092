"""``corral drops``: what a running cluster's controller and engines dropped, by channel and reason."""

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
    """``corral drops``: ask the hub and the engines for their drop counts and print them.

    ``--json`` prints the controller's counts (``{channel: {reason: n}}``), plus the engines' under
    ``"engines"`` (``{engine_id: {channel: {reason: n}}}``) when any engine dropped a message.
    """
    from corral.client import CorralError

    client = connect("drops", args)
    if client is None:
        return 1
    try:
        try:
            counts = client.drop_counts()
        except CorralError as err:
            print(f"corral drops: {err}", file=sys.stderr)
            return 1
    finally:
        client.close()
    drops: dict[str, dict[str, int]] = counts["controller"]
    engines = {eid: found for eid, found in sorted(counts["engines"].items()) if found}
    if args.json:
        shown: dict[str, object] = dict(drops)
        if engines:
            shown["engines"] = {str(eid): found for eid, found in engines.items()}
        print(json.dumps(shown, sort_keys=True))
        return 0
    rows = [
        ("controller", channel, reason, n)
        for channel, reasons in sorted(drops.items())
        for reason, n in sorted(reasons.items())
    ]
    rows += [
        (f"engine {eid}", channel, reason, n)
        for eid, found in engines.items()
        for channel, reasons in sorted(found.items())
        for reason, n in sorted(reasons.items())
    ]
    if not rows:
        print(f"cluster {args.cluster_id!r}: the controller and the engines dropped no message")
        return 0
    print(f"cluster {args.cluster_id!r}: messages dropped on receipt (none of them was executed)")
    who = max(len(row[0]) for row in rows)
    width = max(len(row[1]) for row in rows)
    for where, channel, reason, n in rows:
        print(f"  {where:<{who}}  {channel:<{width}}  {reason:<22} {n:>9,}")
    return 0
