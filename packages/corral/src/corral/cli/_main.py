"""Argument parsing and dispatch for the ``corral`` command."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence

from corral.cli._types import positive_float
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
        epilog="examples:\n"
        "  corral demo                  estimate pi on a throwaway local cluster\n"
        "  corral start -n 4            start the cluster 'default' with 4 engines\n"
        "  corral list                  show running clusters\n"
        "  corral bench                 measure the cluster's latency and throughput\n"
        "  corral drops                 count the messages its controller dropped\n"
        "  corral stop                  stop the cluster 'default'\n"
        "then, in Python: from corral.client import Client; rc = Client()\n\n"
        "`corral COMMAND --help` describes each command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "selfcheck",
        help="check that this machine can sign, send and run a request over ZeroMQ",
        description="Run a request through a real loopback ZeroMQ connection: serialize a function "
        "and a numpy array, sign, send, verify, run it, and check the reply.",
    )
    check.add_argument(
        "--size-mb",
        type=positive_float("the array size in MB"),
        default=80.0,
        metavar="MB",
        help="size of the array sent, in MB (default: 80)",
    )

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
    demo.add_argument(
        "--batches", type=_positive_int, default=32, metavar="N", help="number of batches (default: %(default)s)"
    )

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
        metavar="LAUNCHER",
        help="how engines are started: local (processes on this machine, the default), mpi, ssh, slurm, pbs, "
        "sge, lsf, htcondor, or any launcher in the corral.launchers entry-point group (see docs/launchers.md)",
    )
    start.add_argument(
        "-o",
        "--launcher-option",
        action="append",
        type=_commands_launcher_option,
        metavar="KEY=VALUE",
        help="an option for the engine launcher, repeatable (e.g. -o hosts=node1,node2; see docs/launchers.md)",
    )
    start.add_argument(
        "--ip",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address the controller listens on (default: %(default)s; see docs/security.md before "
        "using a network address)",
    )
    start.add_argument(
        "--timeout",
        type=positive_float("the timeout in seconds"),
        default=60.0,
        metavar="SECONDS",
        help="seconds to wait for the engines (default: %(default)s)",
    )
    start.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        metavar="LEVEL",
        help="log level of the controller and engines: DEBUG, INFO, WARNING or ERROR (default: %(default)s); "
        "logs go to ~/.corral/logs/CLUSTER_ID/",
    )
    from corral.cluster.app import add_security_arguments
    from corral.wire.signing import DEFAULT_SCHEME, SCHEMES

    start.add_argument(
        "--signature-scheme",
        default=DEFAULT_SCHEME,
        choices=SCHEMES,
        metavar="SCHEME",
        help=f"how messages are authenticated: {', '.join(SCHEMES)} (default: %(default)s; blake3-v1 for CPUs "
        "without AES instructions, hmac-sha256-v1 where FIPS algorithms are required)",
    )

    add_security_arguments(start)

    stop = sub.add_parser("stop", help="stop a cluster", description="Stop a cluster started with `corral start`.")
    add_cluster_id(stop)
    stop.add_argument("--all", action="store_true", help="stop every running cluster")
    stop.add_argument(
        "--timeout",
        type=positive_float("the timeout in seconds"),
        default=5.0,
        metavar="SECONDS",
        help="seconds between SIGTERM and SIGKILL (default: %(default)s)",
    )

    sub.add_parser(
        "list",
        help="list running clusters",
        description="List the clusters started on this machine (by `corral start` or by a running "
        "Cluster), with their controller, live engines and connection file.",
    )

    from corral.cli._bench import add_bench_arguments

    bench = sub.add_parser(
        "bench",
        help="measure a running cluster's latency and push throughput",
        description="Measure the round trip of engines running `pass` and the throughput of pushing a numpy "
        "array to one and to all engines of a running cluster; print the median and range over runs.",
    )
    add_cluster_id(bench)
    add_bench_arguments(bench)

    from corral.cli._drops import add_drops_arguments

    drops = sub.add_parser(
        "drops",
        help="count the messages a running cluster's controller dropped",
        description="Show how many messages the controller of a running cluster dropped on receipt (wrong "
        "key, tampered, replayed, malformed ...), by channel and reason. Dropped messages are never executed.",
    )
    add_cluster_id(drops)
    add_drops_arguments(drops)

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
    if args.command == "drops":
        from corral.cli._drops import cmd_drops

        return cmd_drops(args)
    if args.command == "engine":
        return _commands.cmd_engine(args, extra)
    if args.command == "controller":
        from corral.cluster.app import run_controller

        return run_controller(args)
    if args.command == "selfcheck":
        from corral.cli._selfcheck import selfcheck

        return selfcheck(size_mb=args.size_mb)
    parser.print_help(sys.stderr)
    return 2
