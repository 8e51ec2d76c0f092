"""Helpers for tests of corral packages: paired sessions, loopback sockets, connection files.

Everything here uses real ZeroMQ sockets; nothing is mocked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq

from corral.wire.connection import ConnectionInfo, new_connection_info, write_connection_file
from corral.wire.protocol import CHANNELS
from corral.wire.session import Session
from corral.wire.signing import DEFAULT_SCHEME
from corral.wire.sockets import harden

__all__ = ["free_ports", "session_pair", "socket_pair", "temp_connection_file"]


def session_pair(key: bytes | None = None, *, scheme: str = DEFAULT_SCHEME, **kwargs: Any) -> tuple[Session, Session]:
    """Return two Sessions sharing one key (a random one by default)."""
    key = os.urandom(32) if key is None else key
    return Session(key, scheme=scheme, **kwargs), Session(key, scheme=scheme, **kwargs)


@contextmanager
def socket_pair(
    kind_a: int = zmq.DEALER,
    kind_b: int = zmq.ROUTER,
    *,
    context: zmq.Context[Any] | None = None,
    transport: str = "tcp",
) -> Iterator[tuple[zmq.Socket[Any], zmq.Socket[Any]]]:
    """Yield ``(a, b)``: ``b`` bound on loopback (or inproc), ``a`` connected to it.

    Both are closed with linger 0 on exit. With DEALER/ROUTER (the default) the connection is
    established before the pair is yielded, so a first message cannot be lost.
    """
    ctx = context or zmq.Context.instance()
    a = harden(ctx.socket(kind_a))
    b = harden(ctx.socket(kind_b))
    try:
        if transport == "inproc":
            url = f"inproc://corral-test-{id(a)}"
            b.bind(url)
        else:
            port = b.bind_to_random_port("tcp://127.0.0.1")
            url = f"tcp://127.0.0.1:{port}"
        a.connect(url)
        yield a, b
    finally:
        a.close(linger=0)
        b.close(linger=0)


def free_ports(n: int) -> list[int]:
    """Return ``n`` distinct loopback TCP ports that were free a moment ago."""
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def temp_connection_file(directory: str | os.PathLike[str], **kwargs: Any) -> tuple[Path, ConnectionInfo]:
    """Write a connection file for every channel on free loopback ports into ``directory``."""
    ports = dict(zip(CHANNELS, free_ports(len(CHANNELS)), strict=True))
    info = new_connection_info(ports, **kwargs)
    path = write_connection_file(Path(directory) / "corral-test.json", info)
    return path, info
