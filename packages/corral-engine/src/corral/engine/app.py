"""The engine program: ``python -m corral.engine --connection-file FILE``.

By default the program is a :class:`~corral.engine.supervisor.Supervisor` that runs the engine as
a child process and reports its exit to the hub; ``--no-supervisor`` runs the engine in this
process. A launcher's lifeline (``CORRAL_LIFELINE_FD``, :mod:`corral.wire.lifeline`) is
honoured: when the launcher dies, the program stops as on SIGTERM. Either way the engine's namespace is a fresh module installed as ``__main__``, requests
run in the main thread (so ``signal_request`` SIGINT interrupts them), and SIGTERM stops the
engine cleanly.

Exit codes: 0 when the engine stopped as asked (shutdown request, SIGTERM, controller gone);
1 when it could not start (unreadable connection file, registration refused or unanswered);
2 for bad arguments; the engine's own code (or 128 + signal) from the supervisor.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import uuid as _uuid
from collections.abc import Sequence
from typing import Any

from corral.engine._version import __version__
from corral.engine.errors import RegistrationError
from corral.engine.lifeline import SUPERVISOR_ID_FD_ENV, SUPERVISOR_PID_ENV, die_with_parent
from corral.engine.supervisor import Supervisor
from corral.wire import ConnectionFileError, read_connection_file
from corral.wire.lifeline import watch_lifeline

__all__ = ["build_parser", "main"]

log = logging.getLogger("corral.engine")

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _engine_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer engine id") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"engine ids are non-negative, not {value}")
    return value


def _uuid_arg(text: str) -> str:
    value = text.strip().lower()
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"{text!r} is not 32 hex digits")
    return value


def _restarts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of restarts") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} restarts: give 0 (never) or more")
    return value


def _megabytes(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of megabytes") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a memory limit of {text} MB: give a positive number")
    return int(value * 2**20)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``python -m corral.engine``."""
    parser = argparse.ArgumentParser(
        prog="python -m corral.engine",
        description="Run a corral engine: register with a controller and serve its requests.",
    )
    parser.add_argument("--connection-file", required=True, metavar="FILE", help="the cluster's connection file")
    parser.add_argument("--id", type=_engine_id, default=None, metavar="N", help="ask the hub for engine id N")
    parser.add_argument(
        "--mpi",
        action="store_true",
        help="started by mpiexec: ask the hub for the MPI rank (plus --id, default 0) as engine id",
    )
    parser.add_argument(
        "--no-supervisor",
        action="store_true",
        help="run the engine in this process (default: a supervisor process reports its exit to the hub)",
    )
    parser.add_argument(
        "--restart",
        type=_restarts,
        default=0,
        metavar="N",
        help="restart an engine that dies (a signal, or an exit code above 1) under the same id, "
        "at most N times a minute (default 0: never; needs the supervisor)",
    )
    parser.add_argument(
        "--memory-limit",
        type=_megabytes,
        default=None,
        metavar="MB",
        help="kill the engine when its resident memory passes MB megabytes, reporting 'memory limit "
        "exceeded' (restarted with --restart; needs the supervisor)",
    )
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=_LOG_LEVELS, help="logging level (default INFO)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the registration reply (default 30)",
    )
    parser.add_argument(
        "--controller-timeout",
        type=_positive,
        default=30.0,
        metavar="SECONDS",
        help="stop after this long without a heartbeat from the controller (default 30)",
    )
    parser.add_argument(
        "--no-direct",
        action="store_true",
        help="bind no socket of the engine's own: clients reach it only through the controller "
        "(default: clients send direct-view requests to the engine itself; CORRAL_DIRECT=0 does the same)",
    )
    parser.add_argument("--uuid", type=_uuid_arg, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"corral-engine {__version__}")
    return parser


#: where MPI implementations put a process's rank in its environment, most specific first
MPI_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")


def mpi_rank() -> int:
    """Return this process's MPI rank from the environment ``mpiexec`` gave it.

    Raises
    ------
    ValueError
        If no known rank variable is set (not started by ``mpiexec``) or one is not a number.
    """
    for name in MPI_RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not an MPI rank") from None
    raise ValueError(
        f"--mpi needs an MPI rank in the environment ({', '.join(MPI_RANK_VARIABLES)}); "
        "start the engines with mpiexec, e.g. `mpiexec -n 4 python -m corral.engine --mpi ...`"
    )


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s corral-engine[%(process)d] %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


def _child_args(args: argparse.Namespace, uuid: str) -> list[str]:
    argv = [
        "--connection-file",
        os.path.abspath(os.path.expanduser(args.connection_file)),
        "--log-level",
        args.log_level,
        "--timeout",
        repr(args.timeout),
        "--controller-timeout",
        repr(args.controller_timeout),
        "--no-supervisor",
        "--uuid",
        uuid,
        "--supervised",
    ]
    if args.id is not None:
        argv += ["--id", str(args.id)]
    if args.no_direct:
        argv.append("--no-direct")
    return argv


def _fail(message: str) -> int:
    print(f"corral-engine: {message}", file=sys.stderr, flush=True)
    return 1


def _run_supervisor(args: argparse.Namespace) -> int:
    try:
        info = read_connection_file(os.path.expanduser(args.connection_file))
    except ConnectionFileError as err:
        return _fail(str(err))
    uuid = args.uuid or _uuid.uuid4().hex
    supervisor = Supervisor(
        info, uuid, _child_args(args, uuid), restart_limit=args.restart, memory_limit=args.memory_limit
    )
    return supervisor.run()


def _tell_supervisor_the_id(engine: Any, fd: int, timeout: float) -> None:
    """Write the engine's id to the supervisor's pipe once it registers (a daemon thread)."""

    def tell() -> None:
        try:
            if engine.wait_registered(timeout) and engine.id is not None:
                os.write(fd, f"{engine.id}\n".encode())
        except OSError as err:
            log.debug("could not tell the supervisor the engine id: %s", err)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    threading.Thread(target=tell, name="corral-engine-tell-id", daemon=True).start()


def _run_engine(args: argparse.Namespace) -> int:
    # imported here, not at the top: the supervisor process never needs the engine itself,
    # and every engine start pays for both processes' imports
    from corral.engine.engine import Engine
    from corral.engine.namespace import main_namespace

    if args.supervised:
        parent = os.environ.get(SUPERVISOR_PID_ENV)
        if not die_with_parent(int(parent) if parent and parent.isdigit() else None):
            return _fail("the supervisor exited before the engine started")
    try:
        engine = Engine(
            args.connection_file,
            namespace=main_namespace(),
            requested_id=args.id,
            uuid=args.uuid,
            registration_timeout=args.timeout,
            controller_timeout=args.controller_timeout,
            handle_signals=True,
            direct=False if args.no_direct else None,
        )
    except ConnectionFileError as err:
        return _fail(str(err))
    id_fd = os.environ.get(SUPERVISOR_ID_FD_ENV, "")
    if args.supervised and id_fd.isdigit():
        _tell_supervisor_the_id(engine, int(id_fd), args.timeout)
    try:
        engine.run()
    except RegistrationError as err:
        return _fail(str(err))
    log.info("engine %s exiting: %s", engine.id, engine.stop_reason)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the engine program with ``argv`` (default ``sys.argv[1:]``); return its exit code.

    Raises
    ------
    SystemExit
        From argument parsing only (``--help``, ``--version``, bad arguments: code 2).
    """
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    if args.mpi:  # resolved here once: a supervisor hands its engine a plain --id
        try:
            args.id = mpi_rank() + (args.id or 0)
        except ValueError as err:
            return _fail(str(err))
    try:
        # a launcher's lifeline (CORRAL_LIFELINE_FD): when the launcher dies, SIGTERM stops us
        # cleanly; the supervised engine does not inherit it, and dies with its supervisor
        watch_lifeline()
    except ValueError as err:
        return _fail(str(err))
    if args.no_supervisor:
        if (args.restart or args.memory_limit is not None) and not args.supervised:
            return _fail("--restart and --memory-limit need the supervisor: drop --no-supervisor")
        return _run_engine(args)
    return _run_supervisor(args)
