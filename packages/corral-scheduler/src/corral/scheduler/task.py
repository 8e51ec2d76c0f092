"""The load-balanced task scheduler: each task runs on one engine the scheduler chooses.

Clients send ordinary requests on ``task``; the scheduler holds each one until its
dependencies are met and an allowed engine has room, then forwards it on ``task_engine``::

    client DEALER sends          [DELIM, sig, header, ...]
    task ROUTER receives         [client_id, DELIM, ...]
    task_engine ROUTER sends     [engine_uuid, client_id, DELIM, sig', ...]

and the engine's reply comes back the same way. Everything it decides comes from
``header["sched"]`` (targets, after, follow, timeout, retries) and, for replies, the parent
header's msg_id and the reply header's ``status`` (see ``docs/scheduling.md``). Payloads are
never decoded or copied; a final reply's metadata is re-encoded only to add ``attempts``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import zmq

from corral.scheduler import policies
from corral.scheduler.dependencies import IMPOSSIBLE, MET, DependencySpec, Outcome, check
from corral.scheduler.monitor import Monitor
from corral.scheduler.relay import drain
from corral.wire import MessageRejected, RawMessage, Session
from corral.wire.errors import (
    DependencyTimeout,
    EngineError,
    ImpossibleDependency,
    RemoteError,
    TaskAborted,
    error_reply,
    wrap_exception,
)
from corral.wire.loop import Reactor, Timer
from corral.wire.session import json_frame

__all__ = ["DEFAULT_HWM", "TaskMonitor", "TaskScheduler"]

log = logging.getLogger(__name__)

#: Tasks outstanding per engine by default: None, adaptive (see :class:`TaskScheduler`).
DEFAULT_HWM: int | None = None

#: The adaptive limit's range: at least one task running and one queued behind it, so an engine
#: never waits for the scheduler between tasks; at most this many for very short tasks.
AUTO_HWM_MIN = 2
AUTO_HWM_MAX = 64

#: The adaptive limit queues about this many seconds of work per engine.
AUTO_HWM_QUEUE_SECONDS = 0.02

#: A task running on this many engines that died is failed as poisonous, retries or not.
POISON_KILLS = 3

#: Finished tasks whose outcome and engine are remembered for dependency checks.
DEFAULT_MAX_FINISHED = 10_000

#: Seconds between looks at the hub for dependencies on requests of other channels.
EXTERNAL_POLL = 0.05

#: Seconds a prerequisite unknown everywhere is waited for before the task is failed: a
#: request sent just before on another channel (mux) may reach the controller after the task.
UNKNOWN_GRACE = 1.0


class TaskMonitor(Monitor, Protocol):
    """What the task scheduler tells the hub besides :class:`Monitor`'s calls."""

    def answered(
        self,
        channel: str,
        client: bytes,
        engine: str,
        request_header: dict[str, Any],
        parts: tuple[str, dict[str, Any], dict[str, Any]],
        delivered: bool,
    ) -> None:
        """The scheduler answered a task itself (``parts``: msg_type, content, metadata)."""


def _never_heard(msg_id: str) -> Outcome:
    return ("unknown", None, None)


def _json_part(frame: Any) -> Any:
    try:
        return json_frame(frame)
    except (ValueError, RecursionError):
        return None


@dataclass(slots=True, eq=False)
class Task:
    """One task the scheduler holds, from submission to its final reply."""

    msg_id: str
    client: bytes
    raw: RawMessage
    seq: int
    arrived: float = 0.0
    targets: frozenset[int] | None = None
    after: DependencySpec | None = None
    follow: DependencySpec | None = None
    timeout: float | None = None
    retries: int = 0
    #: engines ``follow`` allows, once met
    allowed: frozenset[bytes] | None = None
    #: where it is running now
    engine: bytes | None = None
    timer: Timer | None = None
    #: engines that said its dependencies are unmet there (never tried again)
    unmet_on: set[bytes] | None = None
    #: engines where it failed (others preferred for a retry)
    failed_on: set[bytes] | None = None
    #: one entry per finished attempt; None when nobody asked for retries
    attempts: list[dict[str, Any]] | None = None
    #: waits on requests the hub knows and this scheduler does not
    external: bool = False
    #: when it was last sent to an engine (the scheduler's send counter): an engine runs its
    #: tasks in the order they were sent, so the earliest one it holds is the one running
    dispatched: int = 0
    #: engines that died while it was the one running there
    kills: int = 0

    @property
    def waits(self) -> bool:
        return self.after is not None or self.follow is not None


def _parse_sched(sched: Any) -> dict[str, Any]:
    if not isinstance(sched, dict):
        raise ValueError(f"header['sched'] must be an object, not {type(sched).__name__}")
    out: dict[str, Any] = {}
    targets = sched.get("targets")
    if targets is not None:
        if isinstance(targets, int) and not isinstance(targets, bool):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in targets):
            raise ValueError(f"sched targets must be a list of engine ids or null, not {targets!r}")
        out["targets"] = frozenset(targets)
    out["after"] = DependencySpec.from_json(sched.get("after"))
    out["follow"] = DependencySpec.from_json(sched.get("follow"))
    timeout = sched.get("timeout")
    if timeout is not None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
            raise ValueError(f"sched timeout must be a non-negative number of seconds or null, not {timeout!r}")
        out["timeout"] = float(timeout) or None  # 0 means none, as in ipyparallel
    retries = sched.get("retries", 0)
    if retries is None:
        retries = 0
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"sched retries must be a non-negative integer, not {retries!r}")
    out["retries"] = retries
    return out


class TaskScheduler:
    """Schedule load-balanced tasks onto engines (``task`` and ``task_engine`` channels).

    Parameters
    ----------
    session
        The controller's session.
    client_socket, engine_socket
        Bound ROUTER sockets facing clients (``task``) and engines (``task_engine``).
    monitor
        The hub: told of every routed request, final reply and controller-made reply.
    scheme
        How to choose an engine, a key of :data:`corral.scheduler.policies.SCHEMES`.
    hwm
        Most tasks outstanding per engine (0: no limit). None (the default) adapts it to how
        long tasks take: each engine gets about :data:`AUTO_HWM_QUEUE_SECONDS` of work queued,
        at least :data:`AUTO_HWM_MIN` and at most :data:`AUTO_HWM_MAX` tasks; the estimate is
        the time between consecutive replies of an engine that stayed busy, kept per engine
        (the slowest engine sets the limit), rising at once and falling gradually.
    lookup
        Answers ``(state, status, engine_uuid)`` for msg_ids this scheduler does not know
        (the hub's store: tasks it forgot, requests of other channels).
    max_finished
        Finished tasks remembered here for dependency checks (oldest forgotten first).
    rng
        Randomness for the random schemes.

    Raises
    ------
    ValueError
        If ``scheme`` is unknown or ``hwm`` negative.
    """

    channel = "task"

    def __init__(
        self,
        session: Session,
        client_socket: zmq.Socket[Any],
        engine_socket: zmq.Socket[Any],
        monitor: TaskMonitor | None = None,
        *,
        scheme: str = policies.DEFAULT_SCHEME,
        hwm: int | None = DEFAULT_HWM,
        lookup: Callable[[str], Outcome] | None = None,
        max_finished: int = DEFAULT_MAX_FINISHED,
        rng: random.Random | None = None,
    ) -> None:
        if scheme not in policies.SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; schemes are {', '.join(sorted(policies.SCHEMES))}")
        if hwm is not None and hwm < 0:
            raise ValueError(f"hwm must be 0 (no limit) or positive, not {hwm}")
        self.session = session
        self.client_socket = client_socket
        self.engine_socket = engine_socket
        self.monitor: TaskMonitor = monitor if monitor is not None else _NullTaskMonitor()
        self.scheme = scheme
        self.hwm = hwm
        #: the limit in force: ``hwm``, or the adaptive one
        self.limit = AUTO_HWM_MIN if hwm is None else hwm
        #: adaptive limit: per engine, (time of its last reply, whether it stayed busy after it)
        self._last_reply: dict[bytes, tuple[float, bool]] = {}
        #: adaptive limit: per engine, the estimated seconds a task takes there
        self._service: dict[bytes, float] = {}
        self.lookup = lookup or _never_heard
        self.max_finished = max_finished
        self.rng = rng or random.Random()
        #: live engines: uuid bytes -> engine id
        self.engines: dict[bytes, int] = {}
        #: engines whose task_engine socket said hello
        self.connected: set[bytes] = set()
        self.loads: dict[bytes, int] = {}
        self.last_used: dict[bytes, int] = {}
        #: every task not finished yet, by msg_id
        self.tasks: dict[str, Task] = {}
        #: tasks whose dependencies are not met yet
        self.waiting: dict[str, Task] = {}
        #: prerequisite msg_id -> msg_ids of waiting tasks
        self.dependents: dict[str, set[str]] = {}
        #: ready tasks by the engines they may use (None: any), each queue in arrival order
        self.queues: dict[frozenset[bytes] | None, deque[Task]] = {}
        #: finished tasks: msg_id -> (status, engine uuid or None), bounded
        self.finished: dict[str, tuple[str, bytes | None]] = {}
        #: replies dropped because their task was not running there (late, duplicate, unknown)
        self.dropped: Counter[str] = Counter()
        self._candidates: list[bytes] = []
        self._seq = 0
        self._uses = 0
        self._reactor: Reactor | None = None
        self._poll: Timer | None = None
        self._saw_external = False
        self._grace = False
        for sock in (client_socket, engine_socket):
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)

    def register(self, reactor: Reactor) -> None:
        """Start scheduling on ``reactor``."""
        self._reactor = reactor
        reactor.add_socket(self.client_socket, self._from_clients)
        reactor.add_socket(self.engine_socket, self._from_engines)

    # -- engines ---------------------------------------------------------------------------

    def _refresh(self) -> None:
        self._candidates = sorted((u for u in self.engines if u in self.connected), key=self.engines.__getitem__)

    def add_engine(self, uuid: bytes, engine_id: int) -> None:
        """Allow tasks to go to ``uuid`` (once its ``task_engine`` socket said hello)."""
        self.engines[uuid] = engine_id
        self.loads.setdefault(uuid, 0)
        self._refresh()
        self._dispatch()

    def engine_lost(self, uuid: bytes, reason: str = "left") -> None:
        """``uuid`` is gone: resubmit its tasks that have retries left, fail the others at once.

        Tasks that can now never run (``follow`` only where it was, ``targets`` only it) fail
        with :class:`ImpossibleDependency`.
        """
        engine_id = self.engines.pop(uuid, None)
        self.connected.discard(uuid)
        self.loads.pop(uuid, None)
        self.last_used.pop(uuid, None)
        self._forget_timing(uuid)
        self._refresh()
        stranded = sorted((t for t in self.tasks.values() if t.engine == uuid), key=lambda t: t.dispatched)
        # the engine ran its tasks one at a time in the order they were sent: only the earliest
        # can have started; the others never ran there and go back to the queue as they were
        for task in reversed(stranded[1:]):
            task.engine = None
            self._place(task, front=True)
        for task in stranded[:1]:
            task.engine = None
            task.kills += 1
            what = task.raw.header.get("msg_type", "request")
            err = EngineError(
                "EngineError",
                f"engine {engine_id} {reason} while {task.msg_id} ({what}) was running",
            )
            if task.kills >= POISON_KILLS:
                err = EngineError(
                    "EngineError",
                    f"engine {engine_id} {reason} while {task.msg_id} ({what}) was running: "
                    f"{task.kills} engines have died running it, so it is failed as poisonous instead of "
                    "being tried again",
                )
            info = {"engine_id": engine_id, "engine_uuid": uuid.decode(errors="replace"), "method": ""}
            attempt = {
                "engine_id": engine_id,
                "engine_uuid": uuid.decode(errors="replace"),
                "status": "error",
                "started": None,
                "completed": None,
                "error": dict(wrap_exception(err, info)),  # type: ignore[arg-type]
            }
            if task.attempts is not None:
                task.attempts.append(attempt)
            if task.retries > 0 and task.kills < POISON_KILLS:
                task.retries -= 1
                self._place(task, front=True)
            else:
                self._fail(task, err, uuid, engine_id)
        # queued tasks restricted to engines that are all gone now
        for key in [k for k in self.queues if k is not None and not any(u in self.engines for u in k)]:
            for task in self.queues.pop(key):
                self._impossible(task, self._why_nowhere(task))
        for task in [t for t in self.waiting.values() if t.follow is not None or t.targets is not None]:
            self._evaluate(task)
        self._dispatch()

    def _forget_timing(self, uuid: bytes) -> None:
        self._last_reply.pop(uuid, None)
        if self._service.pop(uuid, None) is not None and self.hwm is None:
            slowest = max(self._service.values(), default=0.0)
            fits = int(AUTO_HWM_QUEUE_SECONDS / slowest) if slowest > 0 else AUTO_HWM_MIN
            self.limit = max(AUTO_HWM_MIN, min(AUTO_HWM_MAX, fits))

    def remove_engine(self, uuid: bytes) -> None:
        """Same as :meth:`engine_lost` with no reason given."""
        self.engine_lost(uuid)

    # -- aborts ----------------------------------------------------------------------------

    def abort(self, msg_ids: Iterable[str]) -> int:
        """Fail the named tasks that are still held here with ``TaskAborted``; return how many.

        A task waiting for its dependencies or for an engine with room never reaches an engine
        that could abort it, so the scheduler answers it itself, at once. Tasks already sent to
        an engine are left to that engine (it is told by the same ``abort_request``); unknown
        and finished msg_ids are ignored.
        """
        aborted = 0
        for msg_id in msg_ids:
            task = self.tasks.get(msg_id) if isinstance(msg_id, str) else None
            if task is None or task.engine is not None:
                continue
            for key, queue in list(self.queues.items()):
                if task in queue:
                    queue.remove(task)
                    if not queue:
                        del self.queues[key]
                    break
            self._fail(
                task,
                TaskAborted("TaskAborted", f"task {msg_id} was aborted before it ran (held by the scheduler)"),
                None,
                None,
            )
            aborted += 1
        if aborted:
            self._dispatch()
        return aborted

    def abort_request(self, raw: RawMessage) -> int:
        """Apply a client's ``abort_request`` (seen on the ``control`` channel) to held tasks.

        Only this low-volume message's content is decoded; one naming no msg_ids (abort all
        queued on an engine) concerns engines' queues, not the scheduler's. Returns the number
        of tasks aborted here.
        """
        if raw.msg_type != "abort_request":
            return 0
        content = _json_part(raw.frames[3]) if len(raw.frames) > 3 else None
        msg_ids = content.get("msg_ids") if isinstance(content, dict) else None
        if not isinstance(msg_ids, list):
            return 0
        return self.abort(m for m in msg_ids if isinstance(m, str))

    # -- state -----------------------------------------------------------------------------

    def unassigned(self) -> int:
        """Tasks held here, not yet on an engine (waiting for dependencies or room)."""
        return sum(1 for t in self.tasks.values() if t.engine is None)

    def counts(self) -> dict[str, int]:
        """Sizes of the scheduler's tables (for tests and diagnostics)."""
        return {
            "tasks": len(self.tasks),
            "waiting": len(self.waiting),
            "dependents": len(self.dependents),
            "queued": sum(len(q) for q in self.queues.values()),
            "finished": len(self.finished),
        }

    def _remember(self, msg_id: str, status: str, engine: bytes | None) -> None:
        finished = self.finished
        finished[msg_id] = (status, engine)
        if len(finished) > self.max_finished:
            del finished[next(iter(finished))]

    def forget(self, msg_ids: list[str] | None) -> None:
        """Forget finished tasks a client purged (``None``: every finished task)."""
        if msg_ids is None:
            self.finished = {}  # a new dict: one emptied by deletions keeps its table
            return
        for msg_id in msg_ids:
            self.finished.pop(msg_id, None)

    def _lookup(self, msg_id: str) -> Outcome:
        done = self.finished.get(msg_id)
        if done is not None:
            return ("completed", done[0], done[1])
        if msg_id in self.tasks:
            return ("pending", None, None)
        state, status, engine = self.lookup(msg_id)
        if state == "unknown" and self._grace:
            state = "pending"
        if state == "pending":
            self._saw_external = True
        return (state, status, engine.encode() if isinstance(engine, str) else engine)

    # -- clients -> engines ----------------------------------------------------------------

    def _from_clients(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel="task")
            except MessageRejected:
                continue  # counted and logged by the session
            if len(raw.idents) != 1:
                session.reject("task", MessageRejected("malformed", "a task request needs exactly one identity"))
                continue
            client = raw.idents[0]
            msg_id = raw.header["msg_id"]
            if msg_id in self.tasks:
                session.reject("task", MessageRejected("malformed", f"task {msg_id} is already being scheduled"))
                continue
            self._seq += 1
            task = Task(msg_id, client, raw, self._seq, time.monotonic())
            self.tasks[msg_id] = task
            # the hub records the task now, on no engine yet: from here on any client can
            # see it (pending) by its msg_id, even if its own client goes away
            self.monitor.request("task", raw, client, b"")
            sched = raw.header.get("sched")
            if sched is None:
                self._place(task)
                continue
            try:
                parsed = _parse_sched(sched)
            except ValueError as err:
                self._fail(task, RemoteError("ValueError", str(err)), None, None)
                continue
            task.targets = parsed.get("targets")
            task.after = parsed["after"]
            task.follow = parsed["follow"]
            task.timeout = parsed.get("timeout")
            task.retries = parsed["retries"]
            if task.retries:
                task.attempts = []
            if task.waits:
                self._evaluate(task)
            else:
                self._place(task)
        # a send that found an engine unreachable put its task back in a queue
        self._dispatch()

    def _evaluate(self, task: Task) -> None:
        """Judge a task's dependencies: fail it, keep it waiting, or queue it."""
        self._saw_external = False
        self._grace = time.monotonic() - task.arrived < UNKNOWN_GRACE
        verdict = check(task.after, task.follow, self._lookup, self.engines)
        if verdict.verdict == IMPOSSIBLE:
            self._impossible(task, verdict.reason)
            return
        if verdict.verdict == MET:
            self._stop_waiting(task)
            task.allowed = verdict.allowed
            self._place(task)
            return
        if task.msg_id not in self.waiting:
            self.waiting[task.msg_id] = task
            for dep in (task.after, task.follow):
                if dep is not None:
                    for m in dep.msg_ids:
                        self.dependents.setdefault(m, set()).add(task.msg_id)
            if task.timeout is not None and self._reactor is not None:
                task.timer = self._reactor.call_later(task.timeout, self._timed_out, task.msg_id)
        task.external = self._saw_external
        if task.external and self._poll is None and self._reactor is not None:
            self._poll = self._reactor.call_every(EXTERNAL_POLL, self._poll_external)

    def _stop_waiting(self, task: Task) -> None:
        if self.waiting.pop(task.msg_id, None) is None:
            return
        for dep in (task.after, task.follow):
            if dep is not None:
                for m in dep.msg_ids:
                    waiters = self.dependents.get(m)
                    if waiters is not None:
                        waiters.discard(task.msg_id)
                        if not waiters:
                            del self.dependents[m]
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None

    def _poll_external(self) -> None:
        external = [t for t in self.waiting.values() if t.external]
        for task in external:
            self._evaluate(task)
        if not any(t.external for t in self.waiting.values()) and self._poll is not None:
            self._poll.cancel()
            self._poll = None
        self._dispatch()

    def _timed_out(self, msg_id: str) -> None:
        task = self.waiting.get(msg_id)
        if task is None:
            return
        task.timer = None
        self._fail(
            task,
            DependencyTimeout(
                "DependencyTimeout", f"the dependencies of task {msg_id} were not met within {task.timeout:g} s"
            ),
            None,
            None,
        )
        self._dispatch()

    def _key(self, task: Task) -> frozenset[bytes] | None:
        """The engines ``task`` may go to now (None: any)."""
        allowed: set[bytes] | frozenset[bytes] | None = None
        if task.targets is not None:
            allowed = {u for u, i in self.engines.items() if i in task.targets}
        if task.allowed is not None:
            allowed = task.allowed if allowed is None else allowed & task.allowed
        if task.unmet_on:
            allowed = (set(self.engines) if allowed is None else allowed) - task.unmet_on
        if task.failed_on:
            # a retry goes elsewhere when it can, and back where it failed rather than nowhere
            preferred = (set(self.engines) if allowed is None else allowed) - task.failed_on
            if preferred:
                allowed = preferred
        return None if allowed is None else frozenset(allowed)

    def _why_nowhere(self, task: Task) -> str:
        if task.unmet_on:
            return f"the dependencies of task {task.msg_id} are unmet on every engine it may run on"
        if task.targets is not None:
            return f"none of the target engines {sorted(task.targets)} of task {task.msg_id} is registered"
        return f"no engine task {task.msg_id} may run on is left"

    def _place(self, task: Task, front: bool = False) -> None:
        """Queue a task whose dependencies are met, sending it at once if an engine has room."""
        key = self._key(task)
        if key is not None and not key:
            self._impossible(task, self._why_nowhere(task))
            return
        queue = self.queues.get(key)
        if queue is None:
            if not front and self._candidates:
                engine = policies.choose(
                    self.scheme, self._candidates, self.loads, self.last_used, self.limit, self.rng, key
                )
                if engine is not None:
                    self._send(task, engine)
                    return
            queue = self.queues[key] = deque()
        if front:
            queue.appendleft(task)
        else:
            queue.append(task)

    def _dispatch(self) -> None:
        """Send queued tasks to engines with room, oldest queue head first."""
        queues = self.queues
        if not queues or not self._candidates:
            return
        keys = list(queues) if len(queues) == 1 else sorted(queues, key=lambda k: queues[k][0].seq)
        choose = policies.choose
        for key in keys:
            queue = queues[key]
            while queue:
                if not self._candidates:
                    return
                engine = choose(self.scheme, self._candidates, self.loads, self.last_used, self.limit, self.rng, key)
                if engine is None:
                    break
                self._send(queue.popleft(), engine)
            if not queue and queues.get(key) is queue:
                del queues[key]

    def _send(self, task: Task, engine: bytes) -> None:
        task.engine = engine
        self.loads[engine] += 1
        self._uses += 1
        task.dispatched = self._uses
        self.last_used[engine] = self._uses
        self.monitor.request("task", task.raw, task.client, engine)
        try:
            self.session.forward(self.engine_socket, task.raw, idents=[engine, task.client])
        except zmq.ZMQError as err:  # EHOSTUNREACH: its task_engine connection is gone
            log.warning(
                "engine %s unreachable for tasks (%s); scheduling elsewhere", engine.decode(errors="replace"), err
            )
            task.engine = None
            self.connected.discard(engine)
            self.loads[engine] -= 1
            self._refresh()
            self._place(task, front=True)

    # -- engines -> clients ----------------------------------------------------------------

    def _from_engines(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel="task_engine")
            except MessageRejected:
                continue
            if raw.msg_type == "engine_hello":
                engine = raw.idents[0] if raw.idents else b""
                self.monitor.hello("task", engine)
                self.connected.add(engine)
                self._refresh()
                continue
            if len(raw.idents) != 2:
                session.reject(
                    "task_engine", MessageRejected("malformed", "a reply needs engine and client identities")
                )
                continue
            engine, client = raw.idents
            parent = _json_part(raw.frames[1])
            msg_id = parent.get("msg_id") if isinstance(parent, dict) else None
            task = self.tasks.get(msg_id) if isinstance(msg_id, str) else None
            if task is None or task.engine != engine:
                self.dropped["late" if task is not None or msg_id in self.finished else "unknown"] += 1
                log.info("dropping a reply from %s to %s: the task is not running there", engine, msg_id)
                continue
            task.engine = None
            self.loads[engine] -= 1
            if self.hwm is None:
                self._observe(engine)
            status = raw.header.get("status")
            if not isinstance(status, str):
                metadata = _json_part(raw.frames[2])
                status = metadata.get("status") if isinstance(metadata, dict) else None
                status = status if isinstance(status, str) else "error"
            if status == "unmet":
                self._attempt(task, raw)
                if task.unmet_on is None:
                    task.unmet_on = set()
                task.unmet_on.add(engine)
                self._place(task, front=True)
            elif status == "error" and task.retries > 0:
                task.retries -= 1
                self._attempt(task, raw)
                if task.failed_on is None:
                    task.failed_on = set()
                task.failed_on.add(engine)
                self._place(task, front=True)
            else:
                self._finish(task, raw, status, engine, client)
        self._dispatch()

    def _observe(self, engine: bytes) -> None:
        """Update the adaptive limit with a reply from ``engine`` (its load already lowered)."""
        now = time.monotonic()
        previous = self._last_reply.get(engine)
        self._last_reply[engine] = (now, self.loads[engine] > 0)
        if previous is None or not previous[1]:
            return  # the engine may have idled since its last reply: no measurement
        took = now - previous[0]
        estimate = self._service.get(engine)
        # up at once (longer tasks must not be hoarded), down gradually (one quick task is no trend)
        self._service[engine] = took if estimate is None or took > estimate else estimate + 0.2 * (took - estimate)
        slowest = max(self._service.values())
        fits = int(AUTO_HWM_QUEUE_SECONDS / slowest) if slowest > 0 else AUTO_HWM_MAX
        self.limit = max(AUTO_HWM_MIN, min(AUTO_HWM_MAX, fits))

    def _attempt(self, task: Task, raw: RawMessage) -> dict[str, Any] | None:
        """Record an attempt from its reply's metadata; return the decoded metadata."""
        metadata = _json_part(raw.frames[2])
        if not isinstance(metadata, dict):
            metadata = {}
        if task.attempts is None:
            task.attempts = []
        task.attempts.append(
            {
                "engine_id": metadata.get("engine_id", self.engines.get(raw.idents[0])),
                "engine_uuid": metadata.get("engine_uuid", raw.idents[0].decode(errors="replace")),
                "status": raw.header.get("status", metadata.get("status")),
                "started": metadata.get("started"),
                "completed": metadata.get("completed"),
                "error": metadata.get("error"),
            }
        )
        return metadata

    def _finish(self, task: Task, raw: RawMessage, status: str, engine: bytes, client: bytes) -> None:
        del self.tasks[task.msg_id]
        self._remember(task.msg_id, status, engine)
        if task.attempts is not None:
            metadata = self._attempt(task, raw)
            assert metadata is not None
            metadata["attempts"] = task.attempts
            raw.frames[2] = json.dumps(metadata, separators=(",", ":")).encode()
        if self.monitor.reply("task", raw, client, engine):
            try:
                self.session.forward(self.client_socket, raw, idents=[client])
            except zmq.ZMQError:
                self.monitor.delivered("task", raw, client, False)
            else:
                self.monitor.delivered("task", raw, client, True)
        self._wake(task.msg_id)

    def _wake(self, msg_id: str) -> None:
        waiters = self.dependents.pop(msg_id, None)
        if not waiters:
            return
        for waiter in sorted(waiters, key=lambda m: self.waiting[m].seq if m in self.waiting else 0):
            task = self.waiting.get(waiter)
            if task is not None:
                self._evaluate(task)

    # -- replies the scheduler makes -------------------------------------------------------

    def _impossible(self, task: Task, reason: str) -> None:
        self._fail(task, ImpossibleDependency("ImpossibleDependency", reason), None, None)

    def _fail(self, task: Task, err: RemoteError, engine: bytes | None, engine_id: int | None) -> None:
        """Answer a task with an error reply made here, and forget it."""
        self.tasks.pop(task.msg_id, None)
        self._stop_waiting(task)
        header = dict(task.raw.header)
        info: dict[str, Any] = {}
        if engine is not None:
            info["engine_uuid"] = engine.decode(errors="replace")
            if engine_id is not None:
                info["engine_id"] = engine_id
        msg_type, content, metadata = error_reply(err, header, info)  # type: ignore[arg-type]
        if task.attempts is not None:
            metadata["attempts"] = task.attempts
        try:
            self.session.send(
                self.client_socket, msg_type, content, parent=header, ident=[task.client], metadata=metadata
            )
            delivered = True
        except zmq.ZMQError:
            log.info("client of task %s left before its reply could be sent", task.msg_id)
            delivered = False
        self.monitor.answered(
            "task",
            task.client,
            "" if engine is None else engine.decode(errors="replace"),
            header,
            (msg_type, content, metadata),
            delivered,
        )
        self._remember(task.msg_id, "aborted" if isinstance(err, TaskAborted) else "error", engine)
        self._wake(task.msg_id)


class _NullTaskMonitor:
    def request(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> None:
        return None

    def reply(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> bool:
        return True

    def delivered(self, channel: str, raw: RawMessage, client: bytes, ok: bool) -> None:
        return None

    def hello(self, channel: str, engine: bytes) -> None:
        return None

    def output(self, raw: RawMessage) -> None:
        return None

    def answered(
        self,
        channel: str,
        client: bytes,
        engine: str,
        request_header: dict[str, Any],
        parts: tuple[str, dict[str, Any], dict[str, Any]],
        delivered: bool,
    ) -> None:
        return None
