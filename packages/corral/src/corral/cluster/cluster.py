"""``Cluster``: start a controller and engines, connect a client, stop everything.

The method names are ipyparallel's, so code ports unchanged: async ``start_controller``,
``start_engines``, ``start_cluster``, ``connect_client``, ``start_and_connect``,
``stop_engines``, ``stop_controller``, ``stop_cluster``, each with a ``_sync`` twin, and
``with Cluster(n=4) as rc:`` / ``async with Cluster(n=4) as rc:``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import secrets
import time
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from corral.cluster._ports import listen_ports
from corral.cluster._sync import sync_twin
from corral.cluster.controller import resolve_curve
from corral.launchers import Launched, Launcher, LaunchError, find_launcher, stop_all
from corral.scheduler.broadcast import TreeShape
from corral.scheduler.policies import DEFAULT_SCHEME as DEFAULT_TASK_SCHEME
from corral.scheduler.policies import SCHEMES as TASK_SCHEMES
from corral.wire import new_connection_info, write_connection_file
from corral.wire.gate import curve_server_keys
from corral.wire.paths import (
    cluster_record_path,
    connection_file_path,
    corral_dir,
    private_dir,
    validate_cluster_id,
)
from corral.wire.protocol import CHANNELS, DEFAULT_BUFFER_FRAME_SIZE
from corral.wire.signing import DEFAULT_SCHEME, SCHEMES

if TYPE_CHECKING:
    from corral.client import Client

__all__ = ["BROADCAST_TREE_ENGINES", "Cluster"]

#: From this many engines on, a Cluster's broadcasts go through a tree of scheduler processes
#: (``broadcast_depth=1``) unless told otherwise; below, the controller sends them itself.
BROADCAST_TREE_ENGINES = 64

#: Log levels the controller and engines accept (``log_level``).
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger(__name__)

_live: weakref.WeakSet[Cluster] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for cluster in list(_live):
        if cluster.shutdown_atexit:
            cluster._stop_now()


class Cluster:
    """A controller and ``n`` engines, started and stopped from Python.

    Parameters
    ----------
    n
        Number of engines; one per CPU core by default.
    cluster_id
        Names the connection file; a random id by default.
    engines
        Launcher for the engines, by entry-point name in the ``corral.launchers`` group:
        ``"local"`` (default), ``"mpi"``, ``"ssh"``, or a third-party one.
    launcher_options
        Options for the engine launcher's constructor (e.g. ``{"hosts": ["a", "b"]}`` for
        ``"ssh"``); see ``docs/launchers.md``.
    controller
        Launcher for the controller: ``"local"`` (default), or the engines' launcher by name
        (``"ssh"`` runs it on the launcher's ``controller_host``), which then gets
        ``launcher_options`` too.
    ip
        Address the controller binds (loopback by default).
    log_level
        Log level of the controller and engines, ``"DEBUG"``, ``"INFO"``, ``"WARNING"`` or
        ``"ERROR"`` in any case (their logs are in ``~/.corral/logs/<id>/``).
    engine_timeout
        Seconds :meth:`start_and_connect` waits for the engines.
    shutdown_atexit
        Stop the cluster when this Python process exits, and let its processes stop by
        themselves if this process dies without stopping them (on by default; ``corral start``
        turns it off for clusters that outlive the command).
    signature_scheme
        How messages are authenticated (see :mod:`corral.wire.signing`); the default needs a
        CPU with AES instructions to be fast, ``"blake3-v1"`` does not.
    store
        The hub's result store: ``"memory"`` (default) or ``"sqlite"``, which survives a
        controller restart (:meth:`restart_controller`).
    db_file
        The SQLite store's file (default ``$CORRAL_DIR/db/<cluster_id>.sqlite``).
    restore
        Start the controller on the records already in the SQLite store (and on the existing
        connection file, when there is one) instead of an empty store; implies ``"sqlite"``.
    retention
        Seconds the hub keeps a finished result (None: until purged).
    scheme
        How the controller's task scheduler chooses an engine for a load-balanced task
        (``corral controller --scheme``): ``"leastload"`` (default), ``"lru"``,
        ``"plainrandom"``, ``"twobin"`` or ``"weighted"``.
    hwm
        Most load-balanced tasks outstanding per engine (``--hwm``; 0: no limit; None: the
        controller's default, which adapts to how long tasks take).
    curve
        CurveZMQ encryption: ``None`` (default) turns it on exactly when ``ip`` is not a
        loopback address; ``True`` forces it on loopback too.
    insecure
        Allow a non-loopback ``ip`` without CurveZMQ (see ``docs/security.md``).
    engine_restarts
        An engine that dies unexpectedly is started again under the same id by its supervisor,
        at most this many times a minute (``--restart``); by default 3 for the ``"local"``
        launcher and 0 (never) for the others, whose engines their own tools manage.
    engine_memory_limit
        Megabytes of resident memory past which an engine is killed (and restarted, see
        ``engine_restarts``), its request failing with ``memory limit exceeded``; no limit by
        default.
    max_frame_size
        Largest frame, in bytes (at least 1 MiB), the controller's data channels accept
        (``corral controller --max-frame-size``); a peer sending a larger one, even before it
        has proved it holds the key, is disconnected before the frame is allocated, and corral's
        clients and engines split larger buffers into frames of this size, so arrays of any size
        still pass. None (default): 256 MiB. The other channels always refuse frames over 64 MiB.
    broadcast_depth
        Levels of broadcast scheduler processes below the controller (``--broadcast-depth``;
        0: the controller sends each broadcast to every engine itself). None (default): 0 for
        fewer than :data:`BROADCAST_TREE_ENGINES` engines, 1 from there on (docs/decisions.md,
        "The broadcast tree").
    broadcast_fanout
        Children per broadcast scheduler node (``--broadcast-fanout``, at least 2).

    Raises
    ------
    ValueError
        If ``n`` is negative, ``max_frame_size`` not an int of at least 1 MiB, ``cluster_id``, ``ip``,
        ``log_level``, ``signature_scheme``, ``scheme`` or ``hwm`` is not usable,
        ``broadcast_depth`` is negative or ``broadcast_fanout`` below 2, no launcher is named
        ``engines`` or a launcher option is bad (each message names the valid choices), or
        ``ip`` is not a loopback address with ``curve=False`` and not ``insecure``.

    Examples
    --------
    >>> from corral.cluster import Cluster
    >>> with Cluster(n=2) as rc:  # doctest: +SKIP
    ...     print(rc[:].apply_sync(lambda: 1))
    [1, 1]
    """

    def __init__(
        self,
        n: int | None = None,
        *,
        cluster_id: str | None = None,
        engines: str = "local",
        launcher_options: Mapping[str, Any] | None = None,
        controller: str = "local",
        ip: str = "127.0.0.1",
        log_level: str = "WARNING",
        engine_timeout: float = 60.0,
        shutdown_atexit: bool = True,
        signature_scheme: str = DEFAULT_SCHEME,
        curve: bool | None = None,
        insecure: bool = False,
        engine_restarts: int | None = None,
        engine_memory_limit: float | None = None,
        store: str = "memory",
        db_file: str | os.PathLike[str] | None = None,
        restore: bool = False,
        retention: float | None = None,
        scheme: str = DEFAULT_TASK_SCHEME,
        hwm: int | None = None,
        max_frame_size: int | None = None,
        broadcast_depth: int | None = None,
        broadcast_fanout: int = 2,
    ) -> None:
        self.curve = resolve_curve(ip, curve, insecure)
        if max_frame_size is not None and not (
            isinstance(max_frame_size, int) and not isinstance(max_frame_size, bool) and max_frame_size >= 2**20
        ):
            raise ValueError(
                f"max_frame_size must be a number of bytes, at least 1 MiB, or None, not {max_frame_size!r}"
            )
        self.max_frame_size = max_frame_size
        if broadcast_depth is not None:
            TreeShape(broadcast_depth, broadcast_fanout)  # ValueError naming the bad one
        else:
            TreeShape(0, broadcast_fanout)
        self.broadcast_depth = broadcast_depth
        self.broadcast_fanout = broadcast_fanout
        if engine_restarts is not None and (
            not isinstance(engine_restarts, int) or isinstance(engine_restarts, bool) or engine_restarts < 0
        ):
            raise ValueError(f"engine_restarts must be 0 (never) or a positive number, not {engine_restarts!r}")
        if engine_memory_limit is not None and not (
            isinstance(engine_memory_limit, (int, float)) and engine_memory_limit > 0
        ):
            raise ValueError(f"engine_memory_limit must be a positive number of megabytes, not {engine_memory_limit!r}")
        self.engine_restarts = (3 if engines == "local" else 0) if engine_restarts is None else engine_restarts
        self.engine_memory_limit = engine_memory_limit
        self.insecure = insecure
        if restore:
            store = "sqlite"
        if store not in ("memory", "sqlite"):
            raise ValueError(f"unknown result store {store!r}; choose 'memory' or 'sqlite'")
        if retention is not None and not retention > 0:
            raise ValueError(f"retention must be a positive number of seconds, not {retention!r}")
        self.store = store
        self.db_file = str(db_file) if db_file is not None else None
        self.restore = restore
        self.retention = retention
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise ValueError(f"n must be a non-negative number of engines, not {n!r}")
        self.n = (
            n
            if n is not None
            else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        )
        self.cluster_id = validate_cluster_id(cluster_id) if cluster_id else f"cluster-{secrets.token_hex(4)}"
        if not isinstance(ip, str) or not ip or any(c.isspace() for c in ip):
            raise ValueError(
                f"ip must be an address or host name of this machine, e.g. '127.0.0.1' (the default), not {ip!r}"
            )
        self.ip = ip
        if not isinstance(log_level, str) or log_level.upper() not in _LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, not {log_level!r}")
        self.log_level = log_level.upper()
        self.engine_timeout = engine_timeout
        self.shutdown_atexit = shutdown_atexit
        if signature_scheme not in SCHEMES:
            raise ValueError(f"unknown signature scheme {signature_scheme!r}; choose one of {', '.join(SCHEMES)}")
        self.signature_scheme = signature_scheme
        if scheme not in TASK_SCHEMES:
            raise ValueError(f"unknown task scheme {scheme!r}; choose one of {', '.join(sorted(TASK_SCHEMES))}")
        if hwm is not None and (not isinstance(hwm, int) or isinstance(hwm, bool) or hwm < 0):
            raise ValueError(f"hwm must be None (the default), 0 (no limit) or a positive int, not {hwm!r}")
        self.scheme = scheme
        self.hwm = hwm
        self.connection_file = connection_file_path(self.cluster_id)
        self.log_dir = corral_dir() / "logs" / self.cluster_id
        launcher_class = find_launcher(engines)  # ValueError naming the known launchers
        self.engine_launcher: Launcher = launcher_class(
            self.log_dir, lifeline=shutdown_atexit, **dict(launcher_options or {})
        )
        if controller == engines:
            self.controller_launcher: Launcher = self.engine_launcher
        elif controller == "local":
            self.controller_launcher = find_launcher("local")(self.log_dir, lifeline=shutdown_atexit)
        else:
            raise ValueError(
                f"controller={controller!r}: the controller runs locally or through the engines' launcher "
                f"({engines!r}); pass controller='local' or controller={engines!r}"
            )
        self.controller: Launched | None = None
        self.engines: list[Launched] = []
        self._clients: list[Client] = []
        self._client: Client | None = None

    def __repr__(self) -> str:
        state = "running" if self.controller is not None and self.controller.alive() else "stopped"
        return f"<Cluster {self.cluster_id!r} n={self.n} {state}>"

    # -- starting -----------------------------------------------------------------------------

    @property
    def controller_broadcast_depth(self) -> int:
        """The ``--broadcast-depth`` the controller starts with: ``broadcast_depth``, or the default for ``n``."""
        if self.broadcast_depth is not None:
            return self.broadcast_depth
        return 1 if self.n >= BROADCAST_TREE_ENGINES else 0

    async def start_controller(self) -> None:
        """Start the controller (returns once it is started, not necessarily listening).

        The connection file is written first, on free ports, so engines can start at the same
        time as the controller; ZeroMQ connects them as soon as it binds.

        Raises
        ------
        RuntimeError
            If this cluster's controller is already running.
        OSError
            If the connection file cannot be written or the process cannot start.
        """
        if self.controller is not None and self.controller.alive():
            raise RuntimeError(f"the controller of cluster {self.cluster_id!r} is already running")
        if not (self.restore and self.connection_file.exists()):
            info = new_connection_info(
                dict(zip(CHANNELS, listen_ports(len(CHANNELS), self.ip), strict=True)),
                cluster_id=self.cluster_id,
                ip=self.ip,
                signature_scheme=self.signature_scheme,
            )
            if self.curve:
                info["curve_public_key"] = curve_server_keys(bytes.fromhex(info["key"]))[0].decode("ascii")
            # engines (also remote ones, given a copy) read it before the controller rewrites it
            info["max_frame_size"] = DEFAULT_BUFFER_FRAME_SIZE if self.max_frame_size is None else self.max_frame_size
            write_connection_file(self.connection_file, info)
        args = ["--cluster-id", self.cluster_id, "--log-level", self.log_level, "--store", self.store]
        args += ["--scheme", self.scheme]
        if self.hwm is not None:
            args += ["--hwm", str(self.hwm)]
        depth = self.controller_broadcast_depth
        args += ["--broadcast-depth", str(depth), "--broadcast-fanout", str(self.broadcast_fanout)]
        if self.insecure and not self.curve:
            args.append("--insecure")
        if self.db_file is not None:
            args += ["--db-file", self.db_file]
        if self.restore:
            args.append("--restore")
        if self.retention is not None:
            args += ["--retention", repr(self.retention)]
        if self.max_frame_size is not None:
            args += ["--max-frame-size", repr(self.max_frame_size / 2**20)]
        self.controller = self.controller_launcher.start_controller(self.connection_file, args)
        _live.add(self)
        self._write_record()

    async def restart_controller(self) -> None:
        """Start the controller again on the same connection file and SQLite store.

        For a controller that died (or was killed): the new one binds the same ports with the
        same key, and reopens the store, so every result that had reached the old one can be
        fetched (``rc.get_result(msg_id)`` from a new client). A controller still running is
        stopped first. Engines of the old controller are not brought back.

        Raises
        ------
        RuntimeError
            If the cluster's store is not ``"sqlite"`` (a memory store cannot be reopened).
        LaunchError
            If the new controller dies while starting.
        """
        if self.store != "sqlite":
            raise RuntimeError("only a cluster with store='sqlite' can restart its controller with its results")
        controller, self.controller = self.controller, None
        if controller is not None:
            await asyncio.get_running_loop().run_in_executor(None, stop_all, [controller])
        self.restore = True
        await self.start_controller()
        await self._wait_controller()

    async def start_engines(self, n: int | None = None) -> None:
        """Start ``n`` more engines (``self.n`` by default); returns once they are started.

        Raises
        ------
        RuntimeError
            If the controller has not been started.
        LaunchError
            If the launcher cannot run its command (missing program, refused submission).
        """
        if self.controller is None:
            raise RuntimeError("start the controller first (start_cluster() starts both)")
        count = self.n if n is None else n
        first = sum(e.engines for e in self.engines)
        args = ["--log-level", self.log_level]
        if self.engine_restarts:
            args += ["--restart", str(self.engine_restarts)]
        if self.engine_memory_limit is not None:
            args += ["--memory-limit", repr(float(self.engine_memory_limit))]
        self.engines += self.engine_launcher.start_engines(count, self.connection_file, args, first_index=first)
        self._write_record()

    async def start_cluster(self, n: int | None = None) -> None:
        """Start the controller and ``n`` engines; return once the controller listens.

        Raises
        ------
        LaunchError
            If the controller dies while starting; the message has its command and output.
        """
        await self.start_controller()
        await self.start_engines(n)
        await self._wait_controller()

    async def _wait_controller(self, timeout: float = 30.0) -> None:
        assert self.controller is not None
        deadline = time.monotonic() + timeout
        while True:
            if not self.controller.alive():
                raise self.controller.failure(f"the controller of cluster {self.cluster_id!r}")
            if "corral controller ready" in self.controller.output():
                return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"the controller did not get ready within {timeout:.0f} s; log: {self.controller.log}"
                )
            await asyncio.sleep(0.01)

    async def connect_client(self, **kwargs: Any) -> Client:
        """Return a new :class:`~corral.client.Client` connected to this cluster.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the controller does not answer within the client's timeout.
        """
        from corral.client import Client

        client = await asyncio.get_running_loop().run_in_executor(None, lambda: Client(self.connection_file, **kwargs))
        self._clients.append(client)
        return client

    async def wait_for_engines(self, n: int | None = None, timeout: float | None = None) -> None:
        """Wait until ``n`` engines (all started ones by default) are registered.

        Raises
        ------
        LaunchError
            If an engine process dies before registering (its log tail is in the message),
            or they do not all register within ``timeout`` (default ``engine_timeout``).
        """
        count = sum(e.engines for e in self.engines) if n is None else n
        # not `self._client or ...`: a Client with no engines yet is falsy (len 0)
        client = self._client if self._client is not None else await self.connect_client()
        self._client = client
        limit = self.engine_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while len(client.ids) < count:
            for eng in self.engines:
                if not eng.alive():
                    raise eng.failure(f"an engine of cluster {self.cluster_id!r}")
            if self.controller is not None and not self.controller.alive():
                raise self.controller.failure(f"the controller of cluster {self.cluster_id!r}")
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"only {len(client.ids)} of {count} engines registered within "
                    f"{limit:g} s; engine logs are in {self.log_dir}"
                )
            await asyncio.sleep(0.01)

    async def start_and_connect(self, n: int | None = None, activate: bool = False) -> Client:
        """Start the cluster, wait for its engines, and return a connected client.

        Raises
        ------
        LaunchError
            If the controller or an engine fails to start (the cluster is stopped again).
        """
        if activate:
            try:
                from corral.magics import activate as activate_magics  # type: ignore[attr-defined]
            except ImportError:
                raise ImportError(
                    "activate=True needs the %px magics: pip install corral-magics (or corral[magics])"
                ) from None
        try:
            await self.start_cluster(n)
            client = await self.connect_client()
            self._client = client
            await self.wait_for_engines()
            if activate:
                activate_magics(client[:])
        except BaseException:
            await self.stop_cluster()
            raise
        return client

    # -- stopping -----------------------------------------------------------------------------

    async def stop_engines(self) -> None:
        """Stop every engine this cluster started."""
        engines, self.engines = self.engines, []
        await asyncio.get_running_loop().run_in_executor(None, stop_all, engines)
        self._write_record()

    async def stop_controller(self) -> None:
        """Stop the controller and remove the connection file."""
        controller, self.controller = self.controller, None
        if controller is not None:
            await asyncio.get_running_loop().run_in_executor(None, stop_all, [controller])
        self._cleanup_files()

    async def stop_cluster(self) -> None:
        """Close this cluster's clients, stop the engines and the controller."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._client = None
        await self.stop_engines()
        await self.stop_controller()
        self.engine_launcher.close()
        if self.controller_launcher is not self.engine_launcher:
            self.controller_launcher.close()
        _live.discard(self)

    def _stop_now(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):  # already closed or half-closed at exit
                client.close()
        procs = [*self.engines, *([self.controller] if self.controller else [])]
        self.engines, self.controller = [], None
        stop_all(procs)
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        for path in (self.connection_file, cluster_record_path(self.cluster_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _write_record(self) -> None:
        record = {
            "cluster_id": self.cluster_id,
            "connection_file": str(self.connection_file),
            "controller": self.controller.to_record() if self.controller else None,
            "engines": [e.to_record() for e in self.engines],
            "created": time.time(),
            "log_dir": str(self.log_dir),
        }
        path = cluster_record_path(self.cluster_id)
        private_dir(path.parent)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, indent=2))
        os.replace(tmp, path)

    # -- sync twins and context managers ------------------------------------------------------

    start_controller_sync = sync_twin(start_controller)
    restart_controller_sync = sync_twin(restart_controller)
    #: ipyparallel's short name for :meth:`start_cluster_sync`
    start_sync = sync_twin(start_cluster)
    start_engines_sync = sync_twin(start_engines)
    start_cluster_sync = sync_twin(start_cluster)
    connect_client_sync = sync_twin(connect_client)
    wait_for_engines_sync = sync_twin(wait_for_engines)
    start_and_connect_sync = sync_twin(start_and_connect)
    stop_engines_sync = sync_twin(stop_engines)
    stop_controller_sync = sync_twin(stop_controller)
    stop_cluster_sync = sync_twin(stop_cluster)
    #: ipyparallel's short name for :meth:`stop_cluster_sync`
    stop_sync = sync_twin(stop_cluster)

    def __enter__(self) -> Client:
        return self.start_and_connect_sync()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_cluster_sync()

    async def __aenter__(self) -> Client:
        return await self.start_and_connect()

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_cluster()
