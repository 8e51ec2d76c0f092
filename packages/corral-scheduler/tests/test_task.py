"""The task scheduler, with scripted clients and engines on real loopback sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from corral.scheduler.policies import SCHEMES
from corral.scheduler.task import TaskScheduler
from corral.wire import Message, RawMessage, Session, harden, unwrap_exception
from corral.wire.errors import DependencyTimeout, EngineError, ImpossibleDependency, TaskAborted

pytestmark = pytest.mark.timeout(30)

KEY = b"t" * 32
E0 = b"00000000000000000000000000000000"
E1 = b"11111111111111111111111111111111"


class Recorder:
    """A monitor that records what the scheduler reports, and answers lookups from a table."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.replies: list[str] = []
        self.deliveries: list[bool] = []
        self.hellos: list[tuple[str, bytes]] = []
        self.answered_: list[tuple[str, str]] = []
        self.outcomes: dict[str, tuple[str, str | None, str | None]] = {}

    def request(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> None:
        self.requests.append((raw.msg_id, engine))

    def reply(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> bool:
        self.replies.append(raw.msg_type)
        return True

    def delivered(self, channel: str, raw: RawMessage, client: bytes, ok: bool) -> None:
        self.deliveries.append(ok)

    def hello(self, channel: str, engine: bytes) -> None:
        self.hellos.append((channel, engine))

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
        self.answered_.append((request_header["msg_id"], parts[1]["ename"]))

    def lookup(self, msg_id: str) -> tuple[str, str | None, str | None]:
        return self.outcomes.get(msg_id, ("unknown", None, None))


class FakeEngine:
    def __init__(self, bench: Bench, uuid: bytes, engine_id: int) -> None:
        self.uuid = uuid
        self.id = engine_id
        self.session = Session(KEY)
        self.sock = bench.dealer(bench.back_url, uuid)
        self.session.send(self.sock, "engine_hello", {"uuid": uuid.decode()})
        bench.call(bench.scheduler.add_engine, uuid, engine_id)
        bench.wait(lambda: uuid in bench.scheduler._candidates)

    def recv(self, timeout: float = 5) -> Message:
        assert self.sock.poll(int(timeout * 1000)), f"engine {self.id} got nothing"
        return self.session.recv(self.sock)

    def quiet(self, wait: float = 0.2) -> bool:
        """True if nothing arrives within ``wait`` seconds."""
        return not self.sock.poll(int(wait * 1000))

    def reply(self, req: Message, status: str = "ok", ename: str = "ValueError") -> None:
        content: dict[str, Any] = {"status": status}
        error = None
        if status != "ok":
            error = {"status": status, "ename": ename, "evalue": "no", "traceback": [], "engine_info": {}}
            content.update(error)
        metadata = {
            "engine_id": self.id,
            "engine_uuid": self.uuid.decode(),
            "status": status,
            "started": "2026-01-01T00:00:00+00:00",
            "completed": "2026-01-01T00:00:01+00:00",
            "error": error,
            "msg_id": req.msg_id,
        }
        out = self.session.msg(req.msg_type.replace("_request", "_reply"), content, parent=req, metadata=metadata)
        out.header["status"] = status  # type: ignore[typeddict-unknown-key]
        self.session.send(self.sock, out, ident=req.idents)


class Bench:
    def __init__(self, **options: Any) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.session = Session(KEY)
        self.monitor = Recorder()
        from corral.wire.loop import Reactor

        self.reactor = Reactor(self.ctx)
        self.sockets: list[zmq.Socket[Any]] = []
        front = self.track(harden(self.ctx.socket(zmq.ROUTER)))
        back = self.track(harden(self.ctx.socket(zmq.ROUTER)))
        self.front_url = f"tcp://127.0.0.1:{front.bind_to_random_port('tcp://127.0.0.1')}"
        self.back_url = f"tcp://127.0.0.1:{back.bind_to_random_port('tcp://127.0.0.1')}"
        self.scheduler = TaskScheduler(self.session, front, back, self.monitor, lookup=self.monitor.lookup, **options)
        self.scheduler.register(self.reactor)
        self.thread = threading.Thread(target=self.reactor.run, daemon=True)
        self.thread.start()
        self.client_session = Session(KEY)
        self.client = self.dealer(self.front_url)

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
        """Run ``fn`` in the scheduler's loop thread and return its result."""
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

    def submit(self, sched: dict[str, Any] | None = None, msg_type: str = "apply_request") -> str:
        msg = self.client_session.msg(msg_type, {"serializer": "pickle"})
        if sched is not None:
            msg.header["sched"] = sched  # type: ignore[typeddict-unknown-key]
        self.client_session.send(self.client, msg, buffers=[b"payload"])
        return msg.msg_id

    def result(self, timeout: float = 5) -> Message:
        assert self.client.poll(int(timeout * 1000)), "no reply reached the client"
        return self.client_session.recv(self.client)

    def engines(self, n: int) -> list[FakeEngine]:
        return [FakeEngine(self, uuid, i) for i, uuid in enumerate((E0, E1, b"2" * 32, b"3" * 32)[:n])]

    def close(self) -> None:
        self.reactor.stop()
        self.thread.join(5)
        self.reactor.close()
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def make_bench() -> Iterator[Callable[..., Bench]]:
    benches: list[Bench] = []

    def make(**options: Any) -> Bench:
        benches.append(Bench(**options))
        return benches[-1]

    try:
        yield make
    finally:
        for b in benches:
            b.close()


def test_tasks_spread_up_to_the_high_water_mark_and_replies_come_back(make_bench: Any) -> None:
    bench = make_bench(hwm=2)
    e0, e1 = bench.engines(2)
    ids = [bench.submit() for _ in range(5)]
    got0 = [e0.recv(), e0.recv()]
    got1 = [e1.recv(), e1.recv()]
    assert e0.quiet()
    assert e1.quiet()  # the fifth waits for room
    assert sorted(m.msg_id for m in got0 + got1) == sorted(ids[:4])
    assert got0[0].buffers[0] == b"payload"
    assert bench.call(bench.scheduler.unassigned) == 1
    e1.reply(got1[0])
    reply = bench.result()
    assert reply.parent_header["msg_id"] == got1[0].msg_id
    assert reply.header["status"] == "ok"
    assert "attempts" not in reply.metadata  # no retries asked: metadata untouched
    fifth = e1.recv()  # e1 has room again
    assert fifth.msg_id == ids[4]
    assert bench.monitor.replies == ["apply_reply"]
    bench.wait(lambda: bench.monitor.deliveries == [True])
    assert ("task", E0) in bench.monitor.hellos
    # each task is reported on arrival (no engine yet) and again when it is sent to an engine
    assert sorted(m for m, e in bench.monitor.requests if e == b"") == sorted(ids)
    assert sorted(m for m, e in bench.monitor.requests if e != b"") == sorted(ids)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_each_scheme_keeps_every_engine_busy_within_hwm(make_bench: Any, scheme: str) -> None:
    bench = make_bench(hwm=1, scheme=scheme)
    engines = bench.engines(3)
    for _ in range(4):
        bench.submit()
    for e in engines:
        e.recv()
        assert e.quiet(0.05)
    assert bench.call(bench.scheduler.unassigned) == 1


def test_leastload_prefers_the_idle_engine(make_bench: Any) -> None:
    bench = make_bench(hwm=0)
    e0, e1 = bench.engines(2)
    first = bench.submit()
    assert e0.recv().msg_id == first
    second = bench.submit()
    assert e1.recv().msg_id == second


def test_targets_restrict_the_engines(make_bench: Any) -> None:
    bench = make_bench(hwm=0)
    _e0, e1 = bench.engines(2)
    ids = [bench.submit({"targets": [1]}) for _ in range(3)]
    assert [e1.recv().msg_id for _ in ids] == ids
    nowhere = bench.submit({"targets": [7]})
    reply = bench.result()
    assert reply.parent_header["msg_id"] == nowhere
    err = unwrap_exception(reply.content)
    assert isinstance(err, ImpossibleDependency)
    assert "7" in str(err)
    bench.wait(lambda: bench.monitor.answered_ == [(nowhere, "ImpossibleDependency")])  # reported after the send


def test_after_waits_until_the_prerequisite_finishes(make_bench: Any) -> None:
    bench = make_bench()
    (e0,) = bench.engines(1)
    first = bench.submit()
    req = e0.recv()
    second = bench.submit({"after": {"msg_ids": [first]}})
    assert e0.quiet()  # room, but the dependency is not met
    e0.reply(req)
    assert bench.result().parent_header["msg_id"] == first
    assert e0.recv().msg_id == second
    assert bench.call(lambda: bench.scheduler.counts()["dependents"]) == 0


def test_after_on_a_failed_prerequisite_is_impossible_and_failure_flag_accepts_it(make_bench: Any) -> None:
    bench = make_bench()
    (e0,) = bench.engines(1)
    first = bench.submit()
    req = e0.recv()
    needs_success = bench.submit({"after": {"msg_ids": [first]}})
    needs_failure = bench.submit({"after": {"msg_ids": [first], "success": False, "failure": True}})
    e0.reply(req, "error")
    replies = {m.parent_header["msg_id"]: m for m in (bench.result(), bench.result())}
    assert replies[first].content["status"] == "error"
    err = unwrap_exception(replies[needs_success].content)
    assert isinstance(err, ImpossibleDependency)
    assert first in str(err)
    assert e0.recv().msg_id == needs_failure


def test_after_on_unknown_or_hub_known_tasks(make_bench: Any) -> None:
    bench = make_bench()
    (e0,) = bench.engines(1)
    unknown = bench.submit({"after": {"msg_ids": ["never-sent"]}})
    assert isinstance(unwrap_exception(bench.result().content), ImpossibleDependency)
    bench.wait(lambda: bench.monitor.answered_ == [(unknown, "ImpossibleDependency")])  # reported after the send
    # another channel's request the hub knows: completed -> met at once
    bench.monitor.outcomes["mux-1"] = ("completed", "ok", E0.decode())
    met = bench.submit({"after": ["mux-1"]})
    assert e0.recv().msg_id == met
    # pending at the hub: polled until it completes
    bench.monitor.outcomes["mux-2"] = ("pending", None, E0.decode())
    later = bench.submit({"after": {"msg_ids": ["mux-2"]}})
    assert e0.quiet()
    bench.monitor.outcomes["mux-2"] = ("completed", "ok", E0.decode())
    assert e0.recv().msg_id == later


def test_timeout_fails_a_task_whose_dependencies_are_not_met(make_bench: Any) -> None:
    bench = make_bench()
    (e0,) = bench.engines(1)
    first = bench.submit()
    e0.recv()
    waiting = bench.submit({"after": {"msg_ids": [first]}, "timeout": 0.2})
    reply = bench.result()
    assert reply.parent_header["msg_id"] == waiting
    assert isinstance(unwrap_exception(reply.content), DependencyTimeout)
    assert bench.call(lambda: bench.scheduler.counts()) == {
        "tasks": 1,
        "waiting": 0,
        "dependents": 0,
        "queued": 0,
        "finished": 1,
    }


def _raw(bench: Bench, msg_type: str, content: dict[str, Any]) -> RawMessage:
    """A signed control message as the control relay sees it (header decoded only)."""
    frames = bench.client_session.serialize(bench.client_session.msg(msg_type, content))
    return bench.session.deserialize_raw(frames[frames.index(b"<IDS|MSG>") + 1 :] if b"<IDS|MSG>" in frames else frames)


def test_abort_fails_tasks_held_for_dependencies_or_room_at_once(make_bench: Any) -> None:
    bench = make_bench(hwm=1)
    (e0,) = bench.engines(1)
    running = bench.submit()
    req = e0.recv()
    assert req.msg_id == running
    waiting = bench.submit({"after": [running]})
    queued = bench.submit()  # no room on e0 (hwm 1)
    behind = bench.submit({"after": [waiting]})
    bench.wait(lambda: bench.scheduler.unassigned() == 3)
    abort = _raw(bench, "abort_request", {"msg_ids": [waiting, queued, running, "unknown"]})
    # the running task is the engine's to abort; the two held here fail at once
    assert bench.call(bench.scheduler.abort_request, abort) == 2
    replies = {m.parent_header["msg_id"]: m for m in (bench.result(), bench.result(), bench.result())}
    assert set(replies) == {waiting, queued, behind}
    for msg_id in (waiting, queued):
        assert replies[msg_id].content["status"] == "aborted"
        assert replies[msg_id].metadata["status"] == "aborted"
        assert isinstance(unwrap_exception(replies[msg_id].content), TaskAborted)
    # aborted counts as a failure: what waited on it is impossible now
    assert isinstance(unwrap_exception(replies[behind].content), ImpossibleDependency)
    assert bench.call(lambda: bench.scheduler.counts()) == {
        "tasks": 1,
        "waiting": 0,
        "dependents": 0,
        "queued": 0,
        "finished": 3,
    }
    assert bench.call(lambda: bench.scheduler.finished[waiting][0]) == "aborted"
    # other control messages, and aborts without msg_ids, leave the scheduler alone
    assert bench.call(bench.scheduler.abort_request, _raw(bench, "clear_request", {})) == 0
    assert bench.call(bench.scheduler.abort_request, _raw(bench, "abort_request", {})) == 0
    e0.reply(req)
    assert bench.result().parent_header["msg_id"] == running
    assert e0.quiet()


def test_follow_runs_where_the_prerequisite_ran(make_bench: Any) -> None:
    bench = make_bench(hwm=0)
    e0, e1 = bench.engines(2)
    bench.submit()
    r0 = e0.recv()
    first = bench.submit()
    r1 = e1.recv()
    assert r1.msg_id == first
    e1.reply(r1)
    bench.result()
    # e1 is busier after this, but follow pins the task there
    follower = bench.submit({"follow": {"msg_ids": [first]}})
    assert e1.recv().msg_id == follower
    assert e0.quiet(0.05)
    e0.reply(r0)
    bench.result()


def test_follow_on_a_gone_engine_is_impossible(make_bench: Any) -> None:
    bench = make_bench()
    e0, _e1 = bench.engines(2)
    first = bench.submit()
    e0.reply(e0.recv())
    bench.result()
    bench.call(bench.scheduler.engine_lost, E0, "killed by SIGKILL")
    bench.submit({"follow": {"msg_ids": [first]}})
    err = unwrap_exception(bench.result().content)
    assert isinstance(err, ImpossibleDependency)
    assert "gone" in str(err)


def test_an_error_with_retries_left_runs_again_elsewhere_with_attempts_recorded(make_bench: Any) -> None:
    bench = make_bench()
    e0, e1 = bench.engines(2)
    task = bench.submit({"retries": 1})
    first = e0.recv()
    e0.reply(first, "error")
    second = e1.recv()
    assert second.msg_id == task
    assert second.buffers[0] == b"payload"
    e1.reply(second)
    reply = bench.result()
    assert reply.content["status"] == "ok"
    attempts = reply.metadata["attempts"]
    assert [(a["engine_id"], a["status"]) for a in attempts] == [(0, "error"), (1, "ok")]
    assert attempts[0]["error"]["ename"] == "ValueError"
    assert reply.metadata["engine_id"] == 1  # the rest of the metadata is the last attempt's
    assert bench.monitor.replies == ["apply_reply"]  # the hub stores the final reply only


def test_retries_run_out(make_bench: Any) -> None:
    bench = make_bench()
    (e0,) = bench.engines(1)
    bench.submit({"retries": 1})
    e0.reply(e0.recv(), "error")
    e0.reply(e0.recv(), "error")  # back on the same engine: no other is left
    reply = bench.result()
    assert reply.content["status"] == "error"
    assert [a["status"] for a in reply.metadata["attempts"]] == ["error", "error"]


def test_a_lost_engine_s_tasks_are_resubmitted_or_failed_at_once(make_bench: Any) -> None:
    bench = make_bench(hwm=0)
    e0, e1 = bench.engines(2)
    doomed = bench.submit()  # no retries: fails when its engine dies under it
    assert e0.recv().msg_id == doomed
    bench.submit()
    e1.recv()
    queued = bench.submit()
    assert e0.recv().msg_id == queued
    bench.call(bench.scheduler.engine_lost, E0, "killed by SIGKILL")
    reply = bench.result()
    assert reply.parent_header["msg_id"] == doomed
    err = unwrap_exception(reply.content)
    assert isinstance(err, EngineError)
    assert "killed by SIGKILL" in str(err)
    assert "was running" in str(err)
    bench.wait(lambda: bench.monitor.answered_ == [(doomed, "EngineError")])  # reported after the send
    # the task queued behind it never ran on e0: it goes to e1 as it was, no retry spent
    again = e1.recv()
    assert again.msg_id == queued
    e1.reply(again)
    final = bench.result()
    assert final.parent_header["msg_id"] == queued
    assert final.header["status"] == "ok"
    # a late reply from the lost engine is dropped, never delivered twice
    e0.session.send(e0.sock, "apply_reply", {"status": "ok"}, parent={"msg_id": doomed}, ident=[b"x"])
    bench.wait(lambda: bench.scheduler.dropped["late"] + bench.scheduler.dropped["unknown"] >= 1)


def test_a_running_task_whose_engine_dies_is_retried_with_the_attempt_recorded(make_bench: Any) -> None:
    bench = make_bench(hwm=0)
    e0, e1 = bench.engines(2)
    retried = bench.submit({"retries": 1})
    assert e0.recv().msg_id == retried
    bench.call(bench.scheduler.engine_lost, E0, "killed by SIGKILL")
    again = e1.recv()
    assert again.msg_id == retried
    e1.reply(again)
    final = bench.result()
    assert [a["status"] for a in final.metadata["attempts"]] == ["error", "ok"]
    assert final.metadata["attempts"][0]["error"]["ename"] == "EngineError"


def test_a_task_that_kills_three_engines_is_failed_as_poisonous(make_bench: Any) -> None:
    from corral.scheduler.task import POISON_KILLS

    bench = make_bench(hwm=0)
    engines = bench.engines(4)
    poison = bench.submit({"retries": 10})
    by_uuid = {e.uuid: e for e in engines}
    for n in range(POISON_KILLS):
        # the scheduler places the task in its own thread: wait until it is on an engine
        bench.wait(lambda: poison in bench.scheduler.tasks and bench.scheduler.tasks[poison].engine is not None)
        uuid = bench.call(lambda: bench.scheduler.tasks[poison].engine)
        assert uuid in by_uuid, f"the task is not running anywhere before kill {n + 1}"
        got = by_uuid.pop(uuid)
        assert got.recv().msg_id == poison
        bench.call(bench.scheduler.engine_lost, uuid, "killed by SIGSEGV")
    engines = list(by_uuid.values())
    reply = bench.result()
    err = unwrap_exception(reply.content)
    assert isinstance(err, EngineError)
    assert "poisonous" in str(err)
    assert bench.call(lambda: poison in bench.scheduler.tasks) is False
    assert all(e.quiet(0.05) for e in engines)  # not sent to the last engine


def test_unmet_tries_another_engine_then_is_impossible(make_bench: Any) -> None:
    bench = make_bench()
    e0, e1 = bench.engines(2)
    bench.submit()
    e0.reply(e0.recv(), "unmet", "UnmetDependency")
    e1.reply(e1.recv(), "unmet", "UnmetDependency")
    reply = bench.result()
    assert isinstance(unwrap_exception(reply.content), ImpossibleDependency)
    assert [a["status"] for a in reply.metadata["attempts"]] == ["unmet", "unmet"]


def test_bookkeeping_stays_bounded(make_bench: Any) -> None:
    bench = make_bench(max_finished=50)
    engines = bench.engines(2)
    n = 400
    for i in range(n):
        bench.submit({"after": {"msg_ids": []}, "retries": i % 2} if i % 3 else None)
    poller = zmq.Poller()
    for e in engines:
        poller.register(e.sock, zmq.POLLIN)
    poller.register(bench.client, zmq.POLLIN)
    done = 0
    deadline = time.monotonic() + 25
    while done < n:
        assert time.monotonic() < deadline, f"{done} of {n} replies"
        ready = dict(poller.poll(100))
        for e in engines:
            if e.sock in ready:
                while e.sock.poll(0):
                    e.reply(e.recv())
        while bench.client.poll(0):
            bench.result()
            done += 1
    counts = bench.call(bench.scheduler.counts)
    assert counts == {"tasks": 0, "waiting": 0, "dependents": 0, "queued": 0, "finished": 50}
    assert bench.call(lambda: sum(bench.scheduler.loads.values())) == 0


def test_junk_is_dropped_and_counted_and_scheduling_goes_on(make_bench: Any) -> None:
    bench = make_bench()
    (e0,) = bench.engines(1)
    bench.client.send_multipart([b"no delimiter"])
    bench.client.send_multipart([b"<IDS|MSG>", b"bad sig", b"{}", b"{}", b"{}", b"{}"])
    wrong_key = Session(b"x" * 32)
    wrong_key.send(bench.client, "apply_request", {})
    bench.client_session.send(bench.client, "apply_request", {}, ident=[b"extra-ident"])
    bench.wait(lambda: sum(n for (c, _), n in bench.session.rejections.items() if c == "task") >= 4)
    # bad sched fields get an error reply, not a crash
    bench.submit({"retries": "many"})
    reply = bench.result()
    assert reply.content["ename"] == "ValueError"
    assert "retries" in reply.content["evalue"]
    task = bench.submit()
    assert e0.recv().msg_id == task
    # a reply nobody asked for is dropped and counted
    e0.session.send(e0.sock, "apply_reply", {"status": "ok"}, parent={"msg_id": "nope"}, ident=[b"client"])
    bench.wait(lambda: bench.scheduler.dropped["unknown"] == 1)


def test_the_default_limit_adapts_to_how_long_tasks_take(make_bench: Any, monkeypatch: Any) -> None:
    from corral.scheduler import task as task_module
    from corral.scheduler.task import AUTO_HWM_MAX, AUTO_HWM_MIN

    # half a second of queued work per engine: "quick" tasks stay quick on a loaded machine
    monkeypatch.setattr(task_module, "AUTO_HWM_QUEUE_SECONDS", 0.5)
    bench = make_bench()  # hwm left to adapt
    (e0,) = bench.engines(1)
    assert bench.scheduler.limit == AUTO_HWM_MIN
    for _ in range(300):
        bench.submit()
    # quick tasks: answered as fast as they come, the engine gets a deeper queue
    for _ in range(60):
        e0.reply(e0.recv())
    bench.wait(lambda: len(bench.monitor.replies) == 60)  # every quick reply taken by the scheduler
    quick_limit = bench.call(lambda: bench.scheduler.limit)
    assert AUTO_HWM_MIN < quick_limit <= AUTO_HWM_MAX
    # long tasks (0.6 s, longer than the queued work aimed at): one running, one queued, at once
    for _ in range(2):
        req = e0.recv()
        time.sleep(0.6)
        e0.reply(req)
    # both replies taken by the scheduler before its load is read (on a loaded machine the
    # second may still be in flight otherwise)
    bench.wait(lambda: len(bench.monitor.replies) == 62)
    assert bench.call(lambda: bench.scheduler.limit) == AUTO_HWM_MIN
    # the engine gets nothing more while it holds two or more
    held = bench.call(lambda: bench.scheduler.loads[E0])
    assert held >= AUTO_HWM_MIN
    answered = len(bench.monitor.replies)
    e0.reply(e0.recv())
    bench.wait(lambda: len(bench.monitor.replies) == answered + 1)  # the scheduler has taken the reply
    assert bench.call(lambda: bench.scheduler.loads[E0]) == held - 1


def test_a_fixed_hwm_does_not_adapt(make_bench: Any) -> None:
    bench = make_bench(hwm=3)
    (e0,) = bench.engines(1)
    for _ in range(60):
        bench.submit()
    for _ in range(40):
        e0.reply(e0.recv())
    assert bench.call(lambda: bench.scheduler.limit) == 3
    assert bench.call(lambda: bench.scheduler.loads[E0]) <= 3
