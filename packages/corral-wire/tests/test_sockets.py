"""The frame-size limit applied before allocation, on real sockets."""

from __future__ import annotations

from typing import Any

import pytest
import zmq

from corral.wire import harden
from corral.wire.testing import session_pair

pytestmark = pytest.mark.timeout(30)


def test_oversized_frame_is_refused_and_the_socket_keeps_serving() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    router = harden(ctx.socket(zmq.ROUTER), max_frame_size=64 * 1024)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    url = f"tcp://127.0.0.1:{port}"
    flooder = harden(ctx.socket(zmq.DEALER), max_frame_size=None)
    good = harden(ctx.socket(zmq.DEALER), max_frame_size=None)
    try:
        flooder.connect(url)
        flooder.send(b"x" * (1 << 20))  # 1 MiB, over the 64 KiB limit
        assert router.poll(500) == 0  # never delivered: the peer was cut off first
        a, b = session_pair()
        good.connect(url)
        a.send(good, "ping", {"ok": True})
        assert router.poll(5000)
        assert b.recv(router).content == {"ok": True}
    finally:
        for s in (router, flooder, good):
            s.close(linger=0)
        ctx.term()


def test_harden_sets_linger_and_can_lift_the_limit() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        s = harden(ctx.socket(zmq.DEALER), max_frame_size=None)
        assert s.getsockopt(zmq.LINGER) == 0
        assert s.getsockopt(zmq.MAXMSGSIZE) == -1
        harden(s)
        assert s.getsockopt(zmq.MAXMSGSIZE) == 64 * 1024 * 1024
        s.close()
    finally:
        ctx.term()
