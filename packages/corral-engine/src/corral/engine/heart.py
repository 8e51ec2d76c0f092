"""The engine's heart: echoes the hub's heartbeat pings without Python.

A pyzmq :class:`~zmq.devices.ThreadDevice` runs ``zmq_proxy`` in a thread: pings arrive on a SUB
socket connected to ``heartbeat_ping`` and go straight out, unchanged, on a DEALER connected to
``heartbeat_pong`` whose identity is the engine's uuid. The proxy runs in C with the GIL
released, so an engine busy in user code that holds the GIL still answers, and the hub does
not mistake a long computation for a dead engine.
"""

from __future__ import annotations

import logging
from typing import Any

import zmq
from zmq.devices import ThreadDevice

from corral.engine.signals import block_in_this_thread
from corral.wire.gate import gate_options

__all__ = ["Heart"]

log = logging.getLogger(__name__)


class _HeartDevice(ThreadDevice):
    """A ThreadDevice whose thread leaves SIGINT and SIGTERM to the main thread."""

    def run(self) -> None:
        block_in_this_thread()
        try:
            super().run()
        except zmq.ZMQError as err:  # the context was terminated before the proxy started
            log.debug("the heart stopped before it started: %s", err)


class Heart:
    """Echo heartbeat pings from ``ping_url`` to ``pong_url``.

    The device gets its own ZeroMQ context, so that :meth:`stop` can end it by terminating that
    context without touching any other socket of the process.

    Parameters
    ----------
    ping_url
        The controller's ``heartbeat_ping`` PUB address.
    pong_url
        The controller's ``heartbeat_pong`` ROUTER address.
    identity
        The engine's uuid as bytes: the hub knows whose pong it is by this identity.
    key
        The cluster key: both sockets present its gate token to the controller (none if empty).
    curve_server_key
        The controller's CurveZMQ public key, when the connection file has one: both sockets
        are then CurveZMQ clients with the key pair derived from ``key``.
    """

    def __init__(
        self, ping_url: str, pong_url: str, identity: bytes, key: bytes = b"", curve_server_key: str | None = None
    ) -> None:
        self.ping_url = ping_url
        self.pong_url = pong_url
        self.identity = identity
        self._context: zmq.Context[Any] = zmq.Context()
        self._device = _HeartDevice(zmq.FORWARDER, zmq.SUB, zmq.DEALER)
        context = self._context
        self._device.context_factory = lambda: context
        self._device.daemon = True
        self._device.setsockopt_in(zmq.LINGER, 0)
        self._device.setsockopt_in(zmq.SUBSCRIBE, b"")
        self._device.setsockopt_out(zmq.LINGER, 0)
        self._device.setsockopt_out(zmq.IDENTITY, identity)
        # pass the controller's connection gate, as corral.wire.gate.admit does
        for option, value in gate_options(key, curve_server_key):
            self._device.setsockopt_in(option, value)
            self._device.setsockopt_out(option, value)
        self._device.connect_in(ping_url)
        self._device.connect_out(pong_url)
        self._started = False

    def start(self) -> None:
        """Start echoing in a background thread."""
        self._device.start()
        self._started = True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop echoing: terminate the device's context, which ends its proxy, and join it."""
        self._context.term()  # the proxy sees ETERM, closes its sockets, and term returns
        if self._started:
            self._device.join(timeout)
            if self._device.launcher is not None and self._device.launcher.is_alive():
                log.warning("the heart thread did not stop within %s s", timeout)
