"""Direct routing: the MUX and control relays between clients and chosen engines.

A client addresses an engine by putting the engine's uuid as the first routing identity::

    client DEALER sends         [engine_uuid, DELIM, sig, header, ...]
    client-facing ROUTER gets   [client_id, engine_uuid, DELIM, ...]
    engine-facing ROUTER sends  [engine_uuid, client_id, DELIM, sig', ...]

and replies come back the same way reversed. Clients that reach an engine's own socket send it
direct requests without the controller; the engine then sends records of them here, on its
``mux_engine`` connection (identities ``[client, DIRECT_REQUEST_RECORD]`` and
``[client, DIRECT_REPLY_RECORD]``), which the relay reports to the hub like what it routes
itself, and does not forward. The relay checks each message's signature and
decodes only its header (:meth:`Session.deserialize_raw`), reports it to the hub, and forwards
the frames untouched with a fresh envelope (:meth:`Session.forward`): payloads are never
decoded, hashed or copied here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import zmq

from corral.scheduler.monitor import Monitor, NullMonitor
from corral.wire import MessageRejected, RawMessage, Session
from corral.wire.errors import EngineError, error_reply
from corral.wire.frames import recv_frames
from corral.wire.loop import Reactor
from corral.wire.protocol import DIRECT_REPLY_RECORD, DIRECT_REQUEST_RECORD

__all__ = ["DirectRelay", "drain"]

log = logging.getLogger(__name__)

#: At most this many messages are handled per socket before the loop looks at other sockets.
BATCH = 256

_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_zmq_poll = zmq.zmq_poll


def drain(socket: zmq.Socket[Any], limit: int = BATCH) -> list[list[Any]]:
    """Receive up to ``limit`` waiting multipart messages without blocking.

    Routing identities, signature and JSON frames come as ``bytes``, buffer frames as zero-copy
    ``zmq.Frame`` objects (:func:`corral.wire.frames.recv_frames`).
    """
    out = []
    waiting = [(socket, _POLLIN)]
    for _ in range(limit):
        try:
            out.append(recv_frames(socket, _NOBLOCK))
        except zmq.Again:  # a spurious wake-up
            break
        # asking is cheaper than a receive that raises zmq.Again (an exception per drain, and
        # most drains find one message)
        if not _zmq_poll(waiting, 0):
            break
    return out


class DirectRelay:
    """Relay requests from clients to the engine they name, and replies back.

    Parameters
    ----------
    channel
        ``"mux"`` or ``"control"``: the name used in counts, logs and monitor calls.
    session
        The controller's session (same key as every peer).
    client_socket, engine_socket
        Bound ROUTER sockets facing clients and engines.
    monitor
        The hub, told about every request and reply.

    Attributes
    ----------
    on_request
        Called with each request this relay accepts, before it is forwarded (the controller
        shows ``control``'s ``abort_request`` to the task scheduler this way); None: nothing.
    """

    def __init__(
        self,
        channel: str,
        session: Session,
        client_socket: zmq.Socket[Any],
        engine_socket: zmq.Socket[Any],
        monitor: Monitor | None = None,
    ) -> None:
        self.channel = channel
        self.session = session
        self.client_socket = client_socket
        self.engine_socket = engine_socket
        self.monitor: Monitor = monitor or NullMonitor()
        self.on_request: Callable[[RawMessage], object] | None = None
        #: uuid bytes -> engine id, for engines requests may be routed to
        self.engines: dict[bytes, int] = {}
        for sock in (client_socket, engine_socket):
            # a send to a peer that has gone raises instead of vanishing silently, and a busy
            # peer's queue never blocks the controller (requests queue in ZeroMQ, not here)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
        # clients name their mux connection (the direct path's records and acks are addressed
        # by that name): a client that reconnects takes its name over from the stale connection
        client_socket.setsockopt(zmq.ROUTER_HANDOVER, 1)

    def register(self, reactor: Reactor) -> None:
        """Start relaying on ``reactor``."""
        reactor.add_socket(self.client_socket, self._from_clients)
        reactor.add_socket(self.engine_socket, self._from_engines)

    def add_engine(self, uuid: bytes, engine_id: int) -> None:
        """Allow requests to ``uuid``."""
        self.engines[uuid] = engine_id

    def remove_engine(self, uuid: bytes) -> None:
        """Refuse further requests to ``uuid``."""
        self.engines.pop(uuid, None)

    # -- client -> engine ------------------------------------------------------------------

    def _from_clients(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel=self.channel)
            except MessageRejected:
                continue  # counted and logged by the session
            if len(raw.idents) != 2:
                session.reject(
                    self.channel, MessageRejected("malformed", "a request needs client and engine identities")
                )
                continue
            client, engine = raw.idents
            if engine not in self.engines:
                self.fail(client, engine, raw.header, f"engine {engine.decode(errors='replace')} is not registered")
                continue
            self.monitor.request(self.channel, raw, client, engine)
            if self.on_request is not None:
                self.on_request(raw)
            try:
                session.forward(self.engine_socket, raw, idents=[engine, client])
            except zmq.ZMQError as err:  # EHOSTUNREACH: the engine's connection is gone
                self.fail(client, engine, raw.header, f"engine {self.engines.get(engine)} is unreachable ({err})")

    def fail(
        self,
        client: bytes,
        engine: bytes,
        request_header: Mapping[str, Any],
        reason: str,
        engine_id: int | None = None,
    ) -> bool:
        """Answer a request with an :class:`EngineError` reply instead of routing it.

        Returns
        -------
        bool
            Whether the client's connection took the reply.
        """
        eid = engine_id if engine_id is not None else self.engines.get(engine)
        info: dict[str, Any] = {"engine_uuid": engine.decode(errors="replace")}
        if eid is not None:
            info["engine_id"] = eid
        msg_type, content, metadata = error_reply(EngineError("EngineError", reason), dict(request_header), info)  # type: ignore[arg-type]
        return self.send_reply(client, engine, msg_type, dict(request_header), content, metadata)

    def send_reply(
        self,
        client: bytes,
        engine: bytes,
        msg_type: str,
        parent: dict[str, Any],
        content: dict[str, Any],
        metadata: dict[str, Any],
    ) -> bool:
        """Send a reply made by the controller (not an engine) to ``client``.

        Returns
        -------
        bool
            Whether the client's connection took it (False if the client is gone).
        """
        try:
            self.session.send(
                self.client_socket, msg_type, content, parent=parent, ident=[client, engine], metadata=metadata
            )
        except zmq.ZMQError:
            log.info("client of %s left before its reply could be sent", parent.get("msg_id"))
            return False
        return True

    # -- engine -> client ------------------------------------------------------------------

    def _from_engines(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel=f"{self.channel}_engine")
            except MessageRejected:
                continue
            if raw.msg_type == "engine_hello":
                self.monitor.hello(self.channel, raw.idents[0])
                continue
            if len(raw.idents) == 3:
                self._record(raw)
                continue
            if len(raw.idents) != 2:
                session.reject(
                    f"{self.channel}_engine", MessageRejected("malformed", "a reply needs engine and client identities")
                )
                continue
            engine, client = raw.idents
            if not self.monitor.reply(self.channel, raw, client, engine):
                continue
            self.deliver(client, engine, raw)

    def _record(self, raw: RawMessage) -> None:
        """Report what an engine says went over its direct socket; forward nothing."""
        engine, client, mark = raw.idents
        if engine not in self.engines:
            log.debug("a direct-path record from unregistered engine %r is ignored", engine)
            return
        if mark == DIRECT_REQUEST_RECORD:
            self.monitor.request(self.channel, raw, client, engine)
        elif mark == DIRECT_REPLY_RECORD:
            if self.monitor.reply(self.channel, raw, client, engine):
                self.monitor.delivered(self.channel, raw, client, True)
        else:
            self.session.reject(
                f"{self.channel}_engine", MessageRejected("malformed", "a reply needs engine and client identities")
            )

    def deliver(self, client: bytes, engine: bytes, raw: RawMessage) -> bool:
        """Forward a reply to ``client``; return whether its connection took it."""
        try:
            self.session.forward(self.client_socket, raw, idents=[client, engine])
        except zmq.ZMQError:
            self.monitor.delivered(self.channel, raw, client, False)
            return False
        self.monitor.delivered(self.channel, raw, client, True)
        return True
