"""Find the controller: read the connection file, make the Session and the client's sockets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import zmq

from corral.wire.connection import (
    ConnectionInfo,
    buffer_frame_size,
    channel_url,
    read_connection_file,
    validate_connection_info,
)
from corral.wire.errors import ConnectionFileError
from corral.wire.gate import admit
from corral.wire.paths import DEFAULT_CLUSTER_ID, connection_file_path
from corral.wire.session import Session
from corral.wire.sockets import harden

__all__ = ["CHANNEL_KINDS", "connect_socket", "direct_socket", "load_connection_info", "make_session"]

#: What the client opens on each controller channel it uses (docs/messages.md).
CHANNEL_KINDS: Final = {
    "registration": zmq.DEALER,
    "mux": zmq.DEALER,
    "control": zmq.DEALER,
    "task": zmq.DEALER,
    "broadcast": zmq.DEALER,
    "iopub": zmq.SUB,
    "notification": zmq.SUB,
}

# Channels that carry results (registration: results fetched from the hub), whose frames can
# be any size: the peer is the controller named
# in a connection file we chose to trust, and every message is still MAC-checked.
#: ZMTP heartbeats on the registration connection: a ping this often (ms), and the connection
#: is dropped when nothing comes back for this long (ms).
HEARTBEAT_IVL_MS: Final = 1000
HEARTBEAT_TIMEOUT_MS: Final = 2500

_UNLIMITED: Final = frozenset({"mux", "control", "task", "broadcast", "registration"})


def _credentials(
    sock: zmq.Socket[Any], info: ConnectionInfo, curve_keys: tuple[bytes, bytes] | None, key: bytes
) -> None:
    """Give ``sock`` what passes the gate of the controller (and of its engines' direct sockets)."""
    server_key = info.get("curve_public_key")
    if server_key:
        if not zmq.has("curve"):
            raise ConnectionFileError(
                "the controller requires CurveZMQ encryption, and this pyzmq/libzmq was built without it"
            )
        if curve_keys is None:
            raise ConnectionFileError("CurveZMQ is on but no client key pair was made")
        sock.curve_publickey, sock.curve_secretkey = curve_keys
        sock.curve_serverkey = server_key.encode("ascii")
    else:
        admit(sock, key)


def direct_socket(
    context: zmq.Context[Any],
    info: ConnectionInfo,
    curve_keys: tuple[bytes, bytes] | None,
    key: bytes,
    identity: bytes,
) -> zmq.Socket[Any]:
    """Open the client's ROUTER for the direct path; it connects to engines as they are announced.

    Engines' direct sockets are gated with the controller's credentials (the same key pairs
    are derived from the cluster key), so the same credentials pass. ``identity`` is the name
    engines reply to, the same as the client's ``mux`` connection's.
    """
    sock = harden(context.socket(zmq.ROUTER), max_frame_size=None)
    try:
        _credentials(sock, info, curve_keys, key)
        sock.setsockopt(zmq.IDENTITY, identity)
        # a request to an engine not (or no longer) connected raises, and goes via the controller
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def load_connection_info(
    connection_file: str | os.PathLike[str] | Mapping[str, Any] | None,
    cluster_id: str | None,
) -> tuple[ConnectionInfo, str]:
    """Return the connection info and a description of where it came from.

    Parameters
    ----------
    connection_file
        A path, or connection info already read (a mapping, e.g. from ``Cluster``).
    cluster_id
        Read ``~/.corral/security/corral-<cluster_id>.json`` (``$CORRAL_DIR`` moves it).

    Raises
    ------
    ConnectionFileError
        If there is no usable connection file; the message says which file and what to do.
    ValueError
        If both arguments are given, or the cluster id is not a valid id.
    """
    if connection_file is not None and cluster_id is not None:
        raise ValueError("give a connection file or a cluster_id, not both")
    if isinstance(connection_file, Mapping):
        info = validate_connection_info(dict(connection_file), source="the connection info passed to Client")
        return info, "the connection info passed to Client"
    if connection_file is None:
        path = connection_file_path(cluster_id if cluster_id is not None else DEFAULT_CLUSTER_ID)
        if cluster_id is None and not path.exists():
            raise ConnectionFileError(
                f"no connection file given and none for the default cluster at {path}: start a "
                "cluster (`corral start`), or pass Client(connection_file) or Client(cluster_id=...)"
            )
    else:
        path = connection_file  # type: ignore[assignment]
    return read_connection_file(path), os.fspath(path)


def make_session(info: ConnectionInfo) -> Session:
    """Return the client's one Session, with the cluster's key and signature scheme.

    Raises
    ------
    ValueError
        If the key or scheme are unusable (the connection file was validated, so only if
        edited by hand in between), or ``CORRAL_SHM`` is neither 0 nor 1.
    """
    session = Session(info["key"], scheme=info["signature_scheme"], buffer_frame_size=buffer_frame_size(info))
    # large buffers to and from engines on this host go through shared memory (corral.wire.shm)
    session.enable_shm()
    return session


def connect_socket(
    context: zmq.Context[Any],
    info: ConnectionInfo,
    channel: str,
    curve_keys: tuple[bytes, bytes] | None = None,
    key: bytes = b"",
    identity: bytes | None = None,
) -> zmq.Socket[Any]:
    """Open and connect the client's socket for ``channel`` (linger 0, size limits applied).

    SUB sockets are subscribed to everything. With a ``curve_public_key`` in ``info``, the
    socket is a CurveZMQ client with ``curve_keys`` (public, secret); otherwise, with a
    cluster ``key``, it presents the key's token at the controller's connection gate
    (:mod:`corral.wire.gate`).

    Raises
    ------
    ConnectionFileError
        If ``info`` has no port for ``channel``, or asks for CurveZMQ that this libzmq lacks.
    zmq.ZMQError
        If ZeroMQ refuses the address.
    """
    url = channel_url(info, channel)
    kind = CHANNEL_KINDS[channel]
    sock = harden(context.socket(kind), max_frame_size=None if channel in _UNLIMITED else 64 * 1024 * 1024)
    try:
        _credentials(sock, info, curve_keys, key)
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        if channel == "registration":
            # ZMTP heartbeats: a controller that dies silently (its host is cut off) drops this
            # connection within HEARTBEAT_TIMEOUT_MS, which the client's monitor reports
            sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        else:
            # requests queue in ZeroMQ however many are sent, so the IO thread's non-blocking
            # sends are refused only when there is no connection at all (see _ioloop._send)
            sock.setsockopt(zmq.SNDHWM, 0)
        sock.connect(url)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock
