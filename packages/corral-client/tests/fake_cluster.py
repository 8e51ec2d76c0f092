"""A scripted controller with fake engines, on real loopback sockets, for the client's tests.

It binds the client-facing channels of a connection file and answers them as
docs/messages.md says the controller and engines do:

- ``registration`` (ROUTER): ``connection_request``, ``queue_request``, ``shutdown_request``;
- ``mux`` (ROUTER): requests addressed to an engine uuid are run by that fake engine, one at a
  time in arrival order, in its own namespace dict, and answered with the documented content,
  metadata and buffers; an unknown uuid is answered at once with a wrapped ``EngineError``;
- ``control`` (ROUTER): abort, clear, shutdown and signal requests, handled at once;
- ``task`` (ROUTER): a small scheduler reading ``header["sched"]`` (``fake_tasks.py``) gives
  each task to a fake engine, which runs it in the same queue as its mux requests;
- ``iopub`` and ``notification`` (XPUB, so the tests can wait for a client's subscriptions).

Requests are really unpacked and run with corral.wire (``unpack_apply_message``,
``Serializer``), so what the client sends must be what an engine can use. The only liberty:
the relay and the engines are one process, so the "controller" checks buffers itself.
"""

from __future__ import annotations

import ast
import importlib.util
import queue
import sys
import threading
import time
import uuid as uuidlib
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import zmq

from corral.wire import Session, get_serializer, unpack_apply_message, wrap_exception
from corral.wire.connection import channel_url
from corral.wire.errors import EngineError, MessageRejected, TaskAborted, UnmetDependency
from corral.wire.gate import Gate
from corral.wire.loop import Reactor
from corral.wire.message import Message
from corral.wire.testing import temp_connection_file


def _sibling(name: str) -> Any:
    """Load a helper module next to this one (tests are imported in importlib mode)."""
    key = f"corral_client_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{name}.py"))
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


FakeTaskScheduler = _sibling("fake_tasks").FakeTaskScheduler


class FakeEngine:
    """One engine: a namespace, a queue of requests run in order by a worker thread."""

    def __init__(self, cluster: FakeCluster, eid: int) -> None:
        self.cluster = cluster
        self.id = eid
        self.uuid = uuidlib.uuid4().hex
        self.namespace: dict[str, Any] = {}
        self.inbox: queue.Queue[tuple[str, bytes, Message] | None] = queue.Queue()
        self.queued: list[str] = []
        self.aborted: set[str] = set()
        self.completed: list[str] = []
        self.signals: list[Any] = []
        self.execution_count = 0
        self._out: dict[str, str] = {}
        self._current: Message | None = None
        self._channel = "mux"
        #: seconds each apply request sleeps before running (to keep tasks in flight)
        self.delay = 0.0
        self.thread = threading.Thread(target=self._work, name=f"fake-engine-{eid}", daemon=True)
        self.thread.start()

    @property
    def info(self) -> dict[str, Any]:
        return {"engine_id": self.id, "engine_uuid": self.uuid}

    def stop(self) -> None:
        self.inbox.put(None)

    # -- the worker ----------------------------------------------------------------------------

    def _print(self, *args: Any, sep: str = " ", end: str = "\n", file: Any = None, flush: bool = False) -> None:
        """Injected as ``print`` in the namespace: output goes to the request's streams."""
        name = "stderr" if file is not None and "err" in str(getattr(file, "name", "")) else "stdout"
        text = sep.join(map(str, args)) + end
        self._out[name] = self._out.get(name, "") + text
        assert self._current is not None
        self.cluster.publish_output(self, self._current, "stream", {"name": name, "text": text})

    def _work(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                return
            channel, client_id, msg = item
            self._channel = channel
            if msg.msg_id in self.queued:
                self.queued.remove(msg.msg_id)
            self._current = msg
            self._out = {}
            started = _now()
            if msg.msg_id in self.aborted:
                content: dict[str, Any] = dict(
                    wrap_exception(TaskAborted("TaskAborted", f"{msg.msg_id} was aborted"), self.info)
                )
                content["status"] = "aborted"
                self._reply(client_id, msg, content, [], started, content)
                continue
            self.cluster.publish_output(self, msg, "status", {"execution_state": "busy"})
            try:
                content, buffers = self._run(msg)
            except UnmetDependency as exc:
                wrapped = dict(wrap_exception(exc, {**self.info, "method": msg.msg_type}))  # type: ignore[typeddict-item]
                self._reply(client_id, msg, {**wrapped, "status": "unmet"}, [], started, wrapped)
            except BaseException as exc:
                wrapped = dict(wrap_exception(exc, {**self.info, "method": msg.msg_type}))  # type: ignore[typeddict-item]
                self.cluster.publish_output(self, msg, "error", wrapped)
                self._reply(client_id, msg, {**wrapped, "status": "error"}, [], started, wrapped)
            else:
                self._reply(client_id, msg, {"status": "ok", **content}, buffers, started, None)
            self.cluster.publish_output(self, msg, "status", {"execution_state": "idle"})

    def _reply(
        self,
        client_id: bytes,
        msg: Message,
        content: dict[str, Any],
        buffers: list[Any],
        started: str,
        error: dict[str, Any] | None,
    ) -> None:
        metadata = {
            "started": started,
            "completed": _now(),
            "engine_id": self.id,
            "engine_uuid": self.uuid,
            "status": content["status"],
            "stdout": self._out.get("stdout", ""),
            "stderr": self._out.get("stderr", ""),
            "msg_id": msg.msg_id,
            "error": error,
        }
        self.completed.append(msg.msg_id)
        reply_type = msg.msg_type.replace("_request", "_reply")
        if self._channel == "broadcast":
            self.cluster.call(
                self.cluster.send_reply, "broadcast", client_id, self, msg, reply_type, content, metadata, buffers
            )
            return
        if self._channel == "task":
            self.cluster.call(self.cluster.tasks.on_reply, self, msg, content, metadata, buffers)
            return
        self.cluster.call(self.cluster.send_reply, "mux", client_id, self, msg, reply_type, content, metadata, buffers)

    def _run(self, msg: Message) -> tuple[dict[str, Any], list[Any]]:
        ns = self.namespace
        ns["print"] = self._print
        kind = msg.msg_type
        if kind == "apply_request":
            if self.delay:
                time.sleep(self.delay)
            ser = get_serializer(msg.content["serializer"])
            f, args, kwargs = unpack_apply_message(msg.buffers, ns, ser)
            return {"serializer": ser.name}, ser.dumps(f(*args, **kwargs))
        if kind == "execute_request":
            return self._execute(msg)
        if kind == "push_request":
            ser = get_serializer(msg.content["serializer"])
            ns.update(ser.loads(msg.buffers, ns))
            return {}, []
        if kind == "pull_request":
            names = msg.content["names"]
            missing = [n for n in names if n not in ns]
            if missing:
                raise NameError(f"name {missing[0]!r} is not defined")
            value = ns[names[0]] if msg.content["single"] else [ns[n] for n in names]
            ser = get_serializer("pickle")
            return {"serializer": ser.name}, ser.dumps(value)
        raise ValueError(f"unknown request type {kind}")

    def _execute(self, msg: Message) -> tuple[dict[str, Any], list[Any]]:
        self.execution_count += 1
        tree = ast.parse(msg.content["code"], "<execute>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<execute>", "exec"), self.namespace)
        value = eval(compile(last, "<execute>", "eval"), self.namespace) if last is not None else None
        result = None
        buffers: list[Any] = []
        if value is not None:
            result = {"data": {"text/plain": repr(value)}, "execution_count": self.execution_count}
            if not msg.content.get("silent", True):
                self.cluster.publish_output(self, msg, "execute_result", result)
            try:
                buffers = get_serializer("pickle").dumps(value)
            except Exception:
                buffers = []
        return {"execution_count": self.execution_count, "execute_result": result, "serializer": "pickle"}, buffers


class FakeCluster:
    """The scripted controller: binds the channels of a fresh connection file in ``directory``."""

    def __init__(self, directory: Path, n: int = 3) -> None:
        self.path, self.info = temp_connection_file(directory)
        self.session = Session(self.info["key"], scheme=self.info["signature_scheme"])
        self.ctx = zmq.Context()
        self.gate = Gate(self.ctx, self.session.key)  # as the controller: only key holders connect
        self.reactor = Reactor(self.ctx)
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        kinds = {
            "registration": zmq.ROUTER,
            "mux": zmq.ROUTER,
            "control": zmq.ROUTER,
            "task": zmq.ROUTER,
            "broadcast": zmq.ROUTER,
            "iopub": zmq.XPUB,
            "notification": zmq.XPUB,
        }
        for name, kind in kinds.items():
            sock = self.gate.guard(self.ctx.socket(kind))
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(channel_url(self.info, name))
            self.sockets[name] = sock
        self.subscriptions: Counter[str] = Counter()
        self.engines: dict[int, FakeEngine] = {}
        self.next_id = 0
        self.hub_shutdown = False
        self.queries: list[Message] = []
        self.answer_connection = True
        self.reactor.add_socket(self.sockets["registration"], self._on_registration)
        self.reactor.add_socket(self.sockets["mux"], self._on_mux)
        self.reactor.add_socket(self.sockets["control"], self._on_control)
        #: the load-balancing side, on the ``task`` channel
        self.tasks = FakeTaskScheduler(self)
        self.reactor.add_socket(self.sockets["task"], self.tasks.on_task)
        #: every broadcast request received (msg)
        self.broadcasts: list[Message] = []
        self.reactor.add_socket(self.sockets["broadcast"], self._on_broadcast)
        for name in ("iopub", "notification"):
            self.reactor.add_socket(self.sockets[name], self._on_subscription)
        for _ in range(n):
            self._add_engine()
        self.thread = threading.Thread(target=self.reactor.run, name="fake-controller", daemon=True)
        self.thread.start()

    # -- plumbing ------------------------------------------------------------------------------

    def call(self, fn: Any, *args: Any) -> None:
        self.reactor.call_soon_threadsafe(fn, *args)

    def sync(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` in the controller thread and return its result."""
        box: list[Any] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append(fn(*args))
            finally:
                done.set()

        self.call(run)
        assert done.wait(10), "the fake controller is stuck"
        return box[0] if box else None

    def close(self) -> None:
        for engine in self.engines.values():
            engine.stop()
        for engine in self.engines.values():
            engine.thread.join(5)
        self.reactor.stop()
        self.thread.join(5)
        for sock in self.sockets.values():
            sock.close(linger=0)
        self.reactor.close()
        self.gate.stop()
        self.ctx.term()

    def wait_for_subscribers(self, n: int = 1, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while min(self.subscriptions["iopub"], self.subscriptions["notification"]) < n:
            assert time.monotonic() < deadline, f"no subscriber after {timeout} s: {self.subscriptions}"
            time.sleep(0.005)

    def _on_subscription(self, sock: zmq.Socket[Any]) -> None:
        name = "iopub" if sock is self.sockets["iopub"] else "notification"
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01":
                self.subscriptions[name] += 1

    def _recv(self, sock: zmq.Socket[Any], channel: str) -> list[Message]:
        out = []
        while True:
            try:
                out.append(self.session.recv(sock, zmq.NOBLOCK, channel=channel))
            except zmq.Again:
                return out
            except MessageRejected:
                continue

    # -- engines -------------------------------------------------------------------------------

    def _add_engine(self) -> FakeEngine:
        engine = FakeEngine(self, self.next_id)
        self.next_id += 1
        self.engines[engine.id] = engine
        return engine

    def add_engine(self) -> FakeEngine:
        """Register a new engine and notify clients."""

        def add() -> FakeEngine:
            engine = self._add_engine()
            self.session.send(self.sockets["notification"], "engine_registered", {"id": engine.id, "uuid": engine.uuid})
            return engine

        result: FakeEngine = self.sync(add)
        return result

    def remove_engine(self, eid: int, reason: str = "killed by SIGKILL", fail_requests: bool = True) -> None:
        """Drop an engine and notify clients; its queued requests fail with EngineError if asked."""

        def remove() -> None:
            engine = self.engines.pop(eid)
            engine.stop()
            pending: list[tuple[str, bytes, Message]] = []
            while True:
                try:
                    item = engine.inbox.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    pending.append(item)
            self.session.send(
                self.sockets["notification"],
                "engine_unregistered",
                {"id": eid, "uuid": engine.uuid, "reason": reason},
            )
            if fail_requests:
                self.tasks.engine_gone(engine, [(c, m) for ch, c, m in pending if ch == "task"])
                for _, client_id, msg in [p for p in pending if p[0] == "mux"]:
                    err = EngineError("EngineError", f"engine {eid} died ({reason})", "", engine.info)  # type: ignore[arg-type]
                    content = {**wrap_exception(err, engine.info), "status": "error"}  # type: ignore[arg-type]
                    self.send_reply(
                        "mux", client_id, engine, msg, msg.msg_type.replace("_request", "_reply"), content, {}, []
                    )

        self.sync(remove)

    def send_reply(
        self,
        channel: str,
        client_id: bytes,
        engine: FakeEngine,
        msg: Message,
        msg_type: str,
        content: dict[str, Any],
        metadata: dict[str, Any],
        buffers: list[Any],
    ) -> None:
        self.session.send(
            self.sockets[channel],
            msg_type,
            content,
            parent=msg,
            ident=[client_id, engine.uuid.encode("ascii")],
            buffers=buffers,
            metadata=metadata,
        )

    def publish_output(self, engine: FakeEngine, msg: Message, msg_type: str, content: dict[str, Any]) -> None:
        def publish() -> None:
            self.session.send(self.sockets["iopub"], msg_type, content, parent=msg, metadata=engine.info)

        self.call(publish)

    # -- handlers ------------------------------------------------------------------------------

    def _on_registration(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv(sock, "registration"):
            self.queries.append(msg)
            ident = msg.idents
            if msg.msg_type == "connection_request":
                if not self.answer_connection:
                    continue
                engines = {str(e.id): e.uuid for e in self.engines.values()}
                self.session.send(
                    sock, "connection_reply", {"status": "ok", "engines": engines}, parent=msg, ident=ident
                )
            elif msg.msg_type == "queue_request":
                wanted = msg.content["targets"]
                verbose = msg.content["verbose"]
                content: dict[str, Any] = {"status": "ok", "unassigned": 0}
                for e in self.engines.values():
                    if wanted is None or e.id in wanted:
                        q = list(e.queued)
                        done = list(e.completed)
                        content[str(e.id)] = {
                            "queue": q if verbose else len(q),
                            "completed": done if verbose else len(done),
                            "tasks": [] if verbose else 0,
                        }
                self.session.send(sock, "queue_reply", content, parent=msg, ident=ident)
            elif msg.msg_type == "shutdown_request":
                self.hub_shutdown = bool(msg.content.get("hub"))
                self.session.send(sock, "shutdown_reply", {"status": "ok"}, parent=msg, ident=ident)

    def _engine_for(self, msg: Message) -> FakeEngine | None:
        uuid = msg.idents[1].decode("ascii") if len(msg.idents) > 1 else ""
        for engine in self.engines.values():
            if engine.uuid == uuid:
                return engine
        return None

    def _unknown_engine(self, channel: str, msg: Message) -> None:
        err = EngineError("EngineError", f"no engine with uuid {msg.idents[1]!r} is registered")
        content = {**wrap_exception(err), "status": "error"}
        self.session.send(
            self.sockets[channel],
            msg.msg_type.replace("_request", "_reply"),
            content,
            parent=msg,
            ident=msg.idents[:2],
        )

    def _on_mux(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv(sock, "mux"):
            engine = self._engine_for(msg)
            if engine is None:
                self._unknown_engine("mux", msg)
                continue
            engine.queued.append(msg.msg_id)
            engine.inbox.put(("mux", msg.idents[0], msg))

    def _on_broadcast(self, sock: zmq.Socket[Any]) -> None:
        """One message, a copy to each engine named in header["sched"]["targets"] (null: all)."""
        for msg in self._recv(sock, "broadcast"):
            self.broadcasts.append(msg)
            targets = (msg.header.get("sched") or {}).get("targets")
            for eid in sorted(self.engines) if targets is None else targets:
                engine = self.engines.get(eid)
                if engine is None:
                    err = EngineError("EngineError", f"engine {eid} is not registered")
                    content = {**wrap_exception(err, {"engine_id": eid}), "status": "error"}
                    self.session.send(
                        sock,
                        msg.msg_type.replace("_request", "_reply"),
                        content,
                        parent=msg,
                        ident=msg.idents[:1],
                        metadata={"engine_id": eid, "status": "error"},
                    )
                    continue
                engine.queued.append(msg.msg_id)
                engine.inbox.put(("broadcast", msg.idents[0], msg))

    def _on_control(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv(sock, "control"):
            engine = self._engine_for(msg)
            if engine is None:
                self._unknown_engine("control", msg)
                continue
            kind = msg.msg_type
            if kind == "abort_request":
                ids = msg.content["msg_ids"]
                engine.aborted.update(engine.queued if ids is None else ids)
            elif kind == "clear_request":
                engine.namespace.clear()
            elif kind == "signal_request":
                engine.signals.append(msg.content["signal"])
            md = {"engine_id": engine.id, "engine_uuid": engine.uuid, "status": "ok", "msg_id": msg.msg_id}
            md.update(started=_now(), completed=_now(), stdout="", stderr="", error=None)
            self.send_reply(
                "control", msg.idents[0], engine, msg, kind.replace("_request", "_reply"), {"status": "ok"}, md, []
            )
            if kind == "shutdown_request":
                self.engines.pop(engine.id, None)
                engine.stop()
                self.session.send(
                    self.sockets["notification"],
                    "engine_unregistered",
                    {"id": engine.id, "uuid": engine.uuid, "reason": "shutdown"},
                )
