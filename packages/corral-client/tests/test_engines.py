"""Engines: ids, indexing a client into views, joining and leaving, unknown targets."""

from __future__ import annotations

import time

import pytest

from corral.client import Client, DirectView, EngineError, NoEnginesRegistered, TimeoutError  # noqa: A004

pytestmark = pytest.mark.timeout(30)


def wait_until(predicate, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.mark.engines(4)
def test_indexing_rules(rc: Client) -> None:
    assert rc.ids == [0, 1, 2, 3]
    cases = [
        (0, 0),
        (-1, 3),
        ((0, 1), [0, 1]),
        (slice(None, None, 2), [0, 2]),
        (slice(None), [0, 1, 2, 3]),
        (slice(1, 3), [1, 2]),
    ]
    for key, targets in cases:
        view = rc[key]
        assert isinstance(view, DirectView)
        assert view.targets == targets, key
    assert rc[[2]].targets == [2]
    assert repr(rc[0]) == "<DirectView 0>"
    assert repr(rc[0, 1, 2]) == "<DirectView [0, 1, 2]>"
    assert repr(rc.direct_view()) == "<DirectView all>"
    assert [v.targets for v in rc] == [0, 1, 2, 3]
    assert len(rc[::2]) == 2
    assert len(rc[1]) == 1
    assert len(rc.direct_view()) == 4


def test_single_target_returns_a_value_several_a_list(rc: Client) -> None:
    assert rc[1].apply_sync(abs, -5) == 5
    assert rc[1, 2].apply_sync(abs, -5) == [5, 5]
    assert rc[[1]].apply_sync(abs, -5) == [5]
    assert rc[-1].apply_sync(abs, -5) == 5


def test_bad_indices_are_clear_errors(rc: Client) -> None:
    with pytest.raises(IndexError, match=r"engine 7 is not registered \(live engine ids: \[0, 1, 2\]\)"):
        rc[7]
    with pytest.raises(IndexError, match="out of range"):
        rc[-4]
    with pytest.raises(IndexError, match="selects no engine"):
        rc[5:]
    with pytest.raises(TypeError, match="not str"):
        rc["0"]  # type: ignore[index]
    with pytest.raises(TypeError, match="engine ids"):
        rc[0, "x"]  # type: ignore[index]
    with pytest.raises(IndexError):
        rc.direct_view([0, 9])
    view = rc.direct_view()
    view.targets = 9  # checked when used: engines come and go
    with pytest.raises(IndexError, match="engine 9 is not registered"):
        view.apply_sync(abs, 1)


@pytest.mark.engines(0)
def test_no_engines_at_all(rc: Client) -> None:
    assert rc.ids == []
    for make in (lambda: rc[0], lambda: rc[:], lambda: rc.direct_view().apply_async(abs, 1)):
        with pytest.raises(NoEnginesRegistered, match="no engines"):
            make()
    with pytest.raises(TimeoutError, match="0 engine"):
        rc.wait_for_engines(1, timeout=0.1)


@pytest.mark.engines(1)
def test_registration_notifications_grow_ids_and_wait_for_engines(rc: Client, cluster) -> None:
    fixed = rc[:]
    following = rc.direct_view()
    cluster.add_engine()
    cluster.add_engine()
    rc.wait_for_engines(3, timeout=10)
    assert rc.ids == [0, 1, 2]
    assert fixed.targets == [0]  # evaluated at construction
    assert fixed.apply_sync(abs, -1) == [1]
    assert following.apply_sync(abs, -1) == [1, 1, 1]  # 'all' at each call
    rc.wait_for_engines(2, timeout=0)  # already there: no wait
    with pytest.raises(ValueError, match="at least 0"):
        rc.wait_for_engines(-1)


def test_unregistered_notification_shrinks_ids(rc: Client, cluster) -> None:
    view = rc[1]
    departed = rc._engines._engines[1]
    cluster.remove_engine(1, reason="exited with code 3")
    wait_until(lambda: rc.ids == [0, 2])
    assert rc.direct_view().apply_sync(abs, -1) == [1, 1]
    with pytest.raises(IndexError, match="not registered"):
        view.apply_sync(abs, 1)
    # the engine that left never comes back, even if an old snapshot still lists it ...
    rc._engines.apply_snapshot({"1": departed})
    assert rc.ids == [0, 2]
    # ... but its id may, with a new engine (restarted under the same id, or an MPI rank)
    rc._engines.register(1, "f" * 32)
    assert rc.ids == [0, 1, 2]


def _blocker(cluster, eid: int):
    import threading

    gate = threading.Event()
    cluster.engines[eid].namespace["gate"] = gate
    return gate


def test_requests_to_an_engine_that_dies_fail_with_engine_error(rc: Client, cluster) -> None:
    gate = _blocker(cluster, 0)
    try:
        running = rc[0].execute("gate.wait(10)")
        queued = rc[0].apply_async(abs, -1)
        wait_until(lambda: queued.msg_ids[0] in cluster.engines[0].queued)
        cluster.remove_engine(0, reason="killed by SIGKILL")
        with pytest.raises(EngineError, match="SIGKILL") as caught:
            queued.get(10)
        assert caught.value.engine_id == 0
    finally:
        gate.set()
    running.wait(10)


def test_without_a_controller_reply_stranded_requests_still_fail(rc: Client, cluster) -> None:
    gate = _blocker(cluster, 2)
    try:
        rc[2].execute("gate.wait(10)")
        queued = rc[2].apply_async(abs, -1)
        wait_until(lambda: queued.msg_ids[0] in cluster.engines[2].queued)
        cluster.remove_engine(2, reason="heartbeat lost", fail_requests=False)
        with pytest.raises(EngineError, match="heartbeat lost"):
            queued.get(10)
    finally:
        gate.set()


def test_a_request_the_controller_cannot_route_fails_at_once(rc: Client, cluster) -> None:
    # the controller forgot engine 1 but the client has not heard yet
    engine = cluster.sync(cluster.engines.pop, 1)
    engine.stop()
    with pytest.raises(EngineError, match="no engine with uuid"):
        rc[1].apply_sync(abs, -1)
    with pytest.raises(EngineError):
        rc[1].clear(block=True)
