"""The broadcast scheduler: one request from a client reaches many engines.

A client sends one request on ``broadcast`` naming its engines in ``header["sched"]["targets"]``
(engine ids; null or absent: every engine). The scheduler sends each engine the same frames with
a new envelope, and forwards every engine's reply to the client as it comes::

    client DEALER sends              [DELIM, sig, header, ...]
    broadcast ROUTER receives        [client_id, DELIM, ...]
    broadcast_engine ROUTER sends    [engine_uuid, client_id, DELIM, sig', ...]   (per engine)
    broadcast ROUTER sends           [client_id, DELIM, ...reply]                 (per engine)

Replies share the request's msg_id as their parent; their metadata's ``engine_id`` tells them
apart. A target that is not a live engine, or an engine that leaves before replying, gets an
``EngineError`` reply made here, so the client gets exactly one reply per target.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import zmq

from corral.scheduler.monitor import Monitor, NullMonitor
from corral.scheduler.relay import drain
from corral.wire import MessageRejected, Session
from corral.wire.errors import EngineError, error_reply
from corral.wire.session import parent_msg_id

__all__ = ["BroadcastScheduler"]

log = logging.getLogger(__name__)


class BroadcastScheduler:
    """Send each ``broadcast`` request to every engine it names, and each reply back.

    Parameters
    ----------
    session
        The controller's session.
    client_socket, engine_socket
        Bound ROUTER sockets facing clients (``broadcast``) and engines (``broadcast_engine``).
    monitor
        The hub, told of engines' hellos. Broadcast requests are not kept in the hub's result
        store (one msg_id has one reply per engine there is no record for).
    """

    channel = "broadcast"

    def __init__(
        self,
        session: Session,
        client_socket: zmq.Socket[Any],
        engine_socket: zmq.Socket[Any],
        monitor: Monitor | None = None,
    ) -> None:
        self.session = session
        self.client_socket = client_socket
        self.engine_socket = engine_socket
        self.monitor: Monitor = monitor or NullMonitor()
        #: live engines: uuid bytes -> engine id
        self.engines: dict[bytes, int] = {}
        #: engines whose broadcast_engine socket said hello
        self.connected: set[bytes] = set()
        #: (msg_id, engine uuid) -> (client, request header), for requests without a reply yet
        self.pending: dict[tuple[str, bytes], tuple[bytes, Mapping[str, Any]]] = {}
        #: replies dropped because no request of theirs was pending (late or unknown)
        self.dropped: Counter[str] = Counter()
        for sock in (client_socket, engine_socket):
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)

    def register(self, reactor: Any) -> None:
        """Start relaying on ``reactor`` (a :class:`corral.wire.loop.Reactor`)."""
        reactor.add_socket(self.client_socket, self._from_clients)
        reactor.add_socket(self.engine_socket, self._from_engines)

    def add_engine(self, uuid: bytes, engine_id: int) -> None:
        """Include ``uuid`` in broadcasts."""
        self.engines[uuid] = engine_id

    def engine_lost(self, uuid: bytes, reason: str = "left") -> None:
        """``uuid`` is gone: answer each request it had not replied to with :class:`EngineError`."""
        engine_id = self.engines.pop(uuid, None)
        self.connected.discard(uuid)
        for key in [k for k in self.pending if k[1] == uuid]:
            client, header = self.pending.pop(key)
            what = header.get("msg_type", "request")
            self._fail(
                client,
                header,
                uuid,
                engine_id,
                f"engine {engine_id} {reason} while {key[0]} ({what}) was queued or running",
            )

    def _fail(self, client: bytes, header: Mapping[str, Any], uuid: bytes, engine_id: int | None, reason: str) -> None:
        info: dict[str, Any] = {"engine_uuid": uuid.decode(errors="replace")}
        if engine_id is not None:
            info["engine_id"] = engine_id
        msg_type, content, metadata = error_reply(EngineError("EngineError", reason), dict(header), info)  # type: ignore[arg-type]
        try:
            self.session.send(
                self.client_socket, msg_type, content, parent=dict(header), ident=[client], metadata=metadata
            )
        except zmq.ZMQError:
            log.info("client of broadcast %s left before its reply could be sent", header.get("msg_id"))

    def _from_clients(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel="broadcast")
            except MessageRejected:
                continue
            if len(raw.idents) != 1:
                session.reject("broadcast", MessageRejected("malformed", "a broadcast needs exactly one identity"))
                continue
            client = raw.idents[0]
            sched = raw.header.get("sched")
            targets = sched.get("targets") if isinstance(sched, dict) else None
            if targets is None:
                # live engines: their sockets are connected (a live engine said hello on mux and
                # control after connecting all four), and an unreachable one is answered below
                chosen = sorted(self.engines, key=self.engines.__getitem__)
                missing: list[Any] = []
            else:
                if isinstance(targets, int) and not isinstance(targets, bool):
                    targets = [targets]
                if not isinstance(targets, list):
                    targets = [targets]
                by_id = {i: u for u, i in self.engines.items()}
                chosen = [by_id[t] for t in targets if isinstance(t, int) and t in by_id]
                missing = [t for t in targets if not (isinstance(t, int) and t in by_id)]
            header = raw.header
            msg_id = raw.msg_id
            for target in missing:
                self._fail(client, header, b"", None, f"engine {target!r} is not registered")
            for engine in chosen:
                self.pending[(msg_id, engine)] = (client, header)
                try:
                    session.forward(self.engine_socket, raw, idents=[engine, client])
                except zmq.ZMQError as err:
                    self.pending.pop((msg_id, engine), None)
                    self._fail(
                        client,
                        header,
                        engine,
                        self.engines.get(engine),
                        f"engine {self.engines.get(engine)} is unreachable ({err})",
                    )

    def _from_engines(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel="broadcast_engine")
            except MessageRejected:
                continue
            if raw.msg_type == "engine_hello":
                engine = raw.idents[0] if raw.idents else b""
                self.monitor.hello("broadcast", engine)
                self.connected.add(engine)
                continue
            if len(raw.idents) != 2:
                session.reject(
                    "broadcast_engine", MessageRejected("malformed", "a reply needs engine and client identities")
                )
                continue
            engine, client = raw.idents
            msg_id = parent_msg_id(raw)
            if msg_id is None or self.pending.pop((msg_id, engine), None) is None:
                self.dropped["late"] += 1
                continue
            try:
                session.forward(self.client_socket, raw, idents=[client])
            except zmq.ZMQError:
                log.info("client of broadcast %s left before its reply could be sent", msg_id)
