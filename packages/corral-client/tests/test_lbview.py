"""LoadBalancedView against the fake controller's task channel: apply, map, imap, flags, sched."""

from __future__ import annotations

import itertools
import os
import time

import pytest
from traitlets import TraitError

from corral.client import (
    AsyncMapResult,
    AsyncResult,
    Client,
    CompositeError,
    Dependency,
    DependencyTimeout,
    ImpossibleDependency,
    LoadBalancedView,
    NoEnginesRegistered,
    RemoteError,
    TaskAborted,
    depend,
    require,
)

pytestmark = pytest.mark.timeout(30)


def engine_of() -> int:
    return int(__import__("threading").current_thread().name.rsplit("-", 1)[1])


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad {x}")
    return x


def test_apply_flavours_and_no_sched_when_default(rc: Client, cluster) -> None:
    lv = rc.load_balanced_view()
    assert isinstance(lv, LoadBalancedView)
    assert lv.targets is None
    ar = lv.apply(pow, 2, 5)
    assert isinstance(ar, AsyncResult)
    assert ar.get(10) == 32
    assert lv.apply_sync(abs, -3) == 3
    assert lv.apply_async(abs, -4).get(10) == 4
    lv.block = True
    assert lv.apply(abs, -5) == 5
    assert all("sched" not in m.header for m in cluster.tasks.received)
    assert ar.metadata["engine_id"] in (0, 1, 2)
    assert set(lv.history) <= set(rc.history)
    # tasks spread round-robin in the fake
    ids = {lv.apply_sync(engine_of) for _ in range(6)}
    assert ids == {0, 1, 2}


def test_flags_go_into_header_sched(rc: Client, cluster) -> None:
    lv = rc.load_balanced_view(targets=[1])
    first = lv.apply_async(abs, -1)
    first.get(10)
    with lv.temp_flags(after=first, follow=[first], timeout=5, retries=2):
        lv.apply_sync(abs, 1)
    sched = cluster.tasks.received[-1].header["sched"]
    assert sched == {
        "targets": [1],
        "after": {"msg_ids": first.msg_ids, "all": True, "success": True, "failure": False},
        "follow": {"msg_ids": first.msg_ids, "all": True, "success": True, "failure": False},
        "timeout": 5.0,
        "retries": 2,
    }
    assert cluster.tasks.received[0].header["sched"] == {"targets": [1]}
    assert lv.after is None
    assert lv.retries == 0
    # per-call targets override, negative ids resolve now
    assert lv._really_apply(engine_of, (), {}, block=True, targets=-1) == 2
    assert cluster.tasks.received[-1].header["sched"] == {"targets": [2]}


def test_targets_restrict_engines(rc: Client) -> None:
    lv = rc.load_balanced_view(targets=[0, 2])
    assert {lv.apply_sync(engine_of) for _ in range(8)} == {0, 2}
    lv.targets = 1
    assert lv.targets == [1]
    assert {lv.apply_sync(engine_of) for _ in range(3)} == {1}
    lv.targets = None
    lv.targets = [7]
    with pytest.raises(IndexError, match="7"):
        lv.apply(abs, 1)


def test_set_flags_validation(rc: Client) -> None:
    lv = rc.load_balanced_view()
    with pytest.raises(TypeError, match="its flags are block, track, targets, after, follow, timeout, retries"):
        lv.set_flags(chunksize=3)
    for name, bad in [
        ("retries", -1),
        ("retries", "x"),
        ("timeout", -2),
        ("timeout", "soon"),
        ("targets", "some"),
        ("targets", []),
        ("after", 3),
        ("follow", [object()]),
    ]:
        with pytest.raises(TraitError):
            lv.set_flags(block=True, **{name: bad})
        assert lv.block is False
    lv.set_flags(timeout=0, after=["a", "b"], follow=Dependency("c", all=False))
    assert lv.timeout is None  # 0 means no timeout, as in ipyparallel
    assert isinstance(lv.after, Dependency)
    assert lv.after == {"a", "b"}
    assert lv.follow.all is False
    lv.after = []
    assert lv.after is None


def test_after_waits_and_follow_runs_where(rc: Client, cluster) -> None:
    cluster.engines[0].delay = 0.3
    lv = rc.load_balanced_view(targets=[0])
    slow = lv.apply_async(time.time)
    lv.targets = None
    with lv.temp_flags(after=slow):
        later = lv.apply_async(time.time)
    assert later.get(10) >= slow.get(10)
    with lv.temp_flags(follow=slow):
        assert {lv.apply_sync(engine_of) for _ in range(3)} == {0}


def test_dependency_timeout_and_impossible(rc: Client, cluster) -> None:
    lv = rc.load_balanced_view()
    cluster.engines[0].delay = 1.0
    with lv.temp_flags(targets=0):
        slow = lv.apply_async(abs, 1)
    with lv.temp_flags(after=slow, timeout=0.1):
        ar = lv.apply_async(abs, 2)
    with pytest.raises(DependencyTimeout):
        ar.get(10)
    bad = lv.apply_async(fail_on, 1, 1)
    with pytest.raises(RemoteError, match="ValueError"):
        bad.get(10)
    with lv.temp_flags(after=bad), pytest.raises(ImpossibleDependency):
        lv.apply_sync(abs, 3)
    with lv.temp_flags(after=Dependency(bad, success=False, failure=True)):
        assert lv.apply_sync(abs, -3) == 3


def test_retries_record_attempts(rc: Client, cluster) -> None:
    lv = rc.load_balanced_view(retries=2)

    def fail_on_engine0() -> int:
        import threading

        eid = int(threading.current_thread().name.rsplit("-", 1)[1])
        if eid == 0:
            raise RuntimeError("engine 0 is broken")
        return eid

    results = [lv.apply_async(fail_on_engine0) for _ in range(3)]
    assert all(r.get(10) in (1, 2) for r in results)
    retried = [r for r in results if len(r.metadata["attempts"]) > 1]
    assert retried
    assert retried[0].metadata["attempts"][0]["status"] == "error"
    lv.retries = 0
    with lv.temp_flags(targets=0), pytest.raises(RemoteError, match="broken"):
        lv.apply_sync(fail_on_engine0)


def test_depend_and_require_are_tried_elsewhere(rc: Client, cluster) -> None:
    lv = rc.load_balanced_view()

    def on_engine(eid: int) -> bool:
        import threading

        return threading.current_thread().name.endswith(f"-{eid}")

    @depend(on_engine, 2)
    def where() -> int:
        import threading

        return int(threading.current_thread().name.rsplit("-", 1)[1])

    assert {lv.apply_sync(where) for _ in range(4)} == {2}

    @depend(on_engine, 9)
    def nowhere() -> int:
        return 0

    with pytest.raises(ImpossibleDependency, match="unmet"):
        lv.apply_sync(nowhere)

    @require("colorsys")
    def hsv() -> object:
        return colorsys.rgb_to_hsv(1, 0, 0)  # noqa: F821 - imported on the engine

    assert lv.apply_sync(hsv) == (0.0, 1.0, 1.0)
    with pytest.raises(ImpossibleDependency):
        lv.apply_sync(require("no_such_module_here")(abs), 1)


def test_map_chunks_blocking_and_not(rc: Client, cluster) -> None:
    lv = rc.load_balanced_view()
    before = len(cluster.tasks.received)
    assert lv.map_sync(lambda x, y: x * y, range(10), range(10)) == [x * x for x in range(10)]
    assert len(cluster.tasks.received) - before == 10  # chunksize 1: a task per element
    before = len(cluster.tasks.received)
    amr = lv.map(str, range(10), chunksize=4)
    assert isinstance(amr, AsyncMapResult)
    assert amr.get(10) == [str(i) for i in range(10)]
    assert len(cluster.tasks.received) - before == 3
    assert len(amr) == 3
    before = len(cluster.tasks.received)
    amr2 = lv.map_async(abs, range(-5, 0), chunksize=2, ordered=False, track=True)
    assert isinstance(amr2, AsyncMapResult)
    assert amr2.ordered is False
    assert sorted(amr2) == [1, 2, 3, 4, 5]
    amr2.wait_for_send(10)
    assert amr2.sent
    assert len(cluster.tasks.received) - before == 3
    assert lv.map_sync(abs, [-1, -2, -3], chunksize=3) == [1, 2, 3]
    with pytest.raises(TypeError):
        rc[:].map_async(abs, [1], chunksize=2)  # a DirectView has no chunks
    assert lv.map(abs, [], block=True) == []
    with pytest.raises(ValueError, match="chunksize"):
        lv.map(abs, [1], chunksize=0)
    with pytest.raises(ValueError, match="differ"):
        lv.map(pow, [1, 2], [1])
    with pytest.raises(ValueError, match="at least one"):
        lv.map(abs)
    with lv.temp_flags(block=True, targets=[1]):
        assert lv.map(lambda _: engine_of(), range(4)) == [1, 1, 1, 1]


def test_map_iterates_ordered_or_as_completed(rc: Client, cluster) -> None:
    lv = rc.load_balanced_view()

    def sleepy(t: float) -> float:
        import time

        time.sleep(t)
        return t

    delays = [0.6, 0.0, 0.3]
    ordered = lv.map(sleepy, delays, ordered=True)
    assert list(ordered) == delays
    unordered = lv.map(sleepy, delays, ordered=False)
    got = list(unordered)
    assert sorted(got) == sorted(delays)
    assert got[0] == 0.0
    assert got[-1] == 0.6
    assert unordered.get(10) == delays  # get() is always in order


def test_map_failures_name_the_elements(rc: Client) -> None:
    lv = rc.load_balanced_view()
    amr = lv.map(lambda x: 10 // x, [1, 0, 2, 0, 5])
    with pytest.raises(CompositeError, match=r"elements 1, 3 of 5 failed") as info:
        amr.get(10)
    assert len(info.value.elist) == 2
    assert all(e.ename == "ZeroDivisionError" for e in info.value.elist)
    assert sorted(amr.failed_elements) == [1, 3]
    chunked = lv.map(lambda x: 10 // x, [1, 2, 0, 4, 5], chunksize=2)
    with pytest.raises(CompositeError, match=r"elements 2-3 of 5 failed"):
        chunked.get(10)
    it = iter(lv.map(lambda x: 10 // x, [1, 0]))
    assert next(it) == 10
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        next(it)


def test_imap_is_lazy_and_bounded(rc: Client, cluster) -> None:
    for engine in cluster.engines.values():
        engine.delay = 0.02
    lv = rc.load_balanced_view()
    consumed: list[int] = []

    def source():  # an endless input: only a lazy imap can take it
        for i in itertools.count():
            consumed.append(i)
            yield i

    out = lv.imap(lambda x: x * 2, source(), max_outstanding=3)
    assert consumed == []  # nothing is read before the first next()
    first = list(itertools.islice(out, 20))
    assert first == [2 * i for i in range(20)]
    assert len(consumed) <= 20 + 3
    assert cluster.tasks.max_in_flight <= 3
    out.close()
    rc.wait(timeout=10)


def test_imap_unordered_and_chunked(rc: Client, cluster) -> None:
    lv = rc.load_balanced_view()

    def sleepy(t: float) -> float:
        import time

        time.sleep(t)
        return t

    delays = [0.4, 0.0, 0.0]  # one per engine: the slow one finishes last
    got = list(lv.imap(sleepy, delays, ordered=False, max_outstanding=4))
    assert sorted(got) == sorted(delays)
    assert got[-1] == 0.4
    before = len(cluster.tasks.received)
    assert list(lv.imap(pow, range(7), [2] * 7, chunksize=3, max_outstanding=2)) == [i * i for i in range(7)]
    assert len(cluster.tasks.received) - before == 3
    assert cluster.tasks.max_in_flight <= 4
    with pytest.raises(ValueError, match="max_outstanding"):
        lv.imap(abs, [1], max_outstanding=0)
    with pytest.raises(ValueError, match="chunksize"):
        lv.imap(abs, [1], chunksize=0)
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        list(lv.imap(lambda x: 1 // x, [1, 0, 1]))


def test_abort_and_outstanding(rc: Client, cluster) -> None:
    cluster.engines[0].delay = 0.5
    lv = rc.load_balanced_view(targets=0)
    running = lv.apply_async(os.getpid)
    queued = lv.apply_async(os.getpid)
    assert set(lv.outstanding) == {running.msg_ids[0], queued.msg_ids[0]}
    queued.abort()
    with pytest.raises(TaskAborted):
        queued.get(10)
    running.get(10)
    assert lv.wait(timeout=10)


@pytest.mark.engines(0)
def test_no_engines_targets_raise(rc: Client) -> None:
    lv = rc.load_balanced_view(targets=[0])
    with pytest.raises(NoEnginesRegistered):
        lv.apply(abs, 1)
