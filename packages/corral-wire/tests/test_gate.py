"""The connection gate: strangers are refused at the handshake; key holders send large frames."""

from __future__ import annotations

import os
from typing import Any

import pytest
import zmq

from corral.wire import harden
from corral.wire.gate import Gate, admit, gate_token

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def gated() -> Any:
    ctx: zmq.Context[Any] = zmq.Context()
    key = os.urandom(32)
    gate = Gate(ctx, key)
    router = gate.guard(harden(ctx.socket(zmq.ROUTER)))
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        yield ctx, key, router, f"tcp://127.0.0.1:{port}"
    finally:
        gate.stop()
        ctx.destroy(linger=0)  # closes every socket a failed test left open


def test_a_stranger_cannot_send_anything(gated: Any) -> None:
    ctx, _key, router, url = gated
    for creds in (None, os.urandom(32)):
        stranger = harden(ctx.socket(zmq.DEALER))
        if creds is not None:
            admit(stranger, creds)  # a token from another key
        stranger.connect(url)
        stranger.send(b"small")
        assert router.poll(500) == 0
        stranger.close(linger=0)


def test_a_key_holder_passes_and_may_send_large_frames(gated: Any) -> None:
    ctx, key, router, url = gated
    friend = admit(harden(ctx.socket(zmq.DEALER), max_frame_size=None), key)
    friend.connect(url)
    big = os.urandom(80 * 1024 * 1024)  # over the 64 MiB pre-authentication limit
    friend.send(big, copy=False)
    assert router.poll(20_000)
    _, got = router.recv_multipart(copy=False)
    assert len(got) == len(big)
    friend.close(linger=0)


def test_token_is_derived_not_the_key() -> None:
    key = os.urandom(32)
    token = gate_token(key)
    assert len(token) == 64
    assert key.hex().encode() != token
    assert gate_token(key) == token
    assert gate_token(os.urandom(32)) != token


def test_no_key_means_no_gate() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    gate = Gate(ctx, b"")
    s = gate.guard(harden(ctx.socket(zmq.ROUTER)))
    assert s.getsockopt(zmq.PLAIN_SERVER) == 0
    assert s.getsockopt(zmq.MAXMSGSIZE) == 64 * 1024 * 1024
    c = admit(ctx.socket(zmq.DEALER), b"")
    assert c.getsockopt(zmq.PLAIN_USERNAME) == b""
    for sock in (s, c):
        sock.close(linger=0)
    gate.stop()
    ctx.term()
