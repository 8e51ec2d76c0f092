"""apply and AsyncResult: blocking or not, values, errors, metadata, futures, await."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from datetime import datetime

import pytest

from corral.client import (
    AsyncResult,
    Client,
    CompositeError,
    Metadata,
    Reference,
    RemoteError,
    TaskAborted,
    TimeoutError,  # noqa: A004 - corral's, a subclass of the builtin
    interactive,
)

pytestmark = pytest.mark.timeout(30)


@interactive
def wait_for_gate() -> str:
    gate.wait(10)  # type: ignore[name-defined]  # noqa: F821 - the engine's namespace
    return "open"


@interactive
def read_global(name: str):  # type: ignore[no-untyped-def]
    return globals()[name]


def fail(x: int) -> float:
    return 1 / x


def gate_on(cluster, *eids: int) -> threading.Event:
    gate = threading.Event()
    for eid in eids:
        cluster.engines[eid].namespace["gate"] = gate
    return gate


def test_apply_blocks_per_flag(rc: Client) -> None:
    dv = rc[:]
    ar = dv.apply(pow, 2, 5)
    assert isinstance(ar, AsyncResult)
    assert ar.get(10) == [32, 32, 32]
    dv.block = True
    assert dv.apply(pow, 2, exp=3) == [8, 8, 8]
    assert isinstance(dv.apply_async(abs, -1), AsyncResult)
    dv.block = False
    assert dv.apply_sync(divmod, 7, 2) == [(3, 1)] * 3


def test_interactive_functions_and_references_see_the_engine_namespace(rc: Client) -> None:
    dv = rc[:]
    dv.push({"secret": 41}, block=True)
    assert dv.apply_sync(read_global, "secret") == [41, 41, 41]
    assert dv.apply_sync(lambda v: v + 1, Reference("secret")) == [42, 42, 42]


def test_get_times_out_then_succeeds(rc: Client, cluster) -> None:
    gate = gate_on(cluster, 0)
    try:
        ar = rc[0].apply_async(wait_for_gate)
        with pytest.raises(TimeoutError):
            ar.get(0.05)
        with pytest.raises(TimeoutError):  # the builtin catches it too
            ar.get(0)
        with pytest.raises(TimeoutError):  # the Future method, with corral's error
            ar.result(timeout=0.01)
        assert ar.wait(0.05) is False  # not ready yet, as ipyparallel's wait says
        assert not ar.ready()
        with pytest.raises(AssertionError, match="not ready"):
            ar.successful()
        assert ar.running()
        assert not ar.cancel()
        assert "finished" not in repr(ar)
        assert ar.progress == 0
    finally:
        gate.set()
    assert ar.get(10) == "open"
    assert ar.ready()
    assert ar.successful()
    assert ar.done()
    assert ar.r == "open"
    assert ar.result() == "open"
    assert repr(ar) == "<AsyncResult: wait_for_gate:finished>"
    assert ar.progress == 1
    assert len(ar) == 1


def test_a_remote_error_shows_type_message_and_traceback(rc: Client) -> None:
    ar = rc[1].apply_async(fail, 0)
    with pytest.raises(RemoteError) as caught:
        ar.get(10)
    err = caught.value
    assert err.ename == "ZeroDivisionError"
    assert "division by zero" in err.evalue
    assert "in fail" in err.traceback
    assert err.engine_id == 1
    assert "ZeroDivisionError" in str(err)
    assert "Remote traceback" in str(err)
    assert ar.ready()
    assert not ar.successful()
    assert isinstance(ar.exception(), RemoteError)
    md = ar.metadata
    assert isinstance(md, Metadata)
    assert md.status == "error"
    assert md.error["ename"] == "ZeroDivisionError"
    assert md.pyerr is md.error


def test_several_engines_failing_raise_one_composite_error(rc: Client) -> None:
    ar = rc[:].apply_async(fail, 0)
    with pytest.raises(CompositeError) as caught:
        ar.get(10)
    assert [e.engine_id for e in caught.value.elist] == [0, 1, 2]
    assert all(e.ename == "ZeroDivisionError" for e in caught.value.elist)
    assert "fail" in str(caught.value)
    with pytest.raises(RemoteError):
        caught.value.raise_exception(1)
    # iterating gives the values in order, raising at the first failure
    with pytest.raises(RemoteError):
        list(ar)


def test_metadata_keys_and_output(rc: Client) -> None:
    @interactive
    def chatty(x: int) -> int:
        print("hello", x)
        return x

    ar = rc[0, 2].apply_async(chatty, 7)
    assert ar.get(10) == [7, 7]
    md = ar.metadata
    assert isinstance(md, list)
    assert len(md) == 2
    assert [m.engine_id for m in md] == [0, 2]
    for m, msg_id in zip(md, ar.msg_ids, strict=True):
        assert m.msg_id == msg_id
        assert m["status"] == "ok"
        assert m.stdout == "hello 7\n"
        assert all(isinstance(m[k], datetime) for k in ("submitted", "started", "completed", "received"))
        assert m.submitted <= m.received
        assert m.engine_uuid == rc._engines.uuid(m.engine_id)
    assert ar.stdout == ["hello 7\n", "hello 7\n"]  # metadata as attributes
    assert ar["engine_id"] == [0, 2]
    assert ar.get_dict() == {0: 7, 2: 7} == ar.result_dict
    assert ar[1] == 7
    assert ar[:] == [7, 7]
    assert ar.wall_time >= 0
    assert ar.serial_time >= 0
    assert ar.elapsed >= 0
    assert ar.timedelta(ar["submitted"], ar["received"]) >= 0
    single = rc[1].apply_async(chatty, 1)
    single.get(10)
    assert single.metadata.engine_id == 1
    assert single.engine_id == 1
    assert single.get_dict() == {1: 1}
    with pytest.raises(AttributeError):
        single.no_such_key  # noqa: B018
    with pytest.raises(TypeError):
        iter(single)


def test_futures_callbacks_and_wait(rc: Client) -> None:
    done = threading.Event()
    seen: list[object] = []

    def callback(f: concurrent.futures.Future[object]) -> None:
        seen.append(f.result())
        done.set()

    ar = rc[:].apply_async(abs, -3)
    ar.add_done_callback(callback)
    assert done.wait(10)
    assert seen == [[3, 3, 3]]
    others = [rc[i].apply_async(pow, i, 2) for i in rc.ids]
    finished, _ = concurrent.futures.wait(others, timeout=10)
    assert len(finished) == 3
    assert sorted(f.result() for f in concurrent.futures.as_completed(others)) == [0, 1, 4]
    late: list[object] = []
    ar.add_done_callback(lambda f: late.append(f.result()))  # already done: called at once
    assert late == [[3, 3, 3]]


def test_waiting_inside_a_callback_is_refused_not_deadlocked(rc: Client, cluster) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def callback(f: concurrent.futures.Future[object]) -> None:
        pending = rc[0].apply_async(abs, -1)
        try:
            pending.get(1)
        except RuntimeError as err:
            errors.append(err)
        done.set()

    gate = gate_on(cluster, 1)
    try:
        first = rc[1].apply_async(wait_for_gate)
        first.add_done_callback(callback)  # not done yet: will run in the IO thread
    finally:
        gate.set()
    assert done.wait(10)
    assert errors
    assert "IO thread" in str(errors[0])


def test_await_in_asyncio(rc: Client) -> None:
    async def main() -> list[object]:
        single = await rc[0].apply_async(pow, 3, 2)
        several = await rc[:].apply_async(abs, -2)
        both = await asyncio.gather(rc[1].apply_async(abs, -5), rc[2].apply_async(abs, -6))
        with pytest.raises(RemoteError):
            await rc[0].apply_async(fail, 0)
        return [single, several, both]

    assert asyncio.run(main()) == [9, [2, 2, 2], [5, 6]]


def test_track_and_sent(rc: Client) -> None:
    np = pytest.importorskip("numpy")
    big = np.arange(1_000_000, dtype="f8")
    dv = rc[:]
    dv.track = True
    ar = dv.apply_async(lambda a: float(a.sum()), big)
    ar.wait_for_send(10)
    assert ar.sent
    assert ar.get(10) == [float(big.sum())] * 3
    dv.track = False
    plain = dv.apply_async(abs, -1)
    plain.wait_for_send(10)
    assert plain.sent
    plain.get(10)


def test_requests_leave_while_the_io_thread_is_busy(rc: Client) -> None:
    # the calling thread sends its requests itself: a busy IO thread delays only the replies
    blocker = threading.Event()
    rc._io.reactor.call_soon_threadsafe(blocker.wait, 10)  # park the IO thread
    try:
        ars = [rc[i].apply_async(abs, -i) for i in range(3)]
        for ar in ars:
            assert ar.sent
            ar.wait_for_send(0)
        time.sleep(0.2)  # long enough for the engines to answer; nobody takes the replies in yet
        assert not any(ar.ready() for ar in ars)
    finally:
        blocker.set()
    assert [ar.get(10) for ar in ars] == [0, 1, 2]


def test_abort_a_queued_request(rc: Client, cluster) -> None:
    gate = gate_on(cluster, 0)
    try:
        running = rc[0].apply_async(wait_for_gate)
        queued = rc[0].apply_async(abs, -1)
        deadline = time.monotonic() + 10
        while queued.msg_ids[0] not in cluster.engines[0].queued:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        queued.abort()
        assert cluster.engines[0].aborted == {queued.msg_ids[0]}
    finally:
        gate.set()
    assert running.get(10) == "open"
    with pytest.raises(TaskAborted) as caught:
        queued.get(10)
    assert caught.value.engine_id == 0
    assert queued.metadata.status == "aborted"
    running.abort()  # already done: nothing to do
    assert len(cluster.engines[0].aborted) == 1


def test_unpicklable_arguments_fail_before_sending(rc: Client) -> None:
    from corral.client import SerializationError

    n = len(rc.history)
    with pytest.raises(SerializationError):
        rc[:].apply_async(abs, threading.Lock())
    assert len(rc.history) == n


def test_apply_round_trips_many_times_in_order(rc: Client) -> None:
    view = rc[0]
    results = [view.apply_async(pow, i, 2) for i in range(200)]
    assert [r.get(10) for r in results] == [i * i for i in range(200)]
    assert rc.wait(results, timeout=10)
