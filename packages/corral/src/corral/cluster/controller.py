"""The controller: the hub and the schedulers in one process, on one reactor.

It binds every channel of :data:`corral.wire.protocol.CHANNELS` behind the connection gate,
wires the relays to the hub (the monitor channel is a method call here), and writes the
connection file last, so a peer that can read the file finds every socket bound.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zmq

from corral.cluster._broadcast_tree import BroadcastTree
from corral.hub import EngineRecord, Hub, MemoryStore, ResultStore, SqliteStore
from corral.scheduler import DirectRelay, IOPubRelay
from corral.scheduler.broadcast import BroadcastScheduler, TreeShape
from corral.scheduler.policies import DEFAULT_SCHEME as DEFAULT_TASK_SCHEME
from corral.scheduler.policies import SCHEMES as TASK_SCHEMES
from corral.scheduler.task import DEFAULT_HWM, TaskScheduler
from corral.wire import ConnectionInfo, Session, harden, new_connection_info, write_connection_file
from corral.wire.gate import Gate, curve_required
from corral.wire.loop import Reactor
from corral.wire.paths import DEFAULT_CLUSTER_ID, connection_file_path, corral_dir
from corral.wire.protocol import CHANNELS, DEFAULT_BUFFER_FRAME_SIZE, MIN_BUFFER_FRAME_SIZE
from corral.wire.session import DEFAULT_MAX_FRAME_SIZE
from corral.wire.signing import DEFAULT_SCHEME

__all__ = ["DATA_CHANNELS", "SOCKET_TYPES", "STORES", "Controller", "default_db_file", "resolve_curve"]

#: The result stores ``Controller(store=...)`` accepts.
STORES = ("memory", "sqlite")


def default_db_file(cluster_id: str) -> Path:
    """Where a cluster's SQLite result store lives by default: ``$CORRAL_DIR/db/<cluster_id>.sqlite``."""
    return corral_dir() / "db" / f"{cluster_id}.sqlite"


log = logging.getLogger(__name__)

#: The ZeroMQ socket type the controller binds for each channel.
SOCKET_TYPES: Mapping[str, int] = {
    "registration": zmq.ROUTER,
    "heartbeat_ping": zmq.PUB,
    "heartbeat_pong": zmq.ROUTER,
    "mux": zmq.ROUTER,
    "mux_engine": zmq.ROUTER,
    "task": zmq.ROUTER,
    "task_engine": zmq.ROUTER,
    "broadcast": zmq.ROUTER,
    "broadcast_engine": zmq.ROUTER,
    "control": zmq.ROUTER,
    "control_engine": zmq.ROUTER,
    "iopub": zmq.PUB,
    "iopub_engine": zmq.SUB,
    # XPUB: the controller sees each client subscribe, and re-announces the live engines to it
    "notification": zmq.XPUB,
}
assert set(SOCKET_TYPES) == set(CHANNELS)

#: The channels that carry user data (arguments, results, output) and so may need frames of any
#: size (``Controller(max_frame_size=...)``); every other channel takes frames of at most
#: :data:`corral.wire.session.DEFAULT_MAX_FRAME_SIZE`, from anyone, handshake included.
DATA_CHANNELS: frozenset[str] = frozenset(
    {"mux", "mux_engine", "task", "task_engine", "broadcast", "broadcast_engine", "iopub_engine"}
)
assert DATA_CHANNELS.issubset(CHANNELS)


def resolve_curve(ip: str, curve: bool | None, insecure: bool) -> bool:
    """Decide whether a controller binding ``ip`` uses CurveZMQ.

    ``curve=None`` means on exactly for non-loopback addresses; ``insecure`` (with ``curve``
    None or False) is the explicit opt-out for those.

    Raises
    ------
    ValueError
        If ``ip`` is not loopback, ``curve`` is False and ``insecure`` is not set; or both
        ``curve=True`` and ``insecure`` are given.
    """
    if curve and insecure:
        raise ValueError("curve=True and insecure=True contradict each other; choose one (--curve or --insecure)")
    if curve is not None and curve:
        return True
    if not curve_required(ip):
        return False
    if insecure:
        log.warning("binding %s WITHOUT CurveZMQ (--insecure): traffic is readable on the network", ip)
        return False
    if curve is False:
        raise ValueError(
            f"binding {ip} without CurveZMQ is refused: it is not a loopback address, so others may read "
            "the traffic. Leave CurveZMQ on (the default), bind 127.0.0.1, or pass --insecure "
            "(insecure=True) if the network is trusted."
        )
    return True


class Controller:
    """Bind a cluster's channels and serve them.

    Parameters
    ----------
    cluster_id
        Names the connection file (``~/.corral/security/corral-<cluster_id>.json``).
    ip
        Address to bind; loopback by default.
    ports
        Port per channel; channels not given get a random free port.
    key
        The cluster key as hex; a new random key by default. ``""`` means unsigned (warns).
    connection_file
        Where to write the connection file (default from ``cluster_id``).
    heartbeat_period, heartbeat_misses
        Ping every ``heartbeat_period`` seconds; an engine silent for ``heartbeat_misses``
        periods is declared dead.
    task_scheme
        How the task scheduler chooses engines (:data:`corral.scheduler.policies.SCHEMES`).
    task_hwm
        Most load-balanced tasks outstanding per engine (0: no limit).
    store
        The hub's result store: ``"memory"`` (bounded, lost with the process) or ``"sqlite"``
        (a file a restarted controller reopens with ``restore``).
    db_file
        The SQLite file (default ``$CORRAL_DIR/db/<cluster_id>.sqlite``).
    restore
        Reopen the records of ``db_file`` instead of starting empty (implies ``"sqlite"``).
    retention
        Seconds the store keeps a finished result (None: until purged; the memory store also
        trims collected results beyond its bounds).
    context
        ZeroMQ context (a new one by default).
    curve
        CurveZMQ encryption and authentication on every socket: ``None`` (default) turns it on
        exactly when ``ip`` is not loopback (:func:`corral.wire.gate.curve_required`); ``True``
        forces it on loopback too.
    insecure
        Allow binding a non-loopback address without CurveZMQ (``curve=False``): anyone who
        can read the traffic can then read the key's gate token and every payload.
    max_frame_size
        Largest frame, in bytes, the :data:`DATA_CHANNELS` accept (None: 256 MiB,
        :data:`~corral.wire.protocol.DEFAULT_BUFFER_FRAME_SIZE`; at least 1 MiB). ZeroMQ applies
        a socket's limit to every peer, before and after the gate admits it, so this also bounds
        what a peer without the key can make the controller allocate on those channels. It goes
        into the connection file, and clients and engines split larger buffers into frames of
        this size, so arrays of any size pass. The other channels always refuse frames over
        :data:`~corral.wire.session.DEFAULT_MAX_FRAME_SIZE`.
    broadcast_depth
        Levels of broadcast scheduler processes below the controller's own (0: none, the
        controller sends a broadcast to every engine itself). With depth ``d`` there are
        ``broadcast_fanout ** d`` leaves, each serving a fixed share of the engines
        (docs/decisions.md, "The broadcast tree").
    broadcast_fanout
        Children per broadcast scheduler (at least 2).

    Raises
    ------
    ValueError
        If a port names an unknown channel, ``task_scheme`` or ``store`` is unknown,
        ``task_hwm`` is negative, ``retention`` not positive, ``max_frame_size`` below 1 MiB, a
        non-loopback ``ip`` is asked for with ``curve=False`` and not ``insecure``,
        ``broadcast_depth`` is negative or ``broadcast_fanout`` below 2.

    Examples
    --------
    >>> c = Controller(cluster_id="demo")  # doctest: +SKIP
    >>> info = c.start()                    # binds and writes the connection file
    >>> c.serve_forever()                   # until c.stop()
    """

    def __init__(
        self,
        *,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        ip: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        key: str | None = None,
        signature_scheme: str = DEFAULT_SCHEME,
        connection_file: str | os.PathLike[str] | None = None,
        heartbeat_period: float = 0.5,
        heartbeat_misses: int = 4,
        task_scheme: str = DEFAULT_TASK_SCHEME,
        task_hwm: int | None = DEFAULT_HWM,
        store: str = "memory",
        db_file: str | os.PathLike[str] | None = None,
        restore: bool = False,
        retention: float | None = None,
        context: zmq.Context[Any] | None = None,
        curve: bool | None = None,
        insecure: bool = False,
        max_frame_size: int | None = None,
        broadcast_depth: int = 0,
        broadcast_fanout: int = 2,
    ) -> None:
        self.curve = resolve_curve(ip, curve, insecure)
        if max_frame_size is None:
            max_frame_size = DEFAULT_BUFFER_FRAME_SIZE
        if not (isinstance(max_frame_size, int) and max_frame_size >= MIN_BUFFER_FRAME_SIZE):
            raise ValueError(
                f"max_frame_size must be at least {MIN_BUFFER_FRAME_SIZE} bytes (1 MiB), not {max_frame_size!r}"
            )
        self.max_frame_size: int = max_frame_size
        self.broadcast_shape = TreeShape(broadcast_depth, broadcast_fanout)
        if restore:
            store = "sqlite"
        if store not in STORES:
            raise ValueError(f"unknown result store {store!r}; stores are {', '.join(STORES)}")
        if retention is not None and retention <= 0:
            raise ValueError(f"retention must be a positive number of seconds, not {retention!r}")
        self.store_kind = store
        self.db_file = Path(db_file) if db_file else default_db_file(cluster_id)
        self.restore = restore
        self.retention = retention
        if task_scheme not in TASK_SCHEMES:
            raise ValueError(f"unknown scheme {task_scheme!r}; schemes are {', '.join(sorted(TASK_SCHEMES))}")
        if task_hwm is not None and task_hwm < 0:
            raise ValueError(f"hwm must be 0 (no limit) or positive, not {task_hwm}")
        self.task_scheme = task_scheme
        self.task_hwm = task_hwm
        self.cluster_id = cluster_id
        self.ip = ip
        self.requested_ports = dict(ports or {})
        unknown = set(self.requested_ports) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channel(s) {sorted(unknown)}; channels are {', '.join(CHANNELS)}")
        self.connection_file = Path(connection_file) if connection_file else connection_file_path(cluster_id)
        self.context: zmq.Context[Any] = context or zmq.Context()
        self._own_context = context is None
        self.info: ConnectionInfo = new_connection_info(
            {c: 1 for c in CHANNELS}, cluster_id=cluster_id, ip=ip, key=key, signature_scheme=signature_scheme
        )
        # senders split larger buffers into frames this size (docs/protocol.md, "chunks")
        self.info["max_frame_size"] = max_frame_size
        self.session = Session(self.info["key"], scheme=signature_scheme, buffer_frame_size=max_frame_size)
        self.heartbeat_period = heartbeat_period
        self.heartbeat_misses = heartbeat_misses
        self.reactor = Reactor(self.context)
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        self.gate: Gate | None = None
        self.hub: Hub | None = None
        self.mux: DirectRelay | None = None
        self.control: DirectRelay | None = None
        self.task: TaskScheduler | None = None
        self.broadcast: BroadcastScheduler | None = None
        #: the broadcast scheduler processes below the root (with ``broadcast_depth >= 1``)
        self.broadcast_tree: BroadcastTree | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- setting up ---------------------------------------------------------------------------

    def _bind(self, channel: str, socket: zmq.Socket[Any]) -> int:
        port = self.requested_ports.get(channel)
        url_ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        if ":" in self.ip:
            socket.setsockopt(zmq.IPV6, 1)
        if port:
            try:
                socket.bind(f"tcp://{url_ip}:{port}")
            except zmq.ZMQError as err:
                if err.errno == errno.EADDRINUSE:
                    fix = (
                        "Another program (or another corral controller) uses that port: choose other "
                        "ports, or stop the other controller (`corral list`, `corral stop`)."
                    )
                elif err.errno == errno.EADDRNOTAVAIL:
                    fix = f"{self.ip} is not an address of this machine: use one of its addresses, or 127.0.0.1."
                else:
                    fix = "Check the address and port."
                raise OSError(f"cannot bind the {channel} channel to {self.ip}:{port}: {err.strerror}. {fix}") from None
            return port
        try:
            return socket.bind_to_random_port(f"tcp://{url_ip}")
        except zmq.ZMQError as err:
            raise OSError(
                f"cannot bind the {channel} channel on {self.ip}: {err.strerror}. "
                f"Is {self.ip} an address of this machine? (127.0.0.1 always is)"
            ) from None

    def start(self) -> ConnectionInfo:
        """Bind every channel, wire hub and relays, and write the connection file.

        Returns
        -------
        ConnectionInfo
            What was written to :attr:`connection_file`.

        Raises
        ------
        OSError
            If a requested port is in use, or the connection file cannot be written.
        ValueError
            If the SQLite store's file is not a usable corral result store.
        """
        store = self._open_store()
        key = bytes.fromhex(self.info["key"])
        self.gate = Gate(self.context, key, curve=self.curve)
        if self.gate.curve_public_key is not None:
            self.info["curve_public_key"] = self.gate.curve_public_key
        ports: dict[str, int] = {}
        try:
            for channel in CHANNELS:
                sock = self.context.socket(SOCKET_TYPES[channel])
                harden(sock)
                sock.setsockopt(zmq.SNDHWM, 0)
                sock.setsockopt(zmq.RCVHWM, 0)
                limit = self.max_frame_size if channel in DATA_CHANNELS else DEFAULT_MAX_FRAME_SIZE
                self.gate.guard(sock, max_frame_size=limit)
                if channel == "notification":
                    sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every client's subscription, not only the first
                self.sockets[channel] = sock
                ports[channel] = self._bind(channel, sock)
        except BaseException:
            store.close()
            self.close()
            raise
        self.info["ports"] = ports
        s = self.sockets
        hub = self.hub = Hub(
            self.session,
            s["registration"],
            s["notification"],
            s["heartbeat_ping"],
            s["heartbeat_pong"],
            heartbeat_period=self.heartbeat_period,
            heartbeat_misses=self.heartbeat_misses,
            store=store,
        )
        self.mux = DirectRelay("mux", self.session, s["mux"], s["mux_engine"], hub)
        self.control = DirectRelay("control", self.session, s["control"], s["control_engine"], hub)
        task = self.task = TaskScheduler(
            self.session,
            s["task"],
            s["task_engine"],
            hub,
            scheme=self.task_scheme,
            hwm=self.task_hwm,
            lookup=hub.outcome,
        )
        broadcast = self.broadcast = BroadcastScheduler(
            self.session, s["broadcast"], s["broadcast_engine"], hub, shape=self.broadcast_shape
        )
        if self.broadcast_shape.depth:
            self._start_broadcast_tree(broadcast, store)
        iopub = IOPubRelay(self.session, s["iopub_engine"], s["iopub"], hub)
        relays = (self.mux, self.control)

        def engine_live(record: EngineRecord) -> None:
            for relay in relays:
                relay.add_engine(record.ident, record.id)
            task.add_engine(record.ident, record.id)
            broadcast.add_engine(record.ident, record.id)

        def engine_lost(record: EngineRecord) -> None:
            for relay in relays:
                relay.remove_engine(record.ident)
            # before the hub fails mux/control requests: the scheduler resubmits or fails tasks
            task.engine_lost(record.ident, record.reason)
            broadcast.engine_lost(record.ident, record.reason)

        # an abort names tasks the scheduler may still hold (waiting for dependencies or room)
        self.control.on_request = task.abort_request
        hub.on_live.append(engine_live)
        hub.on_lost.append(engine_lost)
        # stored requests are acknowledged to their clients on the channel they came in on
        hub.acks.sockets.update({"mux": s["mux"], "task": s["task"], "control": s["control"]})
        hub.reply_senders["mux"] = self.mux.send_reply
        hub.reply_senders["control"] = self.control.send_reply
        hub.unassigned = task.unassigned
        hub.on_purge.append(task.forget)
        hub.on_shutdown = self.stop
        for part in (hub, self.mux, self.control, task, broadcast, iopub):
            part.register(self.reactor)
        self.reactor.add_socket(s["notification"], self._on_subscription)
        write_connection_file(self.connection_file, self.info)
        log.info("controller for cluster %r ready: %s", self.cluster_id, self.connection_file)
        return self.info

    def _start_broadcast_tree(self, root: BroadcastScheduler, store: ResultStore) -> None:
        """Start the node processes (before the connection file: engines must find their leaf)."""
        assert self.hub is not None
        tree = self.broadcast_tree = BroadcastTree(
            self.broadcast_shape,
            key=self.info["key"],
            signature_scheme=self.info["signature_scheme"],
            ip=self.ip,
            root_port=self.info["ports"]["broadcast_engine"],
            curve_public_key=self.info.get("curve_public_key"),
            max_frame_size=self.max_frame_size,
        )
        try:
            tree.start()
        except BaseException:
            store.close()
            self.close()
            raise
        shape = self.broadcast_shape
        # an engine learns its leaf from the registration reply; the connection file is unchanged
        self.hub.registration_extra = lambda record: {"broadcast_engine_port": tree.leaf_port(shape.leaf_of(record.id))}
        self.reactor.call_every(tree.check_period, tree.check, root.node_lost, root.node_restarted)

    def _open_store(self) -> ResultStore:
        if self.store_kind == "memory":
            return MemoryStore(retention=self.retention, spill=corral_dir() / "spill")
        try:
            store = SqliteStore(self.db_file, restore=self.restore, retention=self.retention)
        except sqlite3.Error as err:
            raise OSError(f"cannot open the result store {self.db_file}: {err}") from None
        log.info("result store: %s (%s)", self.db_file, "restored" if self.restore else "new")
        return store

    def _on_subscription(self, socket: zmq.Socket[Any]) -> None:
        """Announce every live engine again when a client subscribes to notifications.

        A client's ``connection_reply`` snapshot can precede its notification subscription: an
        engine that went live in between would be announced to nobody listening, and the client
        would never learn of it. Announcing the live engines to each new subscriber closes that
        gap; ``engine_registered`` is idempotent for clients.
        """
        subscribed = False
        while True:
            try:
                frame = socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            subscribed = subscribed or frame[:1] == b"\x01"
        if subscribed and self.hub is not None:
            for record in self.hub.engines.live():
                content = {"id": record.id, "uuid": record.uuid, "shm": record.shm}
                self.session.send(socket, "engine_registered", content)

    # -- running ------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` (from any thread) or a client's shutdown request."""
        self.reactor.run()

    def start_in_thread(self) -> ConnectionInfo:
        """Bind, then serve in a daemon thread (for embedding and tests); returns the info."""
        info = self.start()
        self._thread = threading.Thread(target=self.serve_forever, name="corral-controller", daemon=True)
        self._thread.start()
        return info

    def stop(self) -> None:
        """Stop serving; safe from any thread."""
        self.reactor.stop()

    def live_engines(self) -> list[EngineRecord]:
        """The engines currently live (read from the loop thread, or after stopping)."""
        return self.hub.engines.live() if self.hub else []

    def close(self, remove_connection_file: bool = True) -> None:
        """Stop, close every socket and the gate, and remove the connection file."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._thread is not None:
            self._thread.join(10)
        if self.broadcast_tree is not None:
            self.broadcast_tree.stop()
        for sock in self.sockets.values():
            sock.close(linger=0)
        if self.hub is not None:
            self.hub.store.close()
            # no engine or client of this cluster reads any more: nothing in /dev/shm is wanted
            self.hub.sweep_segments(everything=True)
        self.reactor.close()
        if self.gate is not None:
            self.gate.stop()
        if self._own_context:
            self.context.term()
        if remove_connection_file:
            try:
                if self.connection_file.exists():
                    self.connection_file.unlink()
            except OSError as err:
                log.warning("could not remove %s: %s", self.connection_file, err)
