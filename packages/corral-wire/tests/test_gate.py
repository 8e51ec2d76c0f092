"""The connection gate: strangers are refused at the handshake; key holders send large frames."""

from __future__ import annotations

import os
from typing import Any

import pytest
import zmq

from corral.wire import harden
from corral.wire.gate import Gate, admit, curve_client_keys, curve_required, curve_server_keys, gate_token

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


@pytest.fixture
def curve_gated() -> Any:
    ctx: zmq.Context[Any] = zmq.Context()
    key = os.urandom(32)
    gate = Gate(ctx, key, curve=True)
    router = gate.guard(harden(ctx.socket(zmq.ROUTER)))
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        yield ctx, key, gate, router, f"tcp://127.0.0.1:{port}"
    finally:
        gate.stop()
        ctx.destroy(linger=0)


def test_curve_gate_refuses_plain_wrong_key_and_unknown_server_key(curve_gated: Any) -> None:
    ctx, key, gate, router, url = curve_gated
    assert gate.curve_public_key == curve_server_keys(key)[0].decode()
    attempts: list[Any] = [
        lambda s: admit(s, key),  # the right PLAIN token: a PLAIN peer cannot talk to a CURVE socket
        lambda s: admit(s, os.urandom(32), gate.curve_public_key),  # knows the server key, not the cluster key
        lambda s: admit(s, key, curve_server_keys(os.urandom(32))[0]),  # right key, wrong server key
        lambda s: s,  # nothing at all
    ]
    for setup in attempts:
        stranger = setup(harden(ctx.socket(zmq.DEALER)))
        stranger.connect(url)
        stranger.send(b"small")
        assert router.poll(500) == 0
        stranger.close(linger=0)


def test_curve_gate_admits_the_key_holder(curve_gated: Any) -> None:
    ctx, key, gate, router, url = curve_gated
    friend = admit(harden(ctx.socket(zmq.DEALER), max_frame_size=None), key, gate.curve_public_key)
    friend.connect(url)
    friend.send(b"hello")
    assert router.poll(20_000)
    _, got = router.recv_multipart()
    assert got == b"hello"
    friend.close(linger=0)


def test_curve_keys_are_derived_per_role_and_per_key() -> None:
    key = os.urandom(32)
    server, client = curve_server_keys(key), curve_client_keys(key)
    assert server != client
    assert curve_server_keys(key) == server
    assert curve_server_keys(os.urandom(32)) != server
    assert len(server[0]) == 40
    assert zmq.curve_public(server[1]) == server[0]
    with pytest.raises(ValueError, match="needs a cluster key"):
        curve_client_keys(b"")


def test_curve_server_key_must_be_z85() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    with pytest.raises(ValueError, match="not a 40-character Z85"):
        admit(s, os.urandom(32), "short")
    s.close(linger=0)
    ctx.term()


@pytest.mark.parametrize(
    ("ip", "required"),
    [("127.0.0.1", False), ("127.3.4.5", False), ("::1", False), ("10.0.0.1", True), ("0.0.0.0", True),
     ("::", True), ("*", True), ("node1", True)],
)  # fmt: skip
def test_curve_is_required_off_loopback(ip: str, required: bool) -> None:
    assert curve_required(ip) is required
