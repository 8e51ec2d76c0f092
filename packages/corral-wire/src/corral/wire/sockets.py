"""Socket settings every corral process applies."""

from __future__ import annotations

from typing import Any

import zmq

from corral.wire.session import DEFAULT_MAX_FRAME_SIZE

__all__ = ["harden"]


def harden(
    socket: zmq.Socket[Any], *, max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE, linger: int = 0
) -> zmq.Socket[Any]:
    """Apply corral's limits to a socket before it binds or connects.

    Parameters
    ----------
    socket
        A new socket.
    max_frame_size
        ZeroMQ disconnects a peer that announces a frame larger than this, before allocating
        it (``ZMQ_MAXMSGSIZE``). Use it on sockets that unauthenticated peers can reach;
        ``None`` lifts the limit for sockets whose peers were authenticated at connection.
    linger
        Milliseconds to keep unsent messages after close (0: drop them, never hang on exit).

    Returns
    -------
    zmq.Socket
        The same socket.
    """
    socket.setsockopt(zmq.LINGER, linger)
    socket.setsockopt(zmq.MAXMSGSIZE, -1 if max_frame_size is None else int(max_frame_size))
    return socket
