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

    from corral.cli._commands import add_cluster_id

    demo = sub.add_parser(
        "demo",
        help="estimate pi on a local cluster (one engine per core)",
        description="Start a local cluster with one engine per core, estimate pi by Monte Carlo on it while "
        "printing progress, then stop it.",
    )
    demo.add_argument(
        "-n", "--n", type=_positive_int, default=None, help="number of engines (default: one per CPU core)"
    )
    demo.add_argument("--batches", type=_positive_int, default=32, help="number of batches (default: %(default)s)")

    start = sub.add_parser(
        "start",
        help="start a cluster in the background",
        description="Start a controller and N engines in the background; return once the engines answer.",
    )
    start.add_argument(
        "-n", "--n", type=_positive_int, default=None, help="number of engines (default: one per CPU core)"
    )
    add_cluster_id(start)
    start.add_argument(
        "--engines",
        default="local",
        help="engine launcher: local, mpi, ssh, or any in the corral.launchers entry-point group (default: %(default)s)",
    )
    start.add_argument(
        "-o",
        "--launcher-option",
        action="append",
        type=_commands_launcher_option,
        metavar="KEY=VALUE",
        help="an option for the engine launcher, repeatable (e.g. -o hosts=node1,node2; see docs/launchers.md)",
    )
    start.add_argument("--ip", default="127.0.0.1", help="address the controller listens on (default: %(default)s)")
    start.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the engines (default: %(default)s)"
    )
    start.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    from corral.wire.signing import DEFAULT_SCHEME, SCHEMES

    start.add_argument(
        "--signature-scheme",
        default=DEFAULT_SCHEME,
        choices=SCHEMES,
        help="how messages are authenticated (default: %(default)s; blake3-v1 for CPUs without AES instructions)",
    )

    security = start.add_mutually_exclusive_group()
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

    stop = sub.add_parser("stop", help="stop a cluster", description="Stop a cluster started with `corral start`.")
    add_cluster_id(stop)
    stop.add_argument("--all", action="store_true", help="stop every running cluster")
    stop.add_argument("--timeout", type=float, default=5.0, help="seconds before SIGKILL (default: %(default)s)")

    sub.add_parser("list", help="list running clusters", description="List the clusters started on this machine.")

    from corral.cli._bench import add_bench_arguments

    bench = sub.add_parser(
        "bench",
        help="measure a running cluster's latency and push throughput",
        description="Measure the round trip of engines running `pass` and the throughput of pushing a numpy "
        "array to one and to all engines of a running cluster; print the median and range over runs.",
    )
    add_cluster_id(bench)
    add_bench_arguments(bench)

    from corral.cluster.app import add_controller_arguments

    ctrl = sub.add_parser(
        "controller",
        help="run a controller in the foreground",
        description="Run a corral controller (hub and schedulers) in the foreground until Ctrl-C.",
    )
    add_controller_arguments(ctrl)

    eng = sub.add_parser(
        "engine",
        help="run an engine in the foreground",
        description="Run one engine in the foreground; other options are passed to `python -m corral.engine` "
        "(see `python -m corral.engine --help`).",
    )
    add_cluster_id(eng)
    return parser


def _commands_launcher_option(value: str) -> tuple[str, str]:
    from corral.cli._commands import launcher_option

    return launcher_option(value)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of engines")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``corral`` command; return its exit status.

    Raises
    ------
    SystemExit
        For ``--help``, ``--version`` and invalid arguments (from argparse).
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "engine":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from corral.cli import _commands

    if args.command == "demo":
        from corral.cli._demo import demo

        return demo(args.n, batches=args.batches)
    if args.command == "start":
        return _commands.cmd_start(args)
    if args.command == "stop":
        return _commands.cmd_stop(args)
    if args.command == "list":
        return _commands.cmd_list(args)
    if args.command == "bench":
        from corral.cli._bench import cmd_bench

        return cmd_bench(args)
    if args.command == "engine":
        return _commands.cmd_engine(args, extra)
    if args.command == "controller":
        from corral.cluster.app import run_controller

        return run_controller(args)
    if args.command == "selfcheck":
        from corral.cli._selfcheck import selfcheck

        if args.size_mb <= 0:
            parser.error("--size-mb must be positive, e.g. --size-mb 80")
        return selfcheck(size_mb=args.size_mb)
    parser.print_help(sys.stderr)
    return 2
