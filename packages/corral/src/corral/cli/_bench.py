"""``corral bench``: measure a running cluster's command latency and push throughput."""

from __future__ import annotations

import argparse
import sys

from corral.cli._types import add_timeout_argument, connect, positive_float

__all__ = ["add_bench_arguments", "cmd_bench"]


def _targets(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of engine ids, e.g. 0,1") from None
    if not ids:
        raise argparse.ArgumentTypeError("give at least one engine id, e.g. --targets 0 or --targets 0,1")
    return ids


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"need at least 1 run, not {value}")
    return value


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``corral bench`` to ``parser``."""
    parser.add_argument(
        "--runs", type=_positive_int, default=10, metavar="N", help="timed runs per measurement (default: %(default)s)"
    )
    parser.add_argument(
        "--size-mb",
        type=positive_float("the array size in MB"),
        default=10.0,
        metavar="MB",
        help="size of the pushed numpy array in MB; every engine holds a copy (default: %(default)s)",
    )
    parser.add_argument(
        "--targets",
        type=_targets,
        default=None,
        metavar="IDS",
        help="comma-separated engine ids to measure, e.g. 0,1 (default: every engine)",
    )
    add_timeout_argument(parser)


def cmd_bench(args: argparse.Namespace) -> int:
    """``corral bench``: connect to the cluster, run ``Client.benchmark()``, print the table."""
    from corral.client import CorralError

    client = connect("bench", args)
    if client is None:
        return 1
    try:
        if not client.ids:
            print(
                f"corral bench: cluster {args.cluster_id!r} has no engines; start some "
                f"(`corral engine --cluster-id {args.cluster_id}`) or start a cluster with engines "
                "(`corral start -n 2`)",
                file=sys.stderr,
            )
            return 1
        targets = "all" if args.targets is None else args.targets
        try:
            result = client.benchmark(runs=args.runs, size_mb=args.size_mb, targets=targets)
        except IndexError as err:
            print(f"corral bench: {err}; `--targets` takes ids from {client.ids}", file=sys.stderr)
            return 2
        except (CorralError, ImportError) as err:
            print(f"corral bench: {err}", file=sys.stderr)
            return 1
        print(f"cluster {args.cluster_id!r}:")
        print(result)
        return 0
    finally:
        client.close()
