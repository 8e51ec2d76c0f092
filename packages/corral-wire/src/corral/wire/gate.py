"""The connection gate: only peers that hold the cluster key may connect to a controller.

Every socket a controller binds is a ZeroMQ PLAIN server; a ZAP handler thread in the
controller admits a connection only if it presents the *gate token*, a value derived from the
cluster key with BLAKE3's key derivation (so the token never reveals the key, and the key
still signs every message). A peer without it is refused during the ZeroMQ handshake, before it
can send a single message. The handshake itself is made of frames, though, and ZeroMQ applies one
frame-size limit to a connection's whole life: a socket that must take large frames from admitted
peers takes a large handshake frame from anyone too (see :meth:`Gate.guard`, and
``docs/security.md`` for the limits a controller sets per channel).

PLAIN sends the token in clear text, so on a network anyone who can read the traffic can
pass the gate (but still cannot sign a message): corral requires CurveZMQ encryption when a
controller binds anything but loopback (:func:`curve_required`).

With CurveZMQ on, the same gate speaks CURVE instead of PLAIN. Both key pairs are derived from
the cluster key (BLAKE3 key derivation, one context each): the controller's (its public key is
``curve_public_key`` in the connection file) and the one every client and engine presents. The
handshake needs the controller's public key, and the ZAP handler admits a CURVE peer only if its
public key is the derived client key, so a peer without the cluster key is refused before it
sends a frame, and all traffic is encrypted. A PLAIN peer cannot talk to a CURVE socket at all.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Final

import zmq

__all__ = [
    "GATE_USER",
    "Gate",
    "admit",
    "curve_client_keys",
    "curve_required",
    "curve_server_keys",
    "gate_options",
    "gate_token",
]

log = logging.getLogger(__name__)

GATE_USER: Final = b"corral"
_CONTEXT: Final = "corral 2026 connection gate token v1"
_CURVE_SERVER_CONTEXT: Final = "corral 2026 curve server secret key v1"
_CURVE_CLIENT_CONTEXT: Final = "corral 2026 curve client secret key v1"


def curve_required(ip: str) -> bool:
    """Return True unless ``ip`` is a loopback address (``127.0.0.0/8``, ``::1``).

    Anything else -- a LAN address, ``0.0.0.0``, ``*``, an interface or host name -- may carry
    traffic others can read, so a controller binding it uses CurveZMQ.
    """
    try:
        return not ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return True


def _curve_pair(key: bytes, context: str) -> tuple[bytes, bytes]:
    import blake3
    import zmq.utils.z85

    if not key:
        raise ValueError("CurveZMQ needs a cluster key; an unsigned cluster (key '') cannot use it")
    secret = zmq.utils.z85.encode(blake3.blake3(key, derive_key_context=context).digest())
    return zmq.curve_public(secret), secret


def curve_server_keys(key: bytes) -> tuple[bytes, bytes]:
    """Return the controller's CurveZMQ ``(public, secret)`` key pair (Z85) derived from ``key``.

    Raises
    ------
    ValueError
        If ``key`` is empty.
    """
    return _curve_pair(key, _CURVE_SERVER_CONTEXT)


def curve_client_keys(key: bytes) -> tuple[bytes, bytes]:
    """Return the ``(public, secret)`` key pair (Z85) clients and engines present, derived from ``key``.

    Raises
    ------
    ValueError
        If ``key`` is empty.
    """
    return _curve_pair(key, _CURVE_CLIENT_CONTEXT)


def gate_token(key: bytes) -> bytes:
    """Return the gate token of a cluster key (64 hex digits as bytes)."""
    import blake3

    return blake3.blake3(key, derive_key_context=_CONTEXT).hexdigest().encode()


def gate_options(key: bytes, curve_server_key: str | bytes | None = None) -> list[tuple[int, bytes]]:
    """Return the ``(option, value)`` pairs that let a connecting socket pass a controller's gate.

    For sockets :func:`admit` cannot reach (a device's, set through ``setsockopt_in``).
    With ``curve_server_key`` (the connection file's ``curve_public_key``): the CurveZMQ
    client options with the key pair derived from ``key``; otherwise the PLAIN gate token; with
    an empty key and no CurveZMQ, nothing.

    Raises
    ------
    ValueError
        If ``curve_server_key`` is given with an empty key, or is not a 40-character Z85 key.
    RuntimeError
        If CurveZMQ is asked for and this libzmq was built without it.
    """
    if curve_server_key:
        server = curve_server_key.encode("ascii") if isinstance(curve_server_key, str) else curve_server_key
        if len(server) != 40:
            raise ValueError(f"curve_public_key {server!r} is not a 40-character Z85 CurveZMQ key")
        if not zmq.has("curve"):
            raise RuntimeError("the controller requires CurveZMQ, and this pyzmq/libzmq was built without it")
        public, secret = curve_client_keys(key)
        return [(zmq.CURVE_PUBLICKEY, public), (zmq.CURVE_SECRETKEY, secret), (zmq.CURVE_SERVERKEY, server)]
    if key:
        return [(zmq.PLAIN_USERNAME, GATE_USER), (zmq.PLAIN_PASSWORD, gate_token(key))]
    return []


def admit(socket: zmq.Socket[Any], key: bytes, curve_server_key: str | bytes | None = None) -> zmq.Socket[Any]:
    """Give a connecting socket the credentials to pass a controller's gate; call before ``connect``.

    With ``curve_server_key`` (the connection file's ``curve_public_key``) the socket becomes a
    CurveZMQ client presenting the key pair derived from ``key``; otherwise it presents the
    PLAIN gate token. With an empty (unsigned) key and no CurveZMQ nothing is set.

    Raises
    ------
    ValueError
        If ``curve_server_key`` is given with an empty key, or is not a 40-character Z85 key.
    RuntimeError
        If CurveZMQ is asked for and this libzmq was built without it.
    """
    for option, value in gate_options(key, curve_server_key):
        socket.setsockopt(option, value)
    return socket


class Gate:
    """The controller side: a ZAP handler thread admitting peers that present the token.

    Parameters
    ----------
    context
        The context the gated sockets belong to (ZAP is per context).
    key
        The cluster key.
    curve
        Make guarded sockets CurveZMQ servers (encrypted; peers must present the client key
        pair derived from ``key``) instead of PLAIN servers.

    Raises
    ------
    ValueError
        If ``curve`` is asked for with an empty key.
    RuntimeError
        If ``curve`` is asked for and this libzmq was built without CurveZMQ.

    Examples
    --------
    >>> gate = Gate(ctx, key)  # doctest: +SKIP
    >>> gate.guard(router)     # before bind
    >>> gate.stop()
    """

    def __init__(self, context: zmq.Context[Any], key: bytes, *, curve: bool = False) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self.key = key
        self.curve = curve
        self.enabled = bool(key) or curve
        self._auth: Any = None
        self._server_keys: tuple[bytes, bytes] | None = None
        if curve:
            if not zmq.has("curve"):
                raise RuntimeError("CurveZMQ was asked for, and this pyzmq/libzmq was built without it")
            self._server_keys = curve_server_keys(key)  # ValueError for an empty key
        if self.enabled:
            self._auth = ThreadAuthenticator(context, log=logging.getLogger("corral.wire.gate.zap"))
            self._auth.start()
            if curve:
                self._auth.configure_curve_callback(domain="corral", credentials_provider=_ClientKey(key))
            else:
                self._auth.configure_plain(domain="corral", passwords={GATE_USER.decode(): gate_token(key).decode()})

    @property
    def curve_public_key(self) -> str | None:
        """The controller's CurveZMQ public key (Z85) for the connection file, or None."""
        return self._server_keys[0].decode("ascii") if self._server_keys else None

    def guard(self, socket: zmq.Socket[Any], *, max_frame_size: int | None = None) -> zmq.Socket[Any]:
        """Make a socket a gated server; call before ``bind``.

        With CurveZMQ the socket is a CURVE server with the derived secret key, otherwise a
        PLAIN server; without a key it is left as it is (to its frame limit).

        Parameters
        ----------
        socket
            A new socket.
        max_frame_size
            Largest frame the socket accepts (``ZMQ_MAXMSGSIZE``), or None for no limit.
            ZeroMQ applies it to every frame of a connection, the handshake's included, and
            disconnects a peer that announces a larger one before allocating it. So it is the
            only bound on what a peer that has not (yet) passed the gate can make the
            controller allocate: give each socket the smallest limit its traffic allows.
        """
        if self._server_keys is not None:
            socket.curve_secretkey = self._server_keys[1]
            socket.curve_server = True
        elif self.enabled:
            socket.setsockopt(zmq.PLAIN_SERVER, 1)
        else:
            return socket
        socket.setsockopt(zmq.ZAP_DOMAIN, b"corral")
        socket.setsockopt(zmq.MAXMSGSIZE, -1 if max_frame_size is None else int(max_frame_size))
        return socket

    def stop(self) -> None:
        """Stop the ZAP handler thread (after closing the gated sockets)."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


class _ClientKey:
    """ZAP credentials provider: admit a CURVE peer only with the client key derived from the cluster key."""

    def __init__(self, key: bytes) -> None:
        self._public = curve_client_keys(key)[0]

    def callback(self, domain: str, client_key: bytes) -> bool:
        """Return True if ``client_key`` (Z85) is the cluster's derived client public key."""
        import hmac

        admitted = hmac.compare_digest(client_key, self._public)
        if not admitted:
            log.debug("CURVE peer with an unknown client key refused")
        return admitted
