"""The IO thread: the engine's sockets to the controller, and its control handling.

One thread owns every DEALER the engine holds towards the controller: ``mux_engine``,
``task_engine`` and ``broadcast_engine`` (requests, queued for the execution thread in arrival
order), ``control_engine`` (handled here at once, bypassing the queue), and a SUB on
``heartbeat_ping`` that lets the engine notice a controller that went away. Replies made by the
execution thread come back here to be sent (:meth:`Dispatcher.send`), because ZeroMQ sockets
must not be shared between threads.

Each DEALER's identity is the engine uuid, and each sends one ``engine_hello`` when connected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import zmq

from corral.engine.control import Control
from corral.engine.inbox import Inbox
from corral.engine.signals import block_in_this_thread
from corral.wire import ConnectionInfo, MessageRejected, Session, channel_url, harden
from corral.wire.gate import admit
from corral.wire.loop import Reactor

__all__ = ["REQUEST_CHANNELS", "Dispatcher"]

log = logging.getLogger(__name__)

#: Channels that carry requests to run, by the name replies are routed under.
REQUEST_CHANNELS: Final = ("mux", "task", "broadcast")
_REQUIRED: Final = frozenset({"mux"})
# linger of the DEALERs at close: time for a last reply (e.g. to shutdown_request) to leave
_CLOSE_LINGER_MS: Final = 1000


class Dispatcher:
    """Own the engine's controller-facing sockets in a thread.

    Parameters
    ----------
    session
        Signs and checks messages.
    context
        The ZeroMQ context for the sockets.
    info
        The connection info (addresses).
    uuid
        The engine uuid: the DEALERs' identity.
    inbox
        Where received requests are queued.
    control
        Handles control requests.
    controller_timeout
        Seconds without a heartbeat ping after which ``on_controller_lost`` is called.
    on_controller_lost
        ``on_controller_lost(reason)``; called once, in this thread.
    """

    def __init__(
        self,
        *,
        session: Session,
        context: zmq.Context[Any],
        info: ConnectionInfo,
        uuid: str,
        inbox: Inbox,
        control: Control,
        controller_timeout: float,
        on_controller_lost: Callable[[str], None],
    ) -> None:
        self.session = session
        self.context = context
        self.info = info
        self.uuid = uuid
        self.inbox = inbox
        self.control = control
        self.controller_timeout = controller_timeout
        self.on_controller_lost = on_controller_lost
        self._reactor: Reactor | None = None
        self._sockets: dict[str, zmq.Socket[Any]] = {}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped = False
        self._last_ping = time.monotonic()
        self._lost = False
        self._thread = threading.Thread(target=self._run, name="corral-engine-io", daemon=True)

    # -- from other threads ----------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Connect the sockets, send the hellos, and start serving them in a thread.

        Raises
        ------
        RuntimeError
            If the sockets cannot be set up within ``timeout`` seconds (the cause is chained).
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the engine's IO thread did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"the engine's IO thread could not start: {self._error}") from self._error

    def send(self, channel: str, frames: list[Any]) -> None:
        """Send signed ``frames`` on ``channel``'s socket (from any thread); dropped once stopped."""
        reactor = self._reactor
        if reactor is None or self._stopped:
            log.debug("engine stopped; a reply on %s is dropped", channel)
            return
        reactor.call_soon_threadsafe(self._send_now, channel, frames)

    def stop(self, timeout: float = 10.0) -> None:
        """Send what was handed over so far, close the sockets and end the thread."""
        reactor = self._reactor
        if reactor is not None and not self._stopped:
            # queued after every send handed over before: those go out first
            reactor.call_soon_threadsafe(reactor.stop)
        self._stopped = True
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the engine's IO thread did not stop within %s s", timeout)

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        block_in_this_thread()
        try:
            reactor = Reactor(self.context)
        except Exception as err:
            self._error = err
            self._ready.set()
            return
        try:
            self._setup(reactor)
        except Exception as err:
            self._error = err
            self._close(reactor)
            self._ready.set()
            return
        self._reactor = reactor
        self._ready.set()
        try:
            reactor.run()
        finally:
            self._stopped = True
            self._close(reactor)

    def _socket(self, kind: int, channel: str) -> zmq.Socket[Any]:
        # the engine only connects out, to the controller's gate (admit: the key-derived token),
        # so no stranger can reach these sockets; no frame-size limit (pushing large arrays is
        # legitimate)
        sock = admit(harden(self.context.socket(kind), max_frame_size=None), self.session.key)
        self._sockets[channel] = sock
        return sock

    def _setup(self, reactor: Reactor) -> None:
        identity = self.uuid.encode("ascii")
        ports = self.info["ports"]
        for channel in REQUEST_CHANNELS:
            name = f"{channel}_engine"
            if name not in ports and channel not in _REQUIRED:
                log.debug("the connection file has no %s channel; not serving it", name)
                continue
            url = channel_url(self.info, name)
            sock = self._socket(zmq.DEALER, channel)
            sock.setsockopt(zmq.IDENTITY, identity)
            sock.connect(url)
            reactor.add_socket(sock, self._make_request_handler(channel))
        control = self._socket(zmq.DEALER, "control")
        control.setsockopt(zmq.IDENTITY, identity)
        control.connect(channel_url(self.info, "control_engine"))
        reactor.add_socket(control, self._on_control)
        pings = self._socket(zmq.SUB, "heartbeat")
        pings.setsockopt(zmq.SUBSCRIBE, b"")
        pings.connect(channel_url(self.info, "heartbeat_ping"))
        reactor.add_socket(pings, self._on_ping)
        for channel, sock in self._sockets.items():
            if channel != "heartbeat":
                self.session.send(sock, "engine_hello", {"uuid": self.uuid})
        self._last_ping = time.monotonic()
        reactor.call_every(min(1.0, max(self.controller_timeout / 4, 0.05)), self._check_controller)

    def _close(self, reactor: Reactor) -> None:
        for channel, sock in self._sockets.items():
            reactor.remove_socket(sock)
            sock.close(linger=0 if channel == "heartbeat" else _CLOSE_LINGER_MS)
        self._sockets.clear()
        reactor.close()

    # -- handlers (in the thread) ------------------------------------------------------------

    def _make_request_handler(self, channel: str) -> Callable[[zmq.Socket[Any]], None]:
        session = self.session
        inbox = self.inbox

        def on_request(sock: zmq.Socket[Any]) -> None:
            while True:
                try:
                    msg = session.recv(sock, zmq.NOBLOCK, channel=channel)
                except zmq.Again:
                    return
                except MessageRejected:
                    continue  # counted and logged by the session; never executed
                inbox.put(channel, msg)

        return on_request

    def _on_control(self, sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                msg = self.session.recv(sock, zmq.NOBLOCK, channel="control")
            except zmq.Again:
                return
            except MessageRejected:
                continue
            reply = self.control.handle(msg)
            meta = {**self.control.engine_info, "status": reply.content.get("status")}
            try:
                self.session.send(sock, reply.msg_type, reply.content, parent=msg, ident=msg.idents, metadata=meta)
            except zmq.ZMQError as err:
                log.warning("could not send %s: %s", reply.msg_type, err)
            if reply.after is not None:
                reply.after()

    def _on_ping(self, sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._last_ping = time.monotonic()

    def _check_controller(self) -> None:
        silent = time.monotonic() - self._last_ping
        if self._lost or silent <= self.controller_timeout:
            return
        self._lost = True
        url = channel_url(self.info, "heartbeat_ping")
        reason = f"no heartbeat from the controller at {url} for {silent:.1f} s (controller_timeout={self.controller_timeout:g} s)"
        self.on_controller_lost(reason)

    def _send_now(self, channel: str, frames: list[Any]) -> None:
        sock = self._sockets.get(channel)
        if sock is None:
            log.warning("no socket for channel %s; a reply is dropped", channel)
            return
        try:
            sock.send_multipart(frames, copy=False)
        except zmq.ZMQError as err:
            log.warning("could not send a reply on %s: %s", channel, err)
