"""A scripted fake controller on real loopback sockets, and engines to point at it.

:class:`FakeController` binds every channel an engine uses, as docs/messages.md lays them out,
on the ports of a fresh connection file, and runs them on a :class:`corral.wire.loop.Reactor` in
a thread: it answers registration (or refuses it, or stays silent), publishes heartbeat pings,
records hellos, pongs, replies, iopub messages and engine_exit reports, and sends requests as a
scheduler would (``[uuid, client_id, DELIM, ...]`` on the engine-facing ROUTERs). Tests talk to
it from their own thread through queues; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import zmq

from corral.engine import Engine
from corral.wire import Message, MessageRejected, ProtocolVersionError, Session, get_serializer, wrap_exception
from corral.wire.gate import Gate
from corral.wire.loop import Reactor
from corral.wire.serialize import pack_apply_message
from corral.wire.testing import temp_connection_file

CLIENT_ID = b"client-1"
#: seconds: the deadline of every wait in these tests (tests read it as FakeController.WAIT)
WAIT = 15.0


class FakeController:
    """Play the controller's side of every engine-facing channel.

    Parameters
    ----------
    directory
        Where to write the connection file.
    registration
        ``"ok"`` (assign ids from 0, honouring free requested ids), ``"refuse"`` (a wrapped
        ProtocolVersionError), ``"newer"`` (a reply in protocol 2.0) or ``"silent"``.
    ping_period
        Seconds between heartbeat pings; None for none.
    """

    WAIT = WAIT
    ENGINE_CHANNELS = ("mux_engine", "task_engine", "broadcast_engine", "control_engine")

    def __init__(self, directory: Path, *, registration: str = "ok", ping_period: float | None = 0.2) -> None:
        self.path, self.info = temp_connection_file(directory)
        self.session = Session(self.info["key"], scheme=self.info["signature_scheme"])
        self.registration = registration
        self.context: zmq.Context[Any] = zmq.Context()
        # every socket is behind the connection gate, as the real controller's: an engine that
        # does not present the key's token cannot even connect
        self.gate = Gate(self.context, bytes.fromhex(self.info["key"]))
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        kinds = {
            "registration": zmq.ROUTER,
            "heartbeat_ping": zmq.PUB,
            "heartbeat_pong": zmq.ROUTER,
            "iopub_engine": zmq.SUB,
            **dict.fromkeys(self.ENGINE_CHANNELS, zmq.ROUTER),
        }
        for name, kind in kinds.items():
            sock = self.gate.guard(self.context.socket(kind))
            sock.setsockopt(zmq.LINGER, 0)
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.bind(f"tcp://127.0.0.1:{self.info['ports'][name]}")
            self.sockets[name] = sock
        self.queues: dict[str, queue.Queue[Any]] = {
            name: queue.Queue()
            for name in ("registration", "hello", "pong", "iopub", "mux", "task", "broadcast", "control")
        }
        self._stash: dict[str, list[Any]] = {name: [] for name in self.queues}
        self.registrations: list[Message] = []
        self.hellos: set[str] = set()
        self.next_id = 0
        self.pinging = ping_period is not None
        self._round = 0
        self.reactor = Reactor(self.context)
        self.reactor.add_socket(self.sockets["registration"], self._on_registration)
        self.reactor.add_socket(self.sockets["heartbeat_pong"], self._on_pong)
        self.reactor.add_socket(self.sockets["iopub_engine"], self._on_iopub)
        for name in self.ENGINE_CHANNELS:
            self.reactor.add_socket(self.sockets[name], self._make_reader(name.removesuffix("_engine")))
        if ping_period is not None:
            self.reactor.call_every(ping_period, self._ping)
        self._thread = threading.Thread(target=self._run, name="fake-controller", daemon=True)
        self._thread.start()

    # -- the reactor thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.reactor.run()
        finally:
            for sock in self.sockets.values():
                self.reactor.remove_socket(sock)
                sock.close(linger=0)
            self.reactor.close()

    def _recv(self, sock: zmq.Socket[Any], channel: str) -> Iterator[Message]:
        while True:
            try:
                yield self.session.recv(sock, zmq.NOBLOCK, channel=channel)
            except zmq.Again:
                return
            except MessageRejected:
                continue

    def _on_registration(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv(sock, "registration"):
            if msg.msg_type != "registration_request":
                self.queues["registration"].put(msg)
                continue
            self.registrations.append(msg)
            if self.registration == "silent":
                continue
            if self.registration == "refuse":
                err = ProtocolVersionError(
                    "engine speaks corral protocol 1.0, this side speaks 2.0: major versions differ, so the "
                    "two cannot talk. Install matching corral versions on both sides (`corral --version` lists them).",
                    peer_version="1.0",
                )
                content: dict[str, Any] = dict(wrap_exception(err))
                self.session.send(sock, "registration_reply", content, parent=msg, ident=msg.idents)
                continue
            requested = msg.content.get("requested_id")
            engine_id = requested if isinstance(requested, int) and requested >= self.next_id else self.next_id
            self.next_id = engine_id + 1
            content = {"status": "ok", "id": engine_id, "heartbeat_period": 1.0, "heartbeat_misses": 3}
            if self.registration == "newer":
                header = self.session.msg_header("registration_reply")
                header["version"] = "2.0"
                reply = self.session.msg("registration_reply", content, parent=msg, header=header)
                self.session.send(sock, reply, ident=msg.idents)
            else:
                self.session.send(sock, "registration_reply", content, parent=msg, ident=msg.idents)

    def _on_pong(self, sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                self.queues["pong"].put(sock.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return

    def _on_iopub(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv(sock, "iopub"):
            self.queues["iopub"].put(msg)

    def _make_reader(self, channel: str) -> Callable[[zmq.Socket[Any]], None]:
        def read(sock: zmq.Socket[Any]) -> None:
            for msg in self._recv(sock, channel):
                if msg.msg_type == "engine_hello":
                    self.hellos.add(channel)
                    self.queues["hello"].put((channel, msg))
                else:
                    self.queues[channel].put(msg)

        return read

    def _ping(self) -> None:
        if self.pinging:
            self._round += 1
            self.sockets["heartbeat_ping"].send(b"%d" % self._round)

    # -- the test's side -------------------------------------------------------------------

    def close(self) -> None:
        self.reactor.call_soon_threadsafe(self.reactor.stop)
        self._thread.join(WAIT)
        self.gate.stop()
        self.context.term()

    def stop_pinging(self) -> None:
        self.pinging = False

    def get(self, name: str, predicate: Callable[[Any], bool] = lambda m: True, timeout: float = WAIT) -> Any:
        """Return the first item of queue ``name`` matching ``predicate`` (others are kept)."""
        for i, item in enumerate(self._stash[name]):
            if predicate(item):
                return self._stash[name].pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing matching on {name} within {timeout} s (stashed: {self._stash[name]})")
            try:
                item = self.queues[name].get(timeout=left)
            except queue.Empty:
                continue
            if predicate(item):
                return item
            self._stash[name].append(item)

    def drain_stash(self, name: str) -> list[Any]:
        """Return (and forget) every item of queue ``name`` received but not yet taken."""
        items = self._stash[name]
        while True:
            try:
                items.append(self.queues[name].get_nowait())
            except queue.Empty:
                break
        self._stash[name] = []
        return items

    def registered(self, timeout: float = WAIT) -> Message:
        """Wait for the (first) registration request and return it."""
        deadline = time.monotonic() + timeout
        while not self.registrations:
            if time.monotonic() > deadline:
                raise AssertionError("no registration request")
            time.sleep(0.01)
        return self.registrations[0]

    def uuid(self) -> bytes:
        return str(self.registered().content["uuid"]).encode("ascii")

    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any] | None = None,
        buffers: Sequence[Any] = (),
        ident: bytes | None = None,
    ) -> str:
        """Send a request to the engine as a scheduler would; return its msg_id.

        Like the real controller, it waits for the engine's hello on that channel first: a
        ROUTER drops messages for an identity that has not connected yet.
        """
        deadline = time.monotonic() + WAIT
        while channel not in self.hellos:
            if time.monotonic() > deadline:
                raise AssertionError(f"no engine_hello on {channel}")
            time.sleep(0.005)
        msg = self.session.msg(msg_type, content or {})
        sock = self.sockets[f"{channel}_engine"]
        idents = [ident or self.uuid(), CLIENT_ID]
        self.reactor.call_soon_threadsafe(lambda: self.session.send(sock, msg, ident=idents, buffers=list(buffers)))
        return msg.msg_id

    def reply(self, msg_id: str, channel: str = "mux", timeout: float = WAIT) -> Message:
        """Wait for the engine's reply to ``msg_id`` on ``channel``."""
        msg: Message = self.get(channel, lambda m: m.parent_header.get("msg_id") == msg_id, timeout)
        return msg

    def request(
        self, msg_type: str, content: dict[str, Any] | None = None, buffers: Sequence[Any] = (), channel: str = "mux"
    ) -> Message:
        return self.reply(self.send(channel, msg_type, content, buffers), channel)

    def apply(self, f: Callable[..., Any], *args: Any, channel: str = "mux", **kwargs: Any) -> str:
        return self.send(channel, "apply_request", {"serializer": "pickle"}, pack_apply_message(f, args, kwargs))

    def execute(self, code: str, channel: str = "mux", **content: Any) -> str:
        return self.send(channel, "execute_request", {"code": code, "silent": False, **content})

    @staticmethod
    def value_of(reply: Message) -> Any:
        """Deserialize the object in a reply's buffers."""
        return get_serializer(reply.content.get("serializer", "pickle")).loads(reply.buffers)

    def iopub_until_idle(self, msg_id: str, timeout: float = WAIT) -> list[Message]:
        """Return the iopub messages of request ``msg_id``, up to its ``status: idle``."""
        out: list[Message] = []
        while True:
            msg: Message = self.get("iopub", lambda m: m.parent_header.get("msg_id") == msg_id, timeout)
            out.append(msg)
            if msg.msg_type == "status" and msg.content.get("execution_state") == "idle":
                return out


@pytest.fixture
def make_controller(tmp_path: Path) -> Iterator[Callable[..., FakeController]]:
    """Return a factory of fake controllers (each in its own directory), all closed at the end."""
    made: list[FakeController] = []

    def make(**kwargs: Any) -> FakeController:
        directory = tmp_path / f"controller-{len(made)}"
        directory.mkdir()
        ctrl = FakeController(directory, **kwargs)
        made.append(ctrl)
        return ctrl

    try:
        yield make
    finally:
        for ctrl in made:
            ctrl.close()


@pytest.fixture
def controller(make_controller: Callable[..., FakeController]) -> FakeController:
    return make_controller()


@pytest.fixture
def engine(controller: FakeController) -> Iterator[Engine]:
    eng = Engine(controller.path, registration_timeout=WAIT)
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()


class EngineProcess:
    """``python -m corral.engine`` in a subprocess of its own process group, stopped by pid."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, pass_fds: Sequence[int] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "corral.engine", *args],
            pass_fds=tuple(pass_fds),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.output: tuple[str, str] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = WAIT) -> int:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.output = (out.decode(errors="replace"), err.decode(errors="replace"))
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        assert self.output is not None, "wait() first"
        return self.output[1]

    def kill(self) -> None:
        """Kill the whole process group (supervisor and engine), by its id."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.communicate(timeout=WAIT)


@pytest.fixture
def spawn() -> Iterator[Callable[..., EngineProcess]]:
    procs: list[EngineProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, pass_fds: Sequence[int] = ()) -> EngineProcess:
        proc = EngineProcess(args, env, pass_fds)
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.proc.poll() is None or proc.output is None:
                proc.kill()
