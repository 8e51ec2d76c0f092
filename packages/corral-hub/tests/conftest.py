from __future__ import annotations

import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from corral.hub import Hub, MemoryStore
from corral.wire import Message, RawMessage, Session, harden
from corral.wire.loop import Reactor

KEY = b"h" * 32


class HubBench:
    """A Hub on a reactor thread, bound on loopback, plus helpers to play engines and clients."""

    def __init__(self, period: float = 0.1, misses: int = 3, store: MemoryStore | None = None) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.session = Session(KEY)
        self.sockets: list[zmq.Socket[Any]] = []
        self.urls: dict[str, str] = {}
        socks = {}
        for name, kind in (
            ("registration", zmq.ROUTER),
            ("notification", zmq.PUB),
            ("ping", zmq.PUB),
            ("pong", zmq.ROUTER),
        ):
            s = self.track(harden(self.ctx.socket(kind)))
            self.urls[name] = f"tcp://127.0.0.1:{s.bind_to_random_port('tcp://127.0.0.1')}"
            socks[name] = s
        self.hub = Hub(
            self.session,
            socks["registration"],
            socks["notification"],
            socks["ping"],
            socks["pong"],
            heartbeat_period=period,
            heartbeat_misses=misses,
            store=store,
        )
        self.sent_replies: list[tuple[bytes, bytes, str, dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        self.hub.reply_senders["mux"] = self._record_reply
        self.reactor = Reactor(self.ctx)
        self.hub.register(self.reactor)
        self.hearts: dict[str, threading.Event] = {}
        self.thread = threading.Thread(target=self.reactor.run, daemon=True)
        self.thread.start()
        self.client_session = Session(KEY)
        self.client = self.dealer("registration")
        self.notes = self.track(harden(self.ctx.socket(zmq.SUB)))
        self.notes.setsockopt(zmq.SUBSCRIBE, b"")
        self.notes.connect(self.urls["notification"])

    def _record_reply(
        self,
        client: bytes,
        engine: bytes,
        msg_type: str,
        parent: dict[str, Any],
        content: dict[str, Any],
        metadata: dict[str, Any],
    ) -> bool:
        self.sent_replies.append((client, engine, msg_type, parent, content, metadata))
        return True

    def track(self, sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
        self.sockets.append(sock)
        return sock

    def dealer(self, name: str) -> zmq.Socket[Any]:
        s = self.track(harden(self.ctx.socket(zmq.DEALER)))
        s.connect(self.urls[name])
        return s

    def on_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn on the hub's loop thread (as the relays do) and return its result."""
        done = threading.Event()
        out: list[Any] = []
        self.reactor.call_soon_threadsafe(lambda: (out.append(fn(*args)), done.set()))
        assert done.wait(5)
        return out[0]

    def ask(
        self,
        msg_type: str,
        content: dict[str, Any],
        session: Session | None = None,
        sock: zmq.Socket[Any] | None = None,
    ) -> Message:
        session = session or self.client_session
        sock = sock or self.client
        session.send(sock, msg_type, content)
        assert sock.poll(5000), f"no reply to {msg_type}"
        return session.recv(sock)

    def heart(self, uuid: str) -> threading.Event:
        """Echo pings as uuid until the returned event is set (the engine goes silent)."""
        stop = threading.Event()
        sub = self.track(harden(self.ctx.socket(zmq.SUB)))
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.urls["ping"])
        out = self.track(harden(self.ctx.socket(zmq.DEALER)))
        out.setsockopt(zmq.IDENTITY, uuid.encode())
        out.connect(self.urls["pong"])

        def echo() -> None:
            while not stop.is_set():
                if sub.poll(20):
                    out.send(sub.recv())

        threading.Thread(target=echo, daemon=True).start()
        self.hearts[uuid] = stop
        return stop

    def engine(
        self, requested_id: int | None = None, beat: bool = True, shm: str | None = None, direct: str | None = None
    ) -> tuple[str, Message]:
        """Register an engine: request, hellos (as the relays report them), heart.

        ``shm``: the shared-memory address the engine reports, if any; ``direct``: likewise
        the address of its direct socket.
        """
        uuid = uuidlib.uuid4().hex
        content: dict[str, Any] = {"uuid": uuid, "hostname": "here", "pid": 1, "requested_id": requested_id}
        if shm is not None:
            content["shm"] = shm
        if direct is not None:
            content["direct"] = direct
        reply = self.ask(
            "registration_request",
            content,
            Session(KEY),
            self.dealer("registration"),
        )
        if reply.content.get("status") == "ok":
            for channel in ("mux", "control"):
                self.on_loop(self.hub.hello, channel, uuid.encode())
            if beat:
                self.heart(uuid)
        return uuid, reply

    def note(self, timeout: float = 5) -> Message:
        assert self.notes.poll(int(timeout * 1000)), "no notification"
        return self.client_session.recv(self.notes)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not self.on_loop(condition):
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.01)

    def request(self, engine: str, msg_type: str = "apply_request", channel: str = "mux") -> RawMessage:
        s = Session(KEY)
        frames = s.serialize(s.msg(msg_type, {}))
        raw = self.session.deserialize_raw(frames[1:], stream="client")
        self.on_loop(self.hub.request, channel, raw, b"client-1", engine.encode())
        return raw

    def reply(self, engine: str, request: RawMessage, buffers: list[bytes] | None = None) -> RawMessage:
        s = Session(KEY)
        frames = s.serialize(
            s.msg("apply_reply", {"status": "ok"}, parent=request, metadata={"engine": engine}), buffers or []
        )
        raw = self.session.deserialize_raw(frames[1:], stream="engine")
        forward = self.on_loop(self.hub.reply, "mux", raw, b"client-1", engine.encode())
        assert forward is True
        return raw

    def close(self) -> None:
        for stop in self.hearts.values():
            stop.set()
        time.sleep(0.05)
        self.reactor.stop()
        self.thread.join(5)
        self.reactor.close()
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.destroy(linger=0)


@pytest.fixture
def bench() -> Iterator[HubBench]:
    b = HubBench()
    try:
        yield b
    finally:
        b.close()
