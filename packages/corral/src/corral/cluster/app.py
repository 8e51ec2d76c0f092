"""The controller as a program: ``corral controller`` / ``python -m corral.cluster``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from corral.wire.paths import DEFAULT_CLUSTER_ID, validate_cluster_id

__all__ = ["add_controller_arguments", "controller_main", "run_controller"]


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--curve`` and ``--insecure`` (mutually exclusive), shared by ``corral start`` and
    ``corral controller``."""
    security = parser.add_mutually_exclusive_group()
    security.add_argument(
        "--curve",
        action="store_true",
        help="use CurveZMQ encryption even on loopback (it is on whenever --ip is not a loopback address)",
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --ip WITHOUT CurveZMQ encryption (only on a network you trust)",
    )


def add_controller_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the controller's options to ``parser``."""
    parser.add_argument(
        "--cluster-id",
        default=DEFAULT_CLUSTER_ID,
        metavar="ID",
        help="name of the cluster (default: %(default)s)",
    )
    parser.add_argument(
        "--ip", default="127.0.0.1", metavar="ADDRESS", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--connection-file",
        default=None,
        metavar="FILE",
        help="where to write the connection file (default: ~/.corral/security/corral-ID.json)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="bind the address, ports and key of the existing --connection-file instead of new ones",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="PORT",
        help="bind the channels on consecutive ports from this one (default: random free ports)",
    )
    parser.add_argument(
        "--heartbeat-period",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="seconds between heartbeats (default: %(default)s)",
    )
    parser.add_argument(
        "--heartbeat-misses",
        type=int,
        default=4,
        metavar="N",
        help="missed heartbeats before an engine is declared dead (default: %(default)s)",
    )
    parser.add_argument(
        "--scheme",
        default="leastload",
        choices=["leastload", "lru", "plainrandom", "twobin", "weighted"],
        help="how load-balanced tasks choose an engine (default: %(default)s)",
    )
    parser.add_argument(
        "--hwm",
        type=int,
        default=None,
        metavar="N",
        help="most load-balanced tasks outstanding per engine, 0 for no limit (default: adaptive, about 20 ms of "
        "work per engine, 2 to 64 tasks)",
    )
    parser.add_argument(
        "--broadcast-depth",
        type=int,
        default=0,
        metavar="N",
        help="levels of broadcast scheduler processes below the controller, each node with --broadcast-fanout "
        "children; 0 sends every broadcast from the controller itself (default: %(default)s)",
    )
    parser.add_argument(
        "--broadcast-fanout",
        type=int,
        default=2,
        metavar="N",
        help="children per broadcast scheduler node, at least 2 (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (default: %(default)s)",
    )
    parser.add_argument(
        "--store",
        default="memory",
        choices=["memory", "sqlite"],
        help="where the hub keeps results: in memory (bounded; lost with the process) or in an SQLite file "
        "a restarted controller reopens with --restore (default: %(default)s)",
    )
    parser.add_argument(
        "--db-file",
        default=None,
        metavar="FILE",
        help="the SQLite result store's file (default: $CORRAL_DIR/db/<cluster-id>.sqlite)",
    )
    parser.add_argument(
        "--restore",
        action="store_true",
        help="reopen the SQLite result store of a previous controller of this cluster (implies --store sqlite), "
        "and bind the address, ports and key of its connection file when that file still exists",
    )
    parser.add_argument(
        "--retention",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds the hub keeps a finished result; fetching it later raises ResultExpired (default: no limit)",
    )
    parser.add_argument(
        "--max-frame-size",
        type=float,
        default=None,
        metavar="MB",
        help="largest frame the data channels (requests, results, output) accept, in MiB (at least 1); a peer "
        "sending a larger one, even before it proves it holds the key, is disconnected before the frame is "
        "allocated, and corral's own clients and engines split larger buffers into frames of this size "
        "(default: 256; the other channels always refuse frames over 64 MiB)",
    )
    add_security_arguments(parser)


def run_controller(args: argparse.Namespace) -> int:
    """Run a controller until SIGTERM/SIGINT or a client's shutdown request; return the exit code."""
    from corral.cluster.controller import Controller, resolve_curve

    logging.basicConfig(level=args.log_level, format="%(asctime)s controller %(levelname)s %(name)s: %(message)s")
    try:
        validate_cluster_id(args.cluster_id)
    except ValueError as err:
        print(f"corral controller: {err}", file=sys.stderr)
        return 2
    if args.heartbeat_period <= 0 or args.heartbeat_misses < 1:
        print(
            "corral controller: --heartbeat-period must be positive and --heartbeat-misses at least 1", file=sys.stderr
        )
        return 2
    if args.hwm is not None and args.hwm < 0:
        print("corral controller: --hwm must be 0 (no limit) or positive", file=sys.stderr)
        return 2
    if args.broadcast_depth < 0 or args.broadcast_fanout < 2:
        print(
            "corral controller: --broadcast-depth must be 0 or more and --broadcast-fanout at least 2", file=sys.stderr
        )
        return 2
    from corral.wire import ConnectionFileError, read_connection_file
    from corral.wire.lifeline import watch_lifeline
    from corral.wire.protocol import CHANNELS

    if args.retention is not None and not args.retention > 0:
        print("corral controller: --retention must be a positive number of seconds", file=sys.stderr)
        return 2
    if args.max_frame_size is not None and not args.max_frame_size >= 1:
        print("corral controller: --max-frame-size must be a number of MiB, at least 1", file=sys.stderr)
        return 2
    if args.restore and not args.reuse:
        from corral.wire.paths import connection_file_path

        existing = args.connection_file or str(connection_file_path(args.cluster_id))
        if os.path.exists(existing):
            args.reuse, args.connection_file = True, existing
    settings: dict[str, Any] = {}
    if args.reuse:
        if not args.connection_file:
            print("corral controller: --reuse needs --connection-file FILE", file=sys.stderr)
            return 2
        try:
            info = read_connection_file(args.connection_file)
        except ConnectionFileError as err:
            print(f"corral controller: {err}", file=sys.stderr)
            return 2
        settings = {
            "ip": info["ip"],
            "ports": info["ports"],
            "key": info["key"],
            "signature_scheme": info["signature_scheme"],
        }
        if info.get("curve_public_key"):
            args.curve = True
    elif args.port is not None:
        if not 0 < args.port <= 65535 - len(CHANNELS):
            print(f"corral controller: --port must be between 1 and {65535 - len(CHANNELS)}", file=sys.stderr)
            return 2
        settings = {"ports": {c: args.port + i for i, c in enumerate(CHANNELS)}}
    try:
        resolve_curve(settings.get("ip", args.ip), True if args.curve else None, args.insecure)
    except ValueError as err:
        print(f"corral controller: {err}", file=sys.stderr)
        return 2
    controller = Controller(
        curve=True if args.curve else None,
        insecure=args.insecure,
        cluster_id=args.cluster_id,
        ip=settings.pop("ip", args.ip),
        connection_file=args.connection_file,
        heartbeat_period=args.heartbeat_period,
        heartbeat_misses=args.heartbeat_misses,
        task_scheme=args.scheme,
        store=args.store,
        db_file=args.db_file,
        restore=args.restore,
        retention=args.retention,
        max_frame_size=None if args.max_frame_size is None else round(args.max_frame_size * 2**20),
        broadcast_depth=args.broadcast_depth,
        broadcast_fanout=args.broadcast_fanout,
        **({} if args.hwm is None else {"task_hwm": args.hwm}),
        **settings,
    )
    watch_lifeline()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        controller.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        controller.start()
        expected = info.get("curve_public_key") if args.reuse else None
        if expected and expected != controller.info.get("curve_public_key"):
            raise OSError(
                f"{args.connection_file} has a curve_public_key that does not belong to its key; "
                "it was edited by hand or mixed from two files: write a fresh one"
            )
    except (OSError, ValueError, RuntimeError) as err:
        print(f"corral controller: {err}", file=sys.stderr)
        controller.close(remove_connection_file=False)
        return 1
    print(f"corral controller ready: {controller.connection_file}", flush=True)
    try:
        controller.serve_forever()
    finally:
        controller.close()
    return 0


def controller_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m corral.cluster``."""
    parser = argparse.ArgumentParser(
        prog="corral controller", description="Run a corral controller (hub and schedulers)."
    )
    add_controller_arguments(parser)
    return run_controller(parser.parse_args(argv))
