"""The client's IO thread: the one owner of its sockets, running a corral.wire Reactor.

ZeroMQ sockets are not thread-safe, so every send and receive happens in this thread. User
threads build and sign messages themselves (serialization errors surface in the caller) and
hand the finished frames over with ``Reactor.call_soon_threadsafe``. Replies are checked,
unpickled and stored here, and each waiting result is woken through its own condition
variable (the ``concurrent.futures.Future`` it is): no polling, no sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Final

import zmq

from corral.client._connection import CHANNEL_KINDS, connect_socket
from corral.client._engines import EngineTable
from corral.client._store import Request, ResultStore
from corral.wire.connection import ConnectionInfo
from corral.wire.errors import CorralError, EngineError, MessageRejected
from corral.wire.loop import Reactor
from corral.wire.message import Message
from corral.wire.session import Session

__all__ = ["STRANDED_GRACE", "IOThread"]

log = logging.getLogger(__name__)

#: Seconds after an engine leaves before its unanswered requests fail here with EngineError.
#: The controller is expected to fail them first; this only stops a result from hanging
#: forever if that reply never comes.
STRANDED_GRACE: Final = 1.0

_REPLY_CHANNELS: Final = ("mux", "control", "task", "broadcast")


class IOThread:
    """Own the client's sockets in one thread; send, receive, route replies and notifications.

    Parameters
    ----------
    context
        ZeroMQ context for the sockets.
    info
        The connection info naming the controller's ports.
    session
        The client's Session (signs what is sent, checks what is received).
    store
        Where replies and output go.
    engines
        The engine table that notifications update.

    Raises
    ------
    zmq.ZMQError, ConnectionFileError
        If a socket cannot be opened or connected; nothing is left open.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        info: ConnectionInfo,
        session: Session,
        store: ResultStore,
        engines: EngineTable,
    ) -> None:
        self.session = session
        self.store = store
        self.engines = engines
        self.reactor = Reactor(context)
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        self._queries: dict[str, Future[Message]] = {}
        curve = zmq.curve_keypair() if info.get("curve_public_key") else None
        try:
            for channel in CHANNEL_KINDS:
                self.sockets[channel] = connect_socket(context, info, channel, curve, session.key)
        except BaseException:
            self._close_sockets()
            self.reactor.close()
            raise
        self.reactor.add_socket(self.sockets["registration"], self._on_registration)
        for channel in _REPLY_CHANNELS:
            self.reactor.add_socket(self.sockets[channel], self._on_replies)
        self.reactor.add_socket(self.sockets["iopub"], self._on_output)
        self.reactor.add_socket(self.sockets["notification"], self._on_notification)
        self._channel_of = {sock: name for name, sock in self.sockets.items()}
        self.thread = threading.Thread(target=self._run, name="corral-client-io", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def _run(self) -> None:
        try:
            self.reactor.run()
        finally:
            self._close_sockets()
            self.reactor.close()
            for fut in list(self._queries.values()):
                if not fut.done():
                    fut.set_exception(RuntimeError("the client was closed"))

    def _close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close(linger=0)

    @property
    def in_io_thread(self) -> bool:
        """True when called from this IO thread (where waiting for a result would deadlock)."""
        return threading.get_ident() == self.thread.ident

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self.thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for the thread; sockets are closed in the thread itself."""
        if self.thread.ident is None:  # never started: nothing runs that could close them
            self._close_sockets()
            self.reactor.close()
            return
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and not self.in_io_thread:
            # repeated: a stop() that lands before run() has set itself running is overridden
            self.reactor.stop()
            self.thread.join(0.05)
            if time.monotonic() > deadline:
                log.warning("the client IO thread did not stop within %s s", timeout)
                return
        if self.in_io_thread:
            self.reactor.stop()

    # -- from user threads ---------------------------------------------------------------------

    def send(
        self,
        channel: str,
        frames: Sequence[Sequence[Any]],
        requests: Sequence[Request],
        sent: threading.Event | None,
    ) -> None:
        """Send signed multipart messages on ``channel`` from the IO thread, in order.

        ``sent`` is set once ZeroMQ has taken them; if a send fails, ``requests`` fail with
        the error instead of waiting forever.
        """
        self.reactor.call_soon_threadsafe(self._send, channel, frames, requests, sent)

    def query(self, msg_type: str, content: dict[str, Any]) -> tuple[str, Future[Message]]:
        """Send a request to the hub (``registration`` channel); the future gets its reply.

        Returns the request's msg_id (for :meth:`forget`) and the future.
        """
        msg = self.session.msg(msg_type, content)
        frames = self.session.serialize(msg)
        fut: Future[Message] = Future()
        self._queries[msg.msg_id] = fut
        self.reactor.call_soon_threadsafe(self._send_query, frames, msg.msg_id)
        return msg.msg_id, fut

    def forget(self, msg_id: str) -> None:
        """Stop waiting for the reply to a query (it timed out); a late reply is dropped."""
        self._queries.pop(msg_id, None)

    def flush(self, timeout: float | None) -> bool:
        """Handle everything already received; False if the IO thread did not answer in time."""
        if self.in_io_thread:
            self._drain_all()
            return True
        done = threading.Event()
        self.reactor.call_soon_threadsafe(self._flush, done)
        return done.wait(timeout)

    # -- in the IO thread ----------------------------------------------------------------------

    def _send(
        self,
        channel: str,
        frames: Sequence[Sequence[Any]],
        requests: Sequence[Request],
        sent: threading.Event | None,
    ) -> None:
        sock = self.sockets[channel]
        try:
            for parts in frames:
                # never block the IO thread: a DEALER without a connection (e.g. refused by the
                # controller's gate) would block a plain send forever
                sock.send_multipart(parts, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            err = CorralError(
                f"cannot send on the {channel} channel: there is no connection to the controller "
                "(it refused this client's key, or is not running)"
            )
            log.error("%s", err)
            for req in requests:
                self.store.complete(req, error=err)
        except Exception as err:
            log.error("sending on %s failed: %s", channel, err)
            for req in requests:
                self.store.complete(req, error=err)
        if sent is not None:
            sent.set()

    def _send_query(self, frames: Sequence[Any], msg_id: str) -> None:
        try:
            self.sockets["registration"].send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            fut = self._queries.pop(msg_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(
                    CorralError(
                        "cannot reach the controller's registration channel: no connection "
                        "(it refused this client's key, or is not running)"
                    )
                )
        except Exception as err:
            fut = self._queries.pop(msg_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(err)

    def _flush(self, done: threading.Event) -> None:
        try:
            self._drain_all()
        finally:
            done.set()

    def _drain_all(self) -> None:
        self._on_registration(self.sockets["registration"])
        for channel in _REPLY_CHANNELS:
            self._on_replies(self.sockets[channel])
        self._on_output(self.sockets["iopub"])
        self._on_notification(self.sockets["notification"])

    def _recv_all(self, sock: zmq.Socket[Any]) -> list[Message]:
        channel = self._channel_of[sock]
        out = []
        while True:
            try:
                out.append(self.session.recv(sock, zmq.NOBLOCK, channel=channel))
            except zmq.Again:
                return out
            except MessageRejected:
                continue  # counted and logged by the Session

    def _on_replies(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv_all(sock):
            self.store.handle_reply(msg)

    def _on_output(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv_all(sock):
            self.store.handle_output(msg)

    def _on_registration(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv_all(sock):
            fut = self._queries.pop(str(msg.parent_header.get("msg_id")), None)
            if fut is None:
                log.debug("unexpected %s on the registration channel", msg.msg_type)
            elif not fut.done():
                fut.set_result(msg)

    def _on_notification(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv_all(sock):
            content = msg.content
            try:
                eid = int(content["id"])
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring a %s notification without an engine id", msg.msg_type)
                continue
            if msg.msg_type == "engine_registered":
                uuid = content.get("uuid")
                if not isinstance(uuid, str) or not uuid:
                    log.warning("ignoring engine_registered for engine %d without a uuid", eid)
                    continue
                self.engines.register(eid, uuid)
            elif msg.msg_type == "engine_unregistered":
                sent_uuid = content.get("uuid") if isinstance(content.get("uuid"), str) else None
                uuid = self.engines.unregister(eid, sent_uuid) or str(sent_uuid or "")
                reason = str(content.get("reason") or "unregistered")
                self.reactor.call_later(STRANDED_GRACE, self._fail_stranded, eid, uuid, reason)

    def _fail_stranded(self, eid: int, uuid: str, reason: str) -> None:
        def error(req: Request) -> EngineError:
            return EngineError(
                "EngineError",
                f"engine {eid} left the cluster ({reason}) before answering {req.msg_type} {req.msg_id}",
                "",
                {"engine_id": eid, "engine_uuid": uuid},
            )

        n = self.store.fail_pending(lambda r: r.engine_uuid == uuid, error)
        if n:
            log.warning("%d request(s) to engine %d failed: it left (%s) and no reply came", n, eid, reason)
