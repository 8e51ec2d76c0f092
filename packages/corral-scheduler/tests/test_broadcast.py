"""The broadcast scheduler, with a scripted client and engines on real loopback sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from corral.scheduler import BroadcastScheduler
from corral.wire import Message, Session, harden, unwrap_exception
from corral.wire.errors import EngineError
from corral.wire.loop import Reactor

pytestmark = pytest.mark.timeout(30)

KEY = b"b" * 32
UUIDS = [bytes([48 + i]) * 32 for i in range(4)]


class Bench:
    def __init__(self, n: int) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.session = Session(KEY)
        self.reactor = Reactor(self.ctx)
        self.sockets: list[zmq.Socket[Any]] = []
        front = self.track(harden(self.ctx.socket(zmq.ROUTER)))
        back = self.track(harden(self.ctx.socket(zmq.ROUTER)))
        front_url = f"tcp://127.0.0.1:{front.bind_to_random_port('tcp://127.0.0.1')}"
        back_url = f"tcp://127.0.0.1:{back.bind_to_random_port('tcp://127.0.0.1')}"
        self.scheduler = BroadcastScheduler(self.session, front, back)
        self.scheduler.register(self.reactor)
        self.thread = threading.Thread(target=self.reactor.run, daemon=True)
        self.thread.start()
        self.cs = Session(KEY)
        self.client = self.dealer(front_url)
        self.es = Session(KEY)
        self.engines = []
        for i, uuid in enumerate(UUIDS[:n]):
            sock = self.dealer(back_url, uuid)
            self.es.send(sock, "engine_hello", {"uuid": uuid.decode()})
            self.call(self.scheduler.add_engine, uuid, i)
            self.engines.append(sock)
        self.wait(lambda: len(self.scheduler.connected) == n)

    def track(self, sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
        self.sockets.append(sock)
        return sock

    def dealer(self, url: str, identity: bytes | None = None) -> zmq.Socket[Any]:
        sock = self.track(harden(self.ctx.socket(zmq.DEALER)))
        if identity:
            sock.setsockopt(zmq.IDENTITY, identity)
        sock.connect(url)
        return sock

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append(fn(*args))
            finally:
                done.set()

        self.reactor.call_soon_threadsafe(run)
        assert done.wait(5)
        return box[0] if box else None

    def wait(self, condition: Callable[[], Any], timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not self.call(condition):
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.005)

    def send(self, targets: Any = None) -> str:
        msg = self.cs.msg("execute_request", {"code": "1"})
        if targets is not None:
            msg.header["sched"] = {"targets": targets}  # type: ignore[typeddict-unknown-key]
        self.cs.send(self.client, msg, buffers=[b"payload"])
        return msg.msg_id

    def recv(self, sock: zmq.Socket[Any], timeout: float = 5) -> Message:
        assert sock.poll(int(timeout * 1000)), "nothing arrived"
        return self.cs.recv(sock)

    def reply(self, i: int, req: Message) -> None:
        meta = {"engine_id": i, "status": "ok"}
        self.es.send(self.engines[i], "execute_reply", {"status": "ok"}, parent=req, ident=req.idents, metadata=meta)

    def close(self) -> None:
        self.reactor.stop()
        self.thread.join(5)
        self.reactor.close()
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def bench() -> Iterator[Bench]:
    b = Bench(3)
    try:
        yield b
    finally:
        b.close()


def test_one_request_reaches_every_engine_and_every_reply_comes_back(bench: Bench) -> None:
    msg_id = bench.send()
    for i, sock in enumerate(bench.engines):
        req = bench.recv(sock)
        assert req.msg_id == msg_id
        assert req.buffers[0] == b"payload"
        bench.reply(i, req)
    replies = [bench.recv(bench.client) for _ in bench.engines]
    assert {r.metadata["engine_id"] for r in replies} == {0, 1, 2}
    assert {r.parent_header["msg_id"] for r in replies} == {msg_id}
    assert bench.call(lambda: len(bench.scheduler.pending)) == 0


def test_targets_choose_engines_and_unknown_ones_get_engine_error(bench: Bench) -> None:
    msg_id = bench.send([2, 9])
    err = unwrap_exception(bench.recv(bench.client).content)
    assert isinstance(err, EngineError)
    assert "9" in str(err)
    req = bench.recv(bench.engines[2])
    assert req.msg_id == msg_id
    assert not bench.engines[0].poll(100)
    bench.reply(2, req)
    assert bench.recv(bench.client).metadata["engine_id"] == 2


def test_an_engine_lost_before_replying_is_answered_for(bench: Bench) -> None:
    msg_id = bench.send([0, 1])
    for i in (0, 1):
        bench.recv(bench.engines[i])
    bench.call(bench.scheduler.engine_lost, UUIDS[1], "killed by SIGKILL")
    reply = bench.recv(bench.client)
    assert reply.parent_header["msg_id"] == msg_id
    assert "killed by SIGKILL" in reply.content["evalue"]
    assert reply.metadata["engine_id"] == 1
    # a late reply from it is dropped
    bench.es.send(bench.engines[1], "execute_reply", {"status": "ok"}, parent={"msg_id": msg_id}, ident=[b"c"])
    bench.wait(lambda: bench.scheduler.dropped["late"] == 1)


def test_junk_is_dropped_and_counted(bench: Bench) -> None:
    bench.client.send_multipart([b"junk"])
    bench.cs.send(bench.client, "execute_request", {}, ident=[b"extra"])
    bench.wait(lambda: sum(n for (c, _), n in bench.session.rejections.items() if c == "broadcast") == 2)
    msg_id = bench.send([0])
    assert bench.recv(bench.engines[0]).msg_id == msg_id
