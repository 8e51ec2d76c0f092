"""The engine's own request socket: clients send direct requests here, not via the controller.

A direct (``mux``) round trip through the controller takes four ZeroMQ hops and two passes
through the controller's Python; clients that can reach an engine send its requests straight
to this ROUTER instead, and get the replies from it (docs/messages.md, "The direct path"). The
controller still hears of everything: the engine sends it a record of each request it takes in
here (its header) and of each reply it hands out (the whole reply, for the result store), on
its ``mux_engine`` connection, after the fact.

The socket is a listening socket on the engine, so it is guarded like the controller's: the
connection gate (PLAIN token, or CurveZMQ with the same derived key pairs when the cluster
uses CurveZMQ), the data channels' frame-size limit, and every message MAC-checked by the
session. ZAP handlers are per ZeroMQ context, and an embedded engine may share its context
with a controller or another engine, so the socket lives in a small context of its own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket as _socket
from typing import Any, Final

import zmq

from corral.wire import ConnectionInfo, harden
from corral.wire.connection import buffer_frame_size
from corral.wire.gate import Gate

__all__ = ["DirectSocket", "local_address"]

log = logging.getLogger(__name__)

# unix socket paths are limited to ~107 bytes: ipc endpoints use a short suffix
_IPC_SUFFIX_LEN: Final = 12


def local_address(controller_ip: str) -> str:
    """Return the address of this host's interface that reaches ``controller_ip``.

    Clients reach the controller there, so they can most likely reach this engine at the same
    kind of address: loopback for a controller on loopback (or bound to every interface), the
    interface the route to the controller leaves by otherwise.
    """
    try:
        addr = ipaddress.ip_address(controller_ip)
    except ValueError:
        try:
            addr = ipaddress.ip_address(_socket.getaddrinfo(controller_ip, None)[0][4][0])
        except (OSError, ValueError, IndexError):
            return "127.0.0.1"
    if addr.is_loopback or addr.is_unspecified:
        return "::1" if addr.version == 6 and addr.is_loopback else "127.0.0.1"
    family = _socket.AF_INET6 if addr.version == 6 else _socket.AF_INET
    try:
        with _socket.socket(family, _socket.SOCK_DGRAM) as probe:
            probe.connect((str(addr), 9))  # no packet is sent: this only picks the route
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1" if addr.version == 4 else "::1"


class DirectSocket:
    """The bound, gated ROUTER clients send direct requests to (identity: the engine uuid).

    Parameters
    ----------
    info
        The connection info (transport, the controller's address, key, CurveZMQ, frame limit).
    key
        The cluster key (bytes).
    uuid
        The engine uuid; the ROUTER's identity, so clients address the engine by it.

    Attributes
    ----------
    url
        Where the socket listens, for the registration request.

    Raises
    ------
    zmq.ZMQError
        If the socket cannot bind.
    """

    def __init__(self, info: ConnectionInfo, key: bytes, uuid: str) -> None:
        self._context: zmq.Context[Any] = zmq.Context(io_threads=1)
        self._gate: Gate | None = None
        self.socket: zmq.Socket[Any] | None = None
        try:
            self._gate = Gate(self._context, key, curve=bool(info.get("curve_public_key")))
            limit = buffer_frame_size(info)
            sock = self._gate.guard(
                harden(self._context.socket(zmq.ROUTER), max_frame_size=limit), max_frame_size=limit
            )
            self.socket = sock
            sock.setsockopt(zmq.IDENTITY, uuid.encode("ascii"))
            # a reply to a client whose connection is gone raises (and goes via the controller)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
            if info["transport"] == "ipc":
                sock.bind(f"ipc://{info['ip']}-e{uuid[:_IPC_SUFFIX_LEN]}")
            else:
                ip = local_address(info["ip"])
                sock.bind(f"tcp://[{ip}]:*" if ":" in ip else f"tcp://{ip}:*")
            self.url: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            self.close()
            raise
        log.debug("direct requests accepted at %s", self.url)

    def close(self) -> None:
        """Close the socket, stop its gate and end its context (idempotent)."""
        if self.socket is not None:
            self.socket.close(linger=1000)  # time for the last replies to leave
            self.socket = None
        if self._gate is not None:
            self._gate.stop()
            self._gate = None
        with contextlib.suppress(zmq.ZMQError):
            self._context.term()
