"""The direct and output relays, with scripted clients and engines on real loopback sockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from corral.scheduler import DirectRelay, IOPubRelay
from corral.wire import MessageRejected, RawMessage, Serializer, Session, harden, pack_apply_message, unwrap_exception
from corral.wire.errors import EngineError
from corral.wire.loop import Reactor

pytestmark = pytest.mark.timeout(30)

KEY = b"r" * 32
ENGINE = b"0123456789abcdef0123456789abcdef"


class Recorder:
    """A real monitor implementation that records what the relay reports."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.replies: list[str] = []
        self.deliveries: list[bool] = []
        self.hellos: list[tuple[str, bytes]] = []
        self.outputs: list[str] = []
        self.drop_replies = False

    def request(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> None:
        self.requests.append((channel, raw.msg_id))

    def reply(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> bool:
        self.replies.append(raw.msg_type)
        return not self.drop_replies

    def delivered(self, channel: str, raw: RawMessage, client: bytes, ok: bool) -> None:
        self.deliveries.append(ok)

    def hello(self, channel: str, engine: bytes) -> None:
        self.hellos.append((channel, engine))

    def output(self, raw: RawMessage) -> None:
        self.outputs.append(raw.msg_type)


class Bench:
    def __init__(self) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.session = Session(KEY)
        self.monitor = Recorder()
        self.reactor = Reactor(self.ctx)
        self.sockets: list[zmq.Socket[Any]] = []
        front = self.track(harden(self.ctx.socket(zmq.ROUTER)))
        back = self.track(harden(self.ctx.socket(zmq.ROUTER)))
        self.front_url = f"tcp://127.0.0.1:{front.bind_to_random_port('tcp://127.0.0.1')}"
        self.back_url = f"tcp://127.0.0.1:{back.bind_to_random_port('tcp://127.0.0.1')}"
        self.relay = DirectRelay("mux", self.session, front, back, self.monitor)
        self.relay.register(self.reactor)
        self.thread = threading.Thread(target=self.reactor.run, daemon=True)
        self.thread.start()

    def track(self, sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
        self.sockets.append(sock)
        return sock

    def dealer(self, url: str, identity: bytes | None = None) -> zmq.Socket[Any]:
        sock = self.track(harden(self.ctx.socket(zmq.DEALER)))
        if identity:
            sock.setsockopt(zmq.IDENTITY, identity)
        sock.connect(url)
        return sock

    def close(self) -> None:
        self.reactor.stop()
        self.thread.join(5)
        self.reactor.close()
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def bench() -> Iterator[Bench]:
    b = Bench()
    try:
        yield b
    finally:
        b.close()


def wait_for(condition: Any, timeout: float = 5) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def recv(session: Session, sock: zmq.Socket[Any], timeout: float = 5) -> Any:
    assert sock.poll(int(timeout * 1000)), "nothing arrived"
    return session.recv(sock)


def test_request_reaches_the_named_engine_and_the_reply_comes_back(bench: Bench) -> None:
    client_s, engine_s = Session(KEY), Session(KEY)
    engine = bench.dealer(bench.back_url, ENGINE)
    engine_s.send(engine, "engine_hello", {"uuid": ENGINE.decode()})
    wait_for(lambda: ("mux", ENGINE) in bench.monitor.hellos)  # connected: nothing sent is refused
    client = bench.dealer(bench.front_url)
    bench.relay.add_engine(ENGINE, 0)
    big = bytes(range(256)) * 4096  # 1 MiB payload, forwarded untouched
    msg, _ = client_s.send(
        client, "apply_request", {"serializer": "pickle"}, ident=ENGINE, buffers=pack_apply_message(len, (big,))
    )
    got = recv(engine_s, engine)
    assert got.header == msg.header
    assert len(got.idents) == 1  # the client's routing id, to reply to
    from corral.wire import unpack_apply_message

    f, args, _ = unpack_apply_message(got.buffers)
    assert f(*args) == len(big)
    engine_s.send(
        engine,
        "apply_reply",
        {"status": "ok", "serializer": "pickle"},
        parent=got,
        ident=got.idents,
        buffers=Serializer().dumps(7),
    )
    reply = recv(client_s, client)
    assert reply.idents == [ENGINE]
    assert reply.parent_header["msg_id"] == msg.msg_id
    assert Serializer().loads(reply.buffers) == 7
    assert ("mux", ENGINE) in bench.monitor.hellos
    assert bench.monitor.requests == [("mux", msg.msg_id)]
    assert bench.monitor.replies == ["apply_reply"]
    wait_for(lambda: bench.monitor.deliveries == [True])  # reported after the send


def test_request_to_an_unknown_engine_fails_at_once_with_engine_error(bench: Bench) -> None:
    client_s = Session(KEY)
    client = bench.dealer(bench.front_url)
    msg, _ = client_s.send(client, "execute_request", {"code": "1"}, ident=ENGINE)
    reply = recv(client_s, client)
    assert reply.msg_type == "execute_reply"
    assert reply.content["status"] == "error"
    err = unwrap_exception(reply.content)
    assert isinstance(err, EngineError)
    assert "not registered" in str(err)
    assert reply.metadata["msg_id"] == msg.msg_id
    assert bench.monitor.requests == []


def test_junk_and_wrong_key_are_dropped_and_counted_and_relaying_goes_on(bench: Bench) -> None:
    client = bench.dealer(bench.front_url)
    intruder = Session(b"x" * 32)
    intruder.send(client, "apply_request", {}, ident=ENGINE)
    client.send_multipart([ENGINE, b"garbage"])
    client.send_multipart([b"no delimiter at all"])
    bench.relay.add_engine(ENGINE, 0)
    engine_s, client_s = Session(KEY), Session(KEY)
    engine = bench.dealer(bench.back_url, ENGINE)
    engine_s.send(engine, "engine_hello", {})
    wait_for(lambda: ("mux", ENGINE) in bench.monitor.hellos)  # connected: nothing sent is refused
    client_s.send(client, "apply_request", {"ok": 1}, ident=ENGINE)
    got = recv(engine_s, engine)
    assert got.content == {"ok": 1}
    rejections = bench.session.rejections
    assert rejections[("mux", "bad_signature")] == 1
    assert rejections[("mux", "malformed")] == 2


def test_a_replayed_request_is_not_forwarded_twice(bench: Bench) -> None:
    client_s, engine_s = Session(KEY), Session(KEY)
    bench.relay.add_engine(ENGINE, 0)
    engine = bench.dealer(bench.back_url, ENGINE)
    engine_s.send(engine, "engine_hello", {})
    wait_for(lambda: ("mux", ENGINE) in bench.monitor.hellos)  # connected: nothing sent is refused
    client = bench.dealer(bench.front_url)
    frames = client_s.serialize(client_s.msg("apply_request", {"n": 1}), idents=[ENGINE])
    client.send_multipart(frames)
    client.send_multipart(frames)
    client_s.send(client, "apply_request", {"n": 2}, ident=ENGINE)
    assert recv(engine_s, engine).content == {"n": 1}
    assert recv(engine_s, engine).content == {"n": 2}
    assert bench.session.rejections[("mux", "replayed")] == 1


def test_a_reply_to_a_departed_client_is_reported_undelivered(bench: Bench) -> None:
    client_s, engine_s = Session(KEY), Session(KEY)
    bench.relay.add_engine(ENGINE, 0)
    engine = bench.dealer(bench.back_url, ENGINE)
    engine_s.send(engine, "engine_hello", {})
    wait_for(lambda: ("mux", ENGINE) in bench.monitor.hellos)  # connected: nothing sent is refused
    client = bench.dealer(bench.front_url)
    client_s.send(client, "apply_request", {}, ident=ENGINE)
    got = recv(engine_s, engine)
    # answer a client connection that no longer exists: the relay must notice, not block
    engine_s.send(engine, "apply_reply", {"status": "ok"}, parent=got, ident=[b"client-that-left"])
    engine_s.send(engine, "apply_reply", {"status": "ok"}, parent=got, ident=got.idents)
    assert recv(client_s, client).msg_type == "apply_reply"
    wait_for(lambda: len(bench.monitor.deliveries) == 2)
    assert bench.monitor.deliveries == [False, True]
    client_s.send(client, "apply_request", {"again": True}, ident=ENGINE)
    assert recv(engine_s, engine).content == {"again": True}


def test_iopub_relay_republishes_engine_output(bench: Bench) -> None:
    ctx = bench.ctx
    sub_in = bench.track(harden(ctx.socket(zmq.SUB)))
    pub_out = bench.track(harden(ctx.socket(zmq.PUB)))
    in_url = f"tcp://127.0.0.1:{sub_in.bind_to_random_port('tcp://127.0.0.1')}"
    out_url = f"tcp://127.0.0.1:{pub_out.bind_to_random_port('tcp://127.0.0.1')}"
    relay = IOPubRelay(bench.session, sub_in, pub_out, bench.monitor)
    bench.reactor.call_soon_threadsafe(relay.register, bench.reactor)
    engine_pub = bench.track(harden(ctx.socket(zmq.PUB)))
    engine_pub.connect(in_url)
    client_sub = bench.track(harden(ctx.socket(zmq.SUB)))
    client_sub.setsockopt(zmq.SUBSCRIBE, b"")
    client_sub.connect(out_url)
    engine_s, client_s = Session(KEY), Session(KEY)
    got = None
    for _ in range(100):  # PUB/SUB joins take a moment: publish until the subscriber hears
        engine_s.send(engine_pub, "stream", {"name": "stdout", "text": "hi\n"})
        if client_sub.poll(50):
            got = client_s.recv(client_sub)
            break
    assert got is not None
    assert got.content == {"name": "stdout", "text": "hi\n"}
    assert "stream" in bench.monitor.outputs


def test_rejected_messages_raise_for_direct_callers() -> None:
    with pytest.raises(MessageRejected):
        Session(KEY).deserialize_raw([b"x"])


def test_on_request_sees_each_accepted_request_before_it_is_forwarded(bench: Bench) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    bench.relay.on_request = lambda raw: seen.append((raw.msg_type, json.loads(raw.frames[3])))
    client_s, engine_s = Session(KEY), Session(KEY)
    engine = bench.dealer(bench.back_url, ENGINE)
    client = bench.dealer(bench.front_url)
    bench.relay.add_engine(ENGINE, 0)
    msg, _ = client_s.send(client, "abort_request", {"msg_ids": ["a", "b"]}, ident=ENGINE)
    assert recv(engine_s, engine).msg_id == msg.msg_id
    assert seen == [("abort_request", {"msg_ids": ["a", "b"]})]
    # a request to an unknown engine is answered by the relay and not shown
    client_s.send(client, "abort_request", {"msg_ids": ["c"]}, ident=b"nobody")
    assert recv(client_s, client).content["ename"] == "EngineError"
    assert len(seen) == 1


def test_direct_path_records_are_reported_to_the_hub_and_never_forwarded(bench: Bench) -> None:
    from corral.wire.protocol import DIRECT_REPLY_RECORD, DIRECT_REQUEST_RECORD

    client_s, engine_s = Session(KEY), Session(KEY)
    bench.relay.add_engine(ENGINE, 0)
    engine = bench.dealer(bench.back_url, ENGINE)
    engine_s.send(engine, "engine_hello", {})
    wait_for(lambda: ("mux", ENGINE) in bench.monitor.hellos)
    client_id = b"client-named-itself"
    client = bench.dealer(bench.front_url, client_id)
    # what an engine sends after taking a request in on its own socket, and answering it there
    request = client_s.msg("apply_request", {"serializer": "pickle"})
    header_frame = client_s.serialize(request)[2]  # the client-signed header the engine received
    engine_s.forward_header(engine, header_frame, [client_id, DIRECT_REQUEST_RECORD])
    reply = engine_s.msg("apply_reply", {"status": "ok"}, parent=request)
    engine_s.send(engine, reply, ident=[client_id, DIRECT_REPLY_RECORD])
    wait_for(lambda: bench.monitor.deliveries == [True])
    assert bench.monitor.requests == [("mux", request.msg_id)]
    assert bench.monitor.replies == ["apply_reply"]
    # a record from an engine the relay does not know, or with another mark, changes nothing
    stranger = bench.dealer(bench.back_url, b"f" * 32)
    engine_s.forward_header(stranger, header_frame, [client_id, DIRECT_REQUEST_RECORD])
    engine_s.send(engine, "apply_reply", {"status": "ok"}, parent=request, ident=[client_id, b"other-mark"])
    wait_for(lambda: bench.session.rejections.get(("mux_engine", "malformed"), 0) == 1)
    assert bench.monitor.requests == [("mux", request.msg_id)]
    assert not client.poll(200)  # the client got none of it through the relay
