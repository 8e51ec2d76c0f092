"""The IO thread (the control thread): control requests, and watching the controller.

This thread owns the engine's ``control_engine`` DEALER (identity: the engine uuid; it sends
``engine_hello`` when connected) and handles control requests as soon as they arrive, whatever
the execution thread is doing: they bypass the request queue. It also owns a SUB on
``heartbeat_ping``, which lets the engine notice a controller that went away: after
``controller_timeout`` seconds without a ping it calls ``on_controller_lost``.

The request sockets belong to the execution thread (:mod:`corral.engine.shell`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import zmq

from corral.engine.control import Control
from corral.engine.refusal import answer_refused
from corral.engine.signals import block_in_this_thread
from corral.wire import ConnectionInfo, MessageRejected, Session, channel_url, harden
from corral.wire.gate import admit
from corral.wire.loop import Reactor

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

# linger of the control DEALER at close: time for a last reply (e.g. to shutdown_request) to leave
_CLOSE_LINGER_MS: Final = 1000


class Dispatcher:
    """Handle control requests and watch the controller's heartbeats, in a thread.

    Parameters
    ----------
    session
        Signs and checks messages.
    context
        The ZeroMQ context for the sockets.
    info
        The connection info (addresses).
    uuid
        The engine uuid: the control DEALER's identity.
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
        control: Control,
        controller_timeout: float,
        on_controller_lost: Callable[[str], None],
        on_controller_restarted: Callable[[], None] | None = None,
    ) -> None:
        self.session = session
        self.context = context
        self.info = info
        self.uuid = uuid
        self.control = control
        self.controller_timeout = controller_timeout
        self.on_controller_lost = on_controller_lost
        self.on_controller_restarted = on_controller_restarted
        # the controller's run, as its pings name it: a controller restarted at the same address
        # pings with another, which is how the engine notices it
        self._incarnation = b""
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
        """Connect the sockets, send the hello, and start serving them in a thread.

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

    def stop(self, timeout: float = 10.0) -> None:
        """Close the sockets and end the thread."""
        reactor = self._reactor
        if reactor is not None and not self._stopped:
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
        # the engine only connects out, to the controller's gate (admit: the key-derived token)
        sock = admit(harden(self.context.socket(kind)), self.session.key, self.info.get("curve_public_key"))
        self._sockets[channel] = sock
        return sock

    def _setup(self, reactor: Reactor) -> None:
        control = self._socket(zmq.DEALER, "control")
        control.setsockopt(zmq.IDENTITY, self.uuid.encode("ascii"))
        control.connect(channel_url(self.info, "control_engine"))
        reactor.add_socket(control, self._on_control)
        pings = self._socket(zmq.SUB, "heartbeat")
        pings.setsockopt(zmq.SUBSCRIBE, b"")
        pings.connect(channel_url(self.info, "heartbeat_ping"))
        reactor.add_socket(pings, self._on_ping)
        self.session.send(control, "engine_hello", {"uuid": self.uuid})
        self._last_ping = time.monotonic()
        reactor.call_every(min(1.0, max(self.controller_timeout / 4, 0.05)), self._check_controller)

    def _close(self, reactor: Reactor) -> None:
        for channel, sock in self._sockets.items():
            reactor.remove_socket(sock)
            sock.close(linger=0 if channel == "heartbeat" else _CLOSE_LINGER_MS)
        self._sockets.clear()
        reactor.close()

    # -- handlers (in the thread) ------------------------------------------------------------

    def _on_control(self, sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                msg = self.session.recv(sock, zmq.NOBLOCK, channel="control")
            except zmq.Again:
                return
            except MessageRejected as err:
                # counted and logged by the session; never acted on, but answered when authentic
                info = self.control.engine_info
                answer_refused(
                    self.session, sock, err, {"engine_id": info["engine_id"], "engine_uuid": info["engine_uuid"]}
                )
                continue
            reply = self.control.handle(msg)
            meta = {**self.control.engine_info, "status": reply.content.get("status")}
            out = self.session.msg(reply.msg_type, reply.content, parent=msg, metadata=meta)
            out.header["status"] = meta["status"]  # type: ignore[typeddict-unknown-key]
            try:
                self.session.send(sock, out, ident=msg.idents)
            except zmq.ZMQError as err:
                log.warning("could not send %s: %s", reply.msg_type, err)
            if reply.after is not None:
                reply.after()

    def _on_ping(self, sock: zmq.Socket[Any]) -> None:
        restarted = False
        while True:
            try:
                ping = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._last_ping = time.monotonic()
            incarnation = ping.partition(b":")[2][:16]
            if incarnation and self._incarnation and incarnation != self._incarnation:
                restarted = True
            if incarnation:
                self._incarnation = incarnation
        if restarted and self.on_controller_restarted is not None:
            log.warning("the controller's pings name another run: it was restarted; registering again")
            self.on_controller_restarted()

    def say_hello(self) -> None:
        """Send ``engine_hello`` on the control socket again (from any thread)."""
        reactor = self._reactor
        if reactor is None:
            return

        def hello() -> None:
            sock = self._sockets.get("control")
            if sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    self.session.send(sock, "engine_hello", {"uuid": self.uuid})

        reactor.call_soon_threadsafe(hello)

    def _check_controller(self) -> None:
        silent = time.monotonic() - self._last_ping
        if self._lost or silent <= self.controller_timeout:
            return
        self._lost = True
        url = channel_url(self.info, "heartbeat_ping")
        reason = (
            f"no heartbeat from the controller at {url} for {silent:.1f} s "
            f"(controller_timeout={self.controller_timeout:g} s)"
        )
        log.warning("%s; stopping", reason)
        self.on_controller_lost(reason)
