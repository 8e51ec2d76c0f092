"""The hub: registration, heartbeats, the result store, queries and notifications.

The hub runs on the controller's reactor next to the schedulers, which report every routed
message to it (it implements :class:`corral.scheduler.Monitor` by duck typing: the two packages
do not import each other; the controller wires them).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import re
import signal as _signal
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import zmq

from corral.hub.acks import Acknowledger
from corral.hub.engines import EngineRecord, EngineTable
from corral.hub.heartbeat import HeartMonitor
from corral.hub.store import MemoryStore, Record, ResultStore
from corral.wire import Message, MessageRejected, ProtocolVersionError, RawMessage, Session
from corral.wire.errors import EngineError, RemoteError, error_reply, wrap_exception
from corral.wire.loop import Reactor, Timer
from corral.wire.protocol import valid_direct_url
from corral.wire.session import parent_msg_id
from corral.wire.shm import SegmentError, is_kept, open_kept, segment_tag, sweep_segments, touch_kept

__all__ = ["Hub", "ReplySender", "describe_exit"]

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-f]{32}$")
# "<16 hex digits>:<pid>" (corral.wire.shm); anything longer is not an address
_MAX_SHM_ADDRESS = 40

#: Sends a controller-made reply: (client, engine ident, msg_type, parent, content, metadata) -> delivered?
ReplySender = Callable[[bytes, bytes, str, dict[str, Any], dict[str, Any], dict[str, Any]], bool]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand the memory freed by a purge back to the operating system where the C library can.

    Freed reply frames and records go back to the allocator, which keeps most of them for
    reuse; glibc's ``malloc_trim`` returns its free pages to the system, so a purge shows in
    the controller's RSS. Elsewhere this does nothing.
    """
    if _TRIM is not None:
        _TRIM(0)


def describe_exit(exit_code: int | None, signal_name: str | None) -> str:
    """Say how a process ended: ``killed by SIGKILL``, ``exited with code 3``."""
    if signal_name:
        return f"killed by {signal_name}"
    if exit_code is not None:
        if exit_code < 0:
            try:
                return f"killed by {_signal.Signals(-exit_code).name}"
            except ValueError:
                return f"killed by signal {-exit_code}"
        return f"exited with code {exit_code}"
    return "exited"


class Hub:
    """Register engines, watch their hearts, remember results, and answer queries.

    Parameters
    ----------
    session
        The controller's session.
    registration_socket
        Bound ROUTER (``registration``) for engines' and clients' requests.
    notification_socket
        Bound PUB (``notification``) for engine joined/left events.
    ping_socket, pong_socket
        Bound PUB and ROUTER for heartbeats.
    store
        Where results are kept (in memory by default).
    heartbeat_period
        Seconds between pings.
    heartbeat_misses
        Periods without an answer before an engine is declared dead.
    registration_timeout
        Seconds an engine may take from registration to being live.
    """

    def __init__(
        self,
        session: Session,
        registration_socket: zmq.Socket[Any],
        notification_socket: zmq.Socket[Any],
        ping_socket: zmq.Socket[Any],
        pong_socket: zmq.Socket[Any],
        *,
        store: ResultStore | None = None,
        heartbeat_period: float = 0.5,
        heartbeat_misses: int = 4,
        registration_timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.registration_socket = registration_socket
        self.notification_socket = notification_socket
        self.store: ResultStore = store if store is not None else MemoryStore()
        self.engines = EngineTable()
        self.heartbeat_period = heartbeat_period
        self.heartbeat_misses = heartbeat_misses
        self.registration_timeout = registration_timeout
        self.heart = HeartMonitor(
            ping_socket,
            pong_socket,
            heartbeat_period,
            self._on_pong,
            self._on_beat,
            heartbeat_misses,
            on_junk=lambda what: session.reject("heartbeat_pong", MessageRejected("malformed", what)),
        )
        #: called with a record when an engine becomes live / leaves
        self.on_live: list[Callable[[EngineRecord], None]] = []
        self.on_lost: list[Callable[[EngineRecord], None]] = []
        #: per channel, how to send a reply the controller makes on an engine's behalf
        self.reply_senders: dict[str, ReplySender] = {}
        #: how many tasks a scheduler holds that are on no engine yet (queue_status's unassigned)
        self.unassigned: Callable[[], int] | None = None
        #: extra fields for an engine's registration reply (e.g. where its broadcast leaf is)
        self.registration_extra: Callable[[EngineRecord], Mapping[str, Any]] | None = None
        #: called when a client asks the controller to stop
        self.on_shutdown: Callable[[], None] | None = None
        #: called with the msg_ids a client purged (None: everything), so schedulers forget them too
        self.on_purge: list[Callable[[list[str] | None], None]] = []
        #: seconds between checks of the store's retention limit
        self.expire_period = 1.0
        #: seconds between sweeps of shared-memory segments whose receiver died
        self.shm_sweep_period = 5.0
        self.completed: dict[str, int] = {}
        #: acknowledges stored requests to their clients (its ``sockets`` say on which channels)
        self.acks = Acknowledger(session)
        self._last_reply: tuple[RawMessage | None, str | None] = (None, None)
        self._reactor: Reactor | None = None
        self._fast_ping: Timer | None = None
        self._shm_tag = segment_tag(session.key)
        # answers result requests of clients on this host with references to kept segments
        # (corral.wire.shm): a session of its own, so that nothing else the controller sends
        # goes through shared memory
        self._shm_session: Session | None = None
        self._shm_off = False  # this controller cannot share memory (or CORRAL_SHM=0)

    def register(self, reactor: Reactor) -> None:
        """Start serving on ``reactor``."""
        self._reactor = reactor
        self.acks.register(reactor)
        reactor.add_socket(self.registration_socket, self._on_registration)
        self.heart.register(reactor)
        if getattr(self.store, "retention", None) is not None:
            reactor.call_every(self.expire_period, self._expire)
        reactor.call_every(self.shm_sweep_period, self.sweep_segments)
        self._answer_restored()

    def sweep_segments(self, everything: bool = False) -> int:
        """Remove this cluster's shared-memory segments whose receiver died (all: ``everything``).

        Run every :attr:`shm_sweep_period` seconds and when an engine is lost; the controller
        runs it with ``everything=True`` when it stops. See :mod:`corral.wire.shm`.
        """
        try:
            return sweep_segments(self.session.key, everything=everything, kept=self.store.kept_segments())
        except OSError as err:  # never let housekeeping stop the hub
            log.warning("could not sweep shared-memory segments: %s", err)
            return 0

    def _expire(self) -> None:
        n = self.store.expire()
        if n:
            log.info(
                "dropped %d result(s) past the store's retention of %s s", n, getattr(self.store, "retention", "?")
            )

    def _answer_restored(self) -> None:
        """Answer requests that were pending when the previous controller stopped (``--restore``).

        Their engines belonged to that controller; nothing will answer them now, so each is
        stored as failed with an :class:`EngineError` saying so, for whoever fetches it.
        """
        restored = getattr(self.store, "restored_pending", None)
        if restored is None:
            return
        records = restored()
        for record in records:
            header = record.request_header
            err = EngineError(
                "EngineError",
                f"the controller stopped while {record.msg_id} ({header.get('msg_type', 'request')}) was queued "
                "or running, and was restarted from its store: the request's reply never arrived",
            )
            self.store.complete(record.msg_id, None, error_reply(err, header, {"engine_uuid": record.engine}))  # type: ignore[arg-type]
        if records:
            log.warning("%d request(s) pending at the last stop were failed with EngineError", len(records))

    # -- the monitor channel (called by the schedulers) ----------------------------------------

    def request(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> None:
        """Record a request routed to ``engine``."""
        header = raw.frames[0]
        self.store.add_request(
            Record(
                raw.header["msg_id"],
                channel,
                client,
                engine.decode(errors="replace"),
                header if type(header) is bytes else header.bytes,
            )
        )
        if not (engine and channel == "task"):  # a task is reported again when it reaches an engine
            self.acks.stored(channel, client, raw.header["msg_id"])

    def reply(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> bool:
        """Store a reply; return False when it answers a request already failed by the hub."""
        msg_id = parent_msg_id(raw)
        self._last_reply = (raw, msg_id)
        if msg_id is None:
            return True
        self.acks.answered(msg_id)
        if self.store.complete(msg_id, raw.frames, None, self._kept_refs(raw)) is None:
            record = self.store.get(msg_id)
            if record is not None and record.done:
                log.info("dropping a late reply to %s: it was already answered", msg_id)
                return False
            return True
        if channel in ("mux", "task"):  # queue_status counts executions, not control replies
            uuid = engine.decode(errors="replace")
            self.completed[uuid] = self.completed.get(uuid, 0) + 1
        return True

    def _kept_refs(self, raw: RawMessage) -> list[list[Any]] | None:
        """The reply's buffers in kept shared-memory segments, which its record now owns."""
        refs = raw.header.get("shm")
        if not refs or not isinstance(refs, list):
            return None
        kept = [
            ref
            for ref in refs
            if isinstance(ref, list)
            and len(ref) == 3
            and type(ref[0]) is int
            and ref[0] >= 0
            and type(ref[2]) is int
            and ref[2] > 0
            and is_kept(ref[1], self._shm_tag)
        ]
        return kept or None

    def delivered(self, channel: str, raw: RawMessage, client: bytes, ok: bool) -> None:
        """Mark the result collected once its client's connection took it."""
        last_raw, msg_id = self._last_reply
        if last_raw is not raw:
            msg_id = parent_msg_id(raw)
        if ok and msg_id is not None:
            self.store.mark_collected(msg_id)

    def hello(self, channel: str, engine: bytes) -> None:
        """An engine connected its ``channel`` socket."""
        record = self.engines.get(engine.decode(errors="replace"))
        if record is not None and record.state == "registering":
            record.hellos.add(channel)
            self._maybe_live(record)

    def output(self, raw: RawMessage) -> None:
        """Engine output passed by (kept by clients; nothing stored here yet)."""
        return None

    def answered(
        self,
        channel: str,
        client: bytes,
        engine: str,
        request_header: dict[str, Any],
        parts: tuple[str, dict[str, Any], dict[str, Any]],
        delivered: bool,
    ) -> None:
        """Store a reply a scheduler made itself (e.g. ``ImpossibleDependency``, ``EngineError``).

        The request is recorded first if it was never routed to an engine.
        """
        msg_id = request_header.get("msg_id")
        if not isinstance(msg_id, str):
            return
        if self.store.get(msg_id) is None:
            self.store.add_request(Record(msg_id, channel, client, engine, dict(request_header)))
        self.acks.answered(msg_id)
        self.store.complete(msg_id, None, parts)
        if delivered:
            self.store.mark_collected(msg_id)

    def outcome(self, msg_id: str) -> tuple[str, str | None, str | None]:
        """What became of ``msg_id``, for schedulers' dependency checks.

        Returns
        -------
        (state, status, engine_uuid)
            ``state`` is ``"unknown"``, ``"pending"`` or ``"completed"``; ``status`` the reply's
            (``"ok"``, ``"error"``, ``"aborted"``) once completed; ``engine_uuid`` where it was
            routed ("" or None if nowhere).
        """
        record = self.store.get(msg_id)
        if record is None:
            return ("unknown", None, None)
        engine = record.engine or None
        if not record.done:
            return ("pending", None, engine)
        return ("completed", record.status(), engine)

    # -- engine lifecycle ----------------------------------------------------------------------

    def _on_pong(self, uuid: str) -> None:
        record = self.engines.get(uuid)
        if record is None or record.state == "gone":
            return
        record.last_pong = time.monotonic()
        if not record.ponged:
            record.ponged = True
            self._maybe_live(record)

    def _on_beat(self) -> None:
        now = time.monotonic()
        deadline = self.heartbeat_period * self.heartbeat_misses
        for record in list(self.engines.by_uuid.values()):
            if record.state == "live" and now - record.last_pong > deadline:
                self.lose(record, f"stopped answering heartbeats for {now - record.last_pong:.1f} s")
            elif record.state == "registering" and now - record.registered > self.registration_timeout:
                self.lose(record, f"did not finish registering within {self.registration_timeout:.0f} s")

    def _start_fast_ping(self) -> None:
        """Ping every 20 ms while an engine is registering: its first answer makes it live, and
        waiting a whole heartbeat period for it would slow every cluster start."""
        if self._fast_ping is None and self._reactor is not None:
            self._fast_ping = self._reactor.call_every(0.02, self._fast_ping_tick)

    def _fast_ping_tick(self) -> None:
        if any(r.state == "registering" and not r.ponged for r in self.engines.by_uuid.values()):
            self.heart.ping_now()
        elif self._fast_ping is not None:
            self._fast_ping.cancel()
            self._fast_ping = None

    def _maybe_live(self, record: EngineRecord) -> None:
        if record.state != "registering" or not record.ready():
            return
        record.state = "live"
        record.last_pong = time.monotonic()
        log.info("engine %d (%s) is live", record.id, record.uuid)
        for callback in self.on_live:
            callback(record)
        self._notify(
            "engine_registered", {"id": record.id, "uuid": record.uuid, "shm": record.shm, "direct": record.direct}
        )

    def lose(self, record: EngineRecord, reason: str) -> None:
        """Declare an engine gone: fail its pending requests with :class:`EngineError`.

        Only requests of channels with a :attr:`reply_senders` entry (mux, control) are failed
        here; the task scheduler, told through :attr:`on_lost`, resubmits or fails its own.
        """
        if record.state == "gone":
            return
        was_live = record.state == "live"
        record.state = "gone"
        record.reason = reason
        log.warning("engine %d (%s) %s", record.id, record.uuid, reason)
        for callback in self.on_lost:
            callback(record)
        for pending in self.store.pending_on(record.uuid):
            sender = self.reply_senders.get(pending.channel)
            if sender is None:
                continue  # the channel's scheduler (tasks) resubmits or fails its own requests
            what = pending.request_header.get("msg_type", "request")
            err = EngineError(
                "EngineError",
                f"engine {record.id} {reason} while {pending.request_header.get('msg_id')} ({what}) was queued or running",
            )
            info = {"engine_id": record.id, "engine_uuid": record.uuid}
            parts = error_reply(err, pending.request_header, info)  # type: ignore[arg-type]
            self.store.complete(pending.msg_id, None, parts)
            if sender(pending.client, record.ident, parts[0], pending.request_header, parts[1], parts[2]):
                self.store.mark_collected(pending.msg_id)
        self.sweep_segments()  # what was addressed to it can no longer be read
        if was_live:
            self._notify("engine_unregistered", {"id": record.id, "uuid": record.uuid, "reason": reason})

    def _notify(self, msg_type: str, content: dict[str, Any]) -> None:
        try:
            self.session.send(self.notification_socket, msg_type, content)
        except zmq.ZMQError as err:
            log.warning("could not publish %s: %s", msg_type, err)

    # -- the registration channel --------------------------------------------------------------

    def _on_registration(self, socket: zmq.Socket[Any]) -> None:
        for _ in range(256):
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                idents, rest = self.session.feed_identities(frames)
            except MessageRejected as err:
                self.session.reject("registration", err)
                continue
            try:
                msg = self.session.deserialize(rest, stream=socket, channel="registration", idents=idents)
            except ProtocolVersionError as err:
                if err.header is not None and err.header.get("msg_type") == "registration_request":
                    self._reply_error(idents, "registration_reply", err.header, err)
                continue
            except MessageRejected:
                continue
            handler = self._handlers.get(msg.msg_type)
            if handler is None:
                reply_type = msg.msg_type.removesuffix("_request") + "_reply"
                self._reply_error(
                    msg.idents, reply_type, msg.header, ValueError(f"unknown request type {msg.msg_type!r}")
                )
                continue
            try:
                handler(self, msg)
            except Exception as err:  # a bad request must not stop the hub; answer it instead
                log.warning("%s from %r failed: %s", msg.msg_type, msg.idents, err)
                self._reply_error(msg.idents, msg.msg_type.removesuffix("_request") + "_reply", msg.header, err)

    def _reply(self, msg: Message, msg_type: str, content: dict[str, Any], buffers: list[Any] | None = None) -> None:
        content.setdefault("status", "ok")
        self.session.send(self.registration_socket, msg_type, content, parent=msg, ident=msg.idents, buffers=buffers)

    def _reply_error(self, idents: list[bytes], msg_type: str, parent: Mapping[str, Any], err: BaseException) -> None:
        content = dict(wrap_exception(err))
        content["traceback"] = []
        with contextlib.suppress(zmq.ZMQError):
            self.session.send(self.registration_socket, msg_type, content, parent=dict(parent), ident=idents)

    def _registration_request(self, msg: Message) -> None:
        c = msg.content
        uuid = c.get("uuid")
        if not isinstance(uuid, str) or not _UUID.match(uuid):
            raise ValueError(f"engine uuid must be 32 lowercase hex digits, not {uuid!r}")
        requested = c.get("requested_id")
        if requested is not None and (not isinstance(requested, int) or isinstance(requested, bool)):
            raise ValueError(f"requested_id must be an integer or null, not {requested!r}")
        pid = c.get("pid") if isinstance(c.get("pid"), int) else None
        record = self.engines.add(uuid, str(c.get("hostname", "")), pid, requested)
        shm = c.get("shm")
        record.shm = shm if isinstance(shm, str) and len(shm) <= _MAX_SHM_ADDRESS else ""
        record.direct = valid_direct_url(c.get("direct")) or ""
        log.info("engine %d (%s) registering from %s pid %s", record.id, uuid, record.hostname, pid)
        self._start_fast_ping()
        content: dict[str, Any] = {}
        if self.registration_extra is not None:
            content.update(self.registration_extra(record))
        content.update(id=record.id, heartbeat_period=self.heartbeat_period, heartbeat_misses=self.heartbeat_misses)
        self._reply(msg, "registration_reply", content)

    def _engine_exit(self, msg: Message) -> None:
        record = self.engines.get(str(msg.content.get("uuid")))
        if record is not None:
            code = msg.content.get("exit_code")
            sig = msg.content.get("signal")
            reason = msg.content.get("reason")
            how = describe_exit(code if isinstance(code, int) else None, sig if isinstance(sig, str) else None)
            # the supervisor may say why it ended the engine (e.g. its memory limit)
            self.lose(record, f"{how}: {reason}" if isinstance(reason, str) and reason else how)

    def _connection_request(self, msg: Message) -> None:
        live = self.engines.live()
        self._reply(
            msg,
            "connection_reply",
            {
                "engines": {str(r.id): r.uuid for r in live},
                "shm": {r.uuid: r.shm for r in live if r.shm},
                "direct": {r.uuid: r.direct for r in live if r.direct},
            },
        )

    def _queue_request(self, msg: Message) -> None:
        targets = msg.content.get("targets")
        status: dict[str, Any] = {}
        for record in self.engines.live():
            if targets is not None and record.id not in targets:
                continue
            pending = self.store.pending_on(record.uuid)
            entry: dict[str, Any] = {
                "queue": sum(1 for p in pending if p.channel == "mux"),
                "tasks": sum(1 for p in pending if p.channel == "task"),
                "completed": self.completed.get(record.uuid, 0),
            }
            if msg.content.get("verbose"):
                entry["queue"] = [p.msg_id for p in pending if p.channel == "mux"]
                entry["tasks"] = [p.msg_id for p in pending if p.channel == "task"]
            status[str(record.id)] = entry
        status["unassigned"] = self.unassigned() if self.unassigned is not None else 0
        self._reply(msg, "queue_reply", status)

    def _result_request(self, msg: Message) -> None:
        msg_ids = msg.content.get("msg_ids")
        if not isinstance(msg_ids, list) or not all(isinstance(m, str) for m in msg_ids):
            raise ValueError("result_request needs msg_ids, a list of strings")
        results: dict[str, Any] = {}
        buffers: list[Any] = []
        for msg_id in msg_ids:
            record = self.store.get(msg_id)
            if record is None:
                results[msg_id] = {"state": "expired" if self.store.is_expired(msg_id) else "unknown"}
                continue
            entry: dict[str, Any] = {
                "state": "pending",
                "request_header": record.request_header,
                "engine_uuid": record.engine,
            }
            if record.done:
                header, metadata, content, bufs = record.reply()
                if "shm" in header:
                    problem = self._map_kept(record, header, bufs)
                    if problem:
                        err = RemoteError(
                            "ResultUnavailable",
                            f"the result of {msg_id} was kept by the hub in shared memory, but {problem}: "
                            "something outside corral removed it from /dev/shm",
                        )
                        _, content, metadata = error_reply(err, record.request_header, {"engine_uuid": record.engine})
                        bufs = []
                entry.update(
                    state="completed", header=header, metadata=metadata, content=content, buffer_count=len(bufs)
                )
                buffers.extend(bufs)
            results[msg_id] = entry
        session = self._local_session(msg.content.get("shm_host"))
        if session is None:
            self._reply(msg, "result_reply", {"results": results}, buffers)
        else:
            # kept segments go as references to the same segments: the client maps them again
            parent = {**msg.header, "shm_host": msg.content["shm_host"]}
            content = {"results": results, "status": "ok"}
            session.send(
                self.registration_socket, "result_reply", content, parent=parent, ident=msg.idents, buffers=buffers
            )

    def _map_kept(self, record: Record, header: dict[str, Any], bufs: list[Any]) -> str:
        """Put the mappings of a stored reply's kept segments in ``bufs``; what is wrong, or ""."""
        header.pop("shm")
        if record.segments is None:
            return "its segments were lost when it was moved to SQLite"
        for i, name, size in record.segments:
            if i >= len(bufs):
                return f"its reply has no buffer {i}"
            try:
                bufs[i] = open_kept(name, size, self._shm_tag)
            except SegmentError as err:
                return str(err)
            touch_kept(name)  # whoever gets the name has the sweep's grace period to map it
        return ""

    def _local_session(self, address: object) -> Session | None:
        """The session that answers a client at shared-memory ``address`` on this host, or None."""
        if not isinstance(address, str) or len(address) > _MAX_SHM_ADDRESS:
            return None
        if self._shm_session is None:
            if self._shm_off or not self.session.key:
                return None  # an unsigned cluster's results travel in frames
            session = Session(
                self.session.key, scheme=self.session.scheme, buffer_frame_size=self.session.buffer_frame_size
            )
            if not session.enable_shm():
                self._shm_off = True
                return None
            self._shm_session = session
        assert self._shm_session.shm is not None
        return self._shm_session if self._shm_session.shm.local_pid(address) is not None else None

    def _purge_request(self, msg: Message) -> None:
        c = msg.content
        msg_ids = c.get("msg_ids") or []
        engine_ids = c.get("engine_ids") or []
        if not isinstance(msg_ids, list) or not all(isinstance(m, str) for m in msg_ids):
            raise ValueError("purge_request's msg_ids must be a list of strings")
        if not isinstance(engine_ids, list) or not all(isinstance(i, int) for i in engine_ids):
            raise ValueError("purge_request's engine_ids must be a list of integer engine ids")
        if c.get("all"):
            purged = self.store.purge()
            forgotten: list[str] | None = None
        else:
            engines = [self.engines.by_id[i].uuid for i in engine_ids if i in self.engines.by_id]
            purged = self.store.purge(msg_ids, engines)
            forgotten = list(msg_ids)
        for callback in self.on_purge:
            callback(forgotten)
        if purged:
            release_memory()
        self._reply(msg, "purge_reply", {"purged": purged})

    def _shutdown_request(self, msg: Message) -> None:
        self._reply(msg, "shutdown_reply", {})
        if self.on_shutdown is not None and self._reactor is not None:
            # let the reply leave before the sockets close
            self._reactor.call_later(0.05, self.on_shutdown)

    def _drops_request(self, msg: Message) -> None:
        # what the controller's sockets dropped, by channel and reason (docs/protocol.md)
        drops: dict[str, dict[str, int]] = {}
        for (channel, reason), n in sorted(self.session.rejections.items()):
            drops.setdefault(channel, {})[reason] = n
        self._reply(msg, "drops_reply", {"drops": drops})

    _handlers: ClassVar[dict[str, Callable[[Hub, Message], None]]] = {
        "registration_request": _registration_request,
        "engine_exit": _engine_exit,
        "connection_request": _connection_request,
        "queue_request": _queue_request,
        "result_request": _result_request,
        "purge_request": _purge_request,
        "shutdown_request": _shutdown_request,
        "drops_request": _drops_request,
    }
