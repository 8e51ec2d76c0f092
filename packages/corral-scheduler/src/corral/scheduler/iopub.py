"""The output relay: engines' PUB messages, checked and re-published to every client."""

from __future__ import annotations

from typing import Any

import zmq

from corral.scheduler.monitor import Monitor, NullMonitor
from corral.scheduler.relay import drain
from corral.wire import MessageRejected, Session
from corral.wire.loop import Reactor

__all__ = ["IOPubRelay"]


class IOPubRelay:
    """Relay engine output from a bound SUB (``iopub_engine``) to a bound PUB (``iopub``).

    Parameters
    ----------
    session
        The controller's session.
    engine_socket
        Bound SUB socket engines publish to (subscribed to everything here).
    client_socket
        Bound PUB socket clients subscribe to.
    monitor
        The hub, told about every output message.
    """

    def __init__(
        self,
        session: Session,
        engine_socket: zmq.Socket[Any],
        client_socket: zmq.Socket[Any],
        monitor: Monitor | None = None,
    ) -> None:
        self.session = session
        self.engine_socket = engine_socket
        self.client_socket = client_socket
        self.monitor: Monitor = monitor or NullMonitor()
        engine_socket.setsockopt(zmq.SUBSCRIBE, b"")

    def register(self, reactor: Reactor) -> None:
        """Start relaying on ``reactor``."""
        reactor.add_socket(self.engine_socket, self._relay)

    def _relay(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel="iopub_engine")
            except MessageRejected:
                continue
            self.monitor.output(raw)
            session.forward(self.client_socket, raw, idents=raw.idents)
