"""The fake controller's task channel: a small scheduler that follows docs/scheduling.md.

It reads only ``header["sched"]`` (targets, after, follow, timeout, retries), holds tasks
until their ``after``/``follow`` are met, gives each to an engine round-robin among those
allowed, retries failures, tries unmet tasks elsewhere, answers DependencyTimeout and
ImpossibleDependency itself, and adds ``attempts`` to the final reply's metadata. Everything
runs in the fake controller's thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq

from corral.wire import wrap_exception
from corral.wire.dependencies import Dependency
from corral.wire.errors import DependencyTimeout, EngineError, ImpossibleDependency, MessageRejected, RemoteError
from corral.wire.message import Message

if TYPE_CHECKING:
    from fake_cluster import FakeCluster, FakeEngine


@dataclass(eq=False)
class Task:
    client_id: bytes
    msg: Message
    sched: dict[str, Any]
    retries_left: int
    tried: set[int] = field(default_factory=set)
    unmet_on: set[int] = field(default_factory=set)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False


class FakeTaskScheduler:
    """Round-robin over allowed engines; dependencies, timeouts, retries, unmet."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        #: every task request received, in order (msg), for tests to inspect headers
        self.received: list[Message] = []
        #: msg_id -> (status, engine id or None) of finished tasks
        self.outcomes: dict[str, tuple[str, int | None]] = {}
        self.held: list[Task] = []
        self.running: dict[str, Task] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._next = 0

    # -- receiving ----------------------------------------------------------------------------

    def on_task(self, sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                msg = self.cluster.session.recv(sock, zmq.NOBLOCK, channel="task")
            except zmq.Again:
                return
            except MessageRejected:
                continue
            self.received.append(msg)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            sched = dict(msg.header.get("sched") or {})
            task = Task(msg.idents[0], msg, sched, int(sched.get("retries", 0)))
            if sched.get("timeout") is not None:
                self.cluster.reactor.call_later(float(sched["timeout"]), self._timed_out, task)
            self._schedule(task)

    # -- scheduling ---------------------------------------------------------------------------

    def _dep(self, name: str, task: Task) -> Dependency | None:
        data = task.sched.get(name)
        return Dependency.from_json(data) if data else None

    def _schedule(self, task: Task) -> None:
        statuses = {m: s for m, (s, _) in self.outcomes.items()}
        after, follow = self._dep("after", task), self._dep("follow", task)
        for dep in (after, follow):
            if dep is not None and dep.unreachable(statuses):
                self._fail(task, ImpossibleDependency("ImpossibleDependency", "a prerequisite ended unacceptably"))
                return
        if (after is not None and not after.check(statuses)) or (follow is not None and not follow.check(statuses)):
            if task not in self.held:
                self.held.append(task)
            return
        allowed = sorted(self.cluster.engines)
        targets = task.sched.get("targets")
        if targets is not None:
            allowed = [e for e in allowed if e in targets]
        if follow is not None:
            where = [{self.outcomes[m][1]} for m in follow if m in self.outcomes]
            ok = set.intersection(*where) if follow.all else set.union(*where)
            allowed = [e for e in allowed if e in ok]
        allowed = [e for e in allowed if e not in task.unmet_on]
        fresh = [e for e in allowed if e not in task.tried]
        choice = fresh or allowed
        if not choice:
            why = "unmet on every engine it may run on" if task.unmet_on else "no engine it may run on is left"
            self._fail(task, ImpossibleDependency("ImpossibleDependency", f"task {task.msg.msg_id}: {why}"))
            return
        engine = self.cluster.engines[choice[self._next % len(choice)]]
        self._next += 1
        task.tried.add(engine.id)
        self.running[task.msg.msg_id] = task
        engine.queued.append(task.msg.msg_id)
        engine.inbox.put(("task", task.client_id, task.msg))

    def _timed_out(self, task: Task) -> None:
        if task in self.held:
            self.held.remove(task)
            self._fail(
                task, DependencyTimeout("DependencyTimeout", f"dependencies of {task.msg.msg_id} not met in time")
            )

    def _recheck(self) -> None:
        for task in list(self.held):
            if task in self.held:
                self.held.remove(task)
                self._schedule(task)

    # -- outcomes ------------------------------------------------------------------------------

    def on_reply(
        self,
        engine: FakeEngine,
        msg: Message,
        content: dict[str, Any],
        metadata: dict[str, Any],
        buffers: list[Any],
    ) -> None:
        task = self.running.pop(msg.msg_id, None)
        if task is None:
            return
        status = content["status"]
        task.attempts.append(
            {
                "engine_id": engine.id,
                "engine_uuid": engine.uuid,
                "status": status,
                "started": metadata.get("started"),
                "completed": metadata.get("completed"),
                "error": metadata.get("error"),
            }
        )
        if status == "unmet":
            task.unmet_on.add(engine.id)
            self._schedule(task)
            return
        if status == "error" and task.retries_left > 0:
            task.retries_left -= 1
            self._schedule(task)
            return
        self._finish(task, content, {**metadata, "attempts": task.attempts}, buffers, status, engine.id)

    def engine_gone(self, engine: FakeEngine, pending: list[tuple[bytes, Message]]) -> None:
        """Tasks queued on an engine that left: retried elsewhere while they may, else EngineError."""
        for _, msg in pending:
            task = self.running.pop(msg.msg_id, None)
            if task is None:
                continue
            task.attempts.append({"engine_id": engine.id, "engine_uuid": engine.uuid, "status": "error"})
            if task.retries_left > 0:
                task.retries_left -= 1
                self._schedule(task)
            else:
                self._fail(task, EngineError("EngineError", f"engine {engine.id} died"), engine.id)

    def _fail(self, task: Task, err: RemoteError, engine_id: int | None = None) -> None:
        content: dict[str, Any] = {**wrap_exception(err), "status": "error"}
        md = {"status": "error", "engine_id": engine_id, "attempts": task.attempts, "error": dict(content)}
        self._finish(task, content, md, [], "error", engine_id)

    def _finish(
        self,
        task: Task,
        content: dict[str, Any],
        metadata: dict[str, Any],
        buffers: list[Any],
        status: str,
        engine_id: int | None,
    ) -> None:
        if task.finished:
            return
        task.finished = True
        self.in_flight -= 1
        self.outcomes[task.msg.msg_id] = (status, engine_id)
        self.cluster.session.send(
            self.cluster.sockets["task"],
            task.msg.msg_type.replace("_request", "_reply"),
            content,
            parent=task.msg,
            ident=[task.client_id],
            buffers=buffers,
            metadata=metadata,
        )
        self._recheck()
