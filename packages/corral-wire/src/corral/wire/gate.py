"""The connection gate: only peers that hold the cluster key may connect to a controller.

Every socket a controller binds is a ZeroMQ PLAIN server; a ZAP handler thread in the
controller admits a connection only if it presents the *gate token*, a value derived from the
cluster key with BLAKE3's key derivation (so the token never reveals the key, and the key
still signs every message). A peer without it is refused during the ZeroMQ handshake, before it
can send a single frame; that is what lets gated sockets accept large frames from admitted
peers while anything else is refused before allocation. Sockets that are not gated keep the
pre-authentication frame limit of :func:`corral.wire.sockets.harden`.

PLAIN sends the token in clear text, so on a network anyone who can read the traffic can
pass the gate (but still cannot sign a message): corral requires CurveZMQ encryption when a
controller binds anything but loopback.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import zmq

__all__ = ["GATE_USER", "Gate", "admit", "gate_token"]

log = logging.getLogger(__name__)

GATE_USER: Final = b"corral"
_CONTEXT: Final = "corral 2026 connection gate token v1"


def gate_token(key: bytes) -> bytes:
    """Return the gate token of a cluster key (64 hex digits as bytes)."""
    import blake3

    return blake3.blake3(key, derive_key_context=_CONTEXT).hexdigest().encode()


def admit(socket: zmq.Socket[Any], key: bytes) -> zmq.Socket[Any]:
    """Give a connecting socket the credentials to pass a controller's gate.

    Call before ``connect``. With an empty (unsigned) key there is no gate and nothing is set.
    """
    if key:
        socket.setsockopt(zmq.PLAIN_USERNAME, GATE_USER)
        socket.setsockopt(zmq.PLAIN_PASSWORD, gate_token(key))
    return socket


class Gate:
    """The controller side: a ZAP handler thread admitting peers that present the token.

    Parameters
    ----------
    context
        The context the gated sockets belong to (ZAP is per context).
    key
        The cluster key.

    Examples
    --------
    >>> gate = Gate(ctx, key)  # doctest: +SKIP
    >>> gate.guard(router)     # before bind
    >>> gate.stop()
    """

    def __init__(self, context: zmq.Context[Any], key: bytes) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self.key = key
        self.enabled = bool(key)
        self._auth: Any = None
        if self.enabled:
            self._auth = ThreadAuthenticator(context, log=logging.getLogger("corral.wire.gate.zap"))
            self._auth.start()
            self._auth.configure_plain(domain="corral", passwords={GATE_USER.decode(): gate_token(key).decode()})

    def guard(self, socket: zmq.Socket[Any]) -> zmq.Socket[Any]:
        """Make a socket a gated server; call before ``bind``.

        Admitted peers may send frames of any size (the gate replaces the pre-authentication
        frame limit); without a key the socket is left to its frame limit.
        """
        if self.enabled:
            socket.setsockopt(zmq.PLAIN_SERVER, 1)
            socket.setsockopt(zmq.ZAP_DOMAIN, b"corral")
            socket.setsockopt(zmq.MAXMSGSIZE, -1)
        return socket

    def stop(self) -> None:
        """Stop the ZAP handler thread (after closing the gated sockets)."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
