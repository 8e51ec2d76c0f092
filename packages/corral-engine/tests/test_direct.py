"""The engine's direct socket: clients send it requests without the controller, the controller
gets a record of each, and strangers get nothing run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from corral.engine import Engine
from corral.wire import Message, Session, interactive, pack_apply_message
from corral.wire.gate import admit
from corral.wire.protocol import DIRECT_REPLY_RECORD, DIRECT_REQUEST_RECORD, valid_direct_url

pytestmark = pytest.mark.timeout(60)

WAIT = 15.0
ME = b"direct-client-1"


@interactive
def mark_and_add(a: int, b: int) -> int:
    global marked
    marked = True
    return a + b


@interactive
def slow_double(x: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return 2 * x


class DirectClient:
    """A client's direct ROUTER, connected to one engine's direct socket."""

    def __init__(self, controller: Any, *, token: bool = True, identity: bytes = ME) -> None:
        self.session = Session(controller.info["key"], scheme=controller.info["signature_scheme"])
        self.context: zmq.Context[Any] = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if token:
            admit(self.sock, self.session.key)
        reg = controller.registered()
        self.uuid = str(reg.content["uuid"]).encode("ascii")
        self.url = reg.content["direct"]
        self.sock.connect(self.url)

    def send(self, msg_type: str, content: dict[str, Any], buffers: list[Any], wait: float = WAIT) -> str:
        """Send once the connection is up (a ROUTER refuses a peer it has not met yet)."""
        msg = self.session.msg(msg_type, content)
        deadline = time.monotonic() + wait
        while True:
            try:
                self.session.send(self.sock, msg, ident=[self.uuid], buffers=buffers)
                return msg.msg_id
            except zmq.ZMQError as err:
                if err.errno != zmq.EHOSTUNREACH or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def apply(self, f: Any, *args: Any, wait: float = WAIT) -> str:
        return self.send("apply_request", {"serializer": "pickle"}, pack_apply_message(f, args, {}), wait)

    def reply(self, timeout: float = WAIT) -> Message | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return self.session.recv(self.sock, channel="direct")

    def close(self) -> None:
        self.sock.close(linger=0)
        self.context.term()


@pytest.fixture
def client(controller: Any, engine: Engine) -> Iterator[DirectClient]:
    c = DirectClient(controller)
    try:
        yield c
    finally:
        c.close()


def _records(controller: Any, msg_id: str) -> tuple[Message, Message]:
    request = controller.get("mux", lambda m: m.header.get("msg_id") == msg_id)
    reply = controller.get("mux", lambda m: m.parent_header.get("msg_id") == msg_id)
    return request, reply


def test_the_engine_announces_a_loopback_direct_socket(controller: Any, engine: Engine) -> None:
    url = controller.registered().content["direct"]
    assert valid_direct_url(url) == url
    assert url.startswith("tcp://127.0.0.1:")


def test_a_direct_request_runs_and_the_controller_gets_records_of_it(
    controller: Any, engine: Engine, client: DirectClient
) -> None:
    msg_id = client.apply(mark_and_add, 2, 3)
    reply = client.reply()
    assert reply is not None, "no direct reply"
    assert reply.parent_header["msg_id"] == msg_id
    assert reply.content["status"] == "ok"
    assert reply.idents == [client.uuid]
    assert engine.namespace["marked"] is True
    request, record = _records(controller, msg_id)
    # the request's record: its header alone, with the client's identity and the record mark
    assert request.idents == [client.uuid, ME, DIRECT_REQUEST_RECORD]
    assert request.msg_type == "apply_request"
    assert request.content == {}
    assert request.buffers == []
    # the reply's record: the very reply the client got, buffers and all
    assert record.idents == [client.uuid, ME, DIRECT_REPLY_RECORD]
    assert record.header["msg_id"] == reply.header["msg_id"]
    assert [bytes(b) for b in record.buffers] == [bytes(b) for b in reply.buffers]


def test_a_peer_without_the_gate_token_gets_nothing_run(controller: Any, engine: Engine, client: DirectClient) -> None:
    stranger = DirectClient(controller, token=False, identity=b"stranger")
    try:
        with pytest.raises(zmq.ZMQError):  # refused at the handshake: the engine is never its peer
            stranger.apply(mark_and_add, 1, 1, wait=1.0)
    finally:
        stranger.close()
    assert "marked" not in engine.namespace
    client.apply(mark_and_add, 1, 1)  # and the engine still serves its clients
    reply = client.reply()
    assert reply is not None
    assert reply.content["status"] == "ok"


def test_a_forged_direct_request_is_dropped_and_counted(controller: Any, engine: Engine, client: DirectClient) -> None:
    forged = Session(b"x" * 32)  # passes the gate (the token) but signs with another key
    msg = forged.msg("apply_request", {"serializer": "pickle"})
    frames = forged.serialize(msg, pack_apply_message(mark_and_add, (1, 1), {}), [client.uuid])
    client.send("execute_request", {"code": "1", "silent": False}, [])  # the connection is up now
    assert client.reply() is not None
    client.sock.send_multipart(frames)
    assert client.reply(timeout=0.5) is None
    assert "marked" not in engine.namespace
    deadline = time.monotonic() + WAIT
    while engine._session.rejections.get(("direct", "bad_signature"), 0) < 1:
        assert time.monotonic() < deadline, engine._session.rejections
        time.sleep(0.01)


def test_a_reply_whose_client_left_goes_through_the_controller(
    controller: Any, engine: Engine, client: DirectClient
) -> None:
    msg_id = client.apply(slow_double, 21, 0.5)
    controller.get("mux", lambda m: m.header.get("msg_id") == msg_id)  # it reached the engine
    client.sock.close(linger=0)  # the client's direct connection goes (it may still be on mux)
    relayed = controller.reply(msg_id)
    assert relayed.idents == [client.uuid, ME]  # an ordinary reply, for the relay to deliver
    assert controller.value_of(relayed) == 42


def test_an_engine_can_do_without_the_direct_socket(controller: Any) -> None:
    eng = Engine(controller.path, registration_timeout=WAIT, direct=False)
    eng.start()
    try:
        assert "direct" not in controller.registered().content
    finally:
        eng.stop()


def test_requests_queued_behind_a_long_one_are_recorded_while_it_runs(
    controller: Any, engine: Engine, client: DirectClient
) -> None:
    # the hub counts them in queue_status at once, as it does requests it relays itself
    running = client.apply(slow_double, 1, 3.0)
    controller.get("mux", lambda m: m.header.get("msg_id") == running, timeout=2.0)
    t0 = time.monotonic()
    queued = client.apply(slow_double, 2, 0.0)
    controller.get("mux", lambda m: m.header.get("msg_id") == queued, timeout=2.0)
    assert time.monotonic() - t0 < 1.0  # recorded by the engine's tick, long before its turn
    replies = [client.reply(), client.reply()]
    assert [r.parent_header["msg_id"] for r in replies if r is not None] == [running, queued]
