"""Client methods: wait, spin, history, outstanding, results, queue_status, control."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from corral.client import AsyncResult, Client, NoEnginesRegistered, RemoteError, TaskAborted, interactive

pytestmark = pytest.mark.timeout(30)


@interactive
def wait_for_gate() -> str:
    gate.wait(10)  # type: ignore[name-defined]  # noqa: F821
    return "open"


def gate_on(cluster, *eids: int) -> threading.Event:
    gate = threading.Event()
    for eid in eids:
        cluster.engines[eid].namespace["gate"] = gate
    return gate


def test_history_results_metadata_and_wait(rc: Client) -> None:
    dv = rc[:]
    a = dv.apply_async(abs, -1)
    b = rc[0].apply_async(abs, -2)
    assert rc.history == a.msg_ids + b.msg_ids
    assert dv.history == a.msg_ids
    assert rc.wait(timeout=10)
    assert rc.outstanding == set()
    assert dv.outstanding == set()
    assert [rc.results[m] for m in a.msg_ids] == [1, 1, 1]
    assert rc.metadata[b.msg_ids[0]].engine_id == 0
    assert rc.wait([a, b.msg_ids[0], 0, -1], timeout=10)
    assert rc.wait(b, timeout=0)
    assert dv.wait(timeout=10)
    with pytest.raises(ValueError, match="unknown msg_id"):
        rc.wait("nope")
    with pytest.raises(IndexError):
        rc.wait(99)
    with pytest.raises(TypeError):
        rc.wait(1.5)
    rc.spin()
    dv.spin()
    failed = rc[1].apply_async(lambda: 1 / 0)
    failed.wait(10)
    assert isinstance(rc.results[failed.msg_ids[0]], RemoteError)


def test_wait_times_out_while_work_is_outstanding(rc: Client, cluster) -> None:
    gate = gate_on(cluster, 2)
    try:
        ar = rc[2].apply_async(wait_for_gate)
        t0 = time.monotonic()
        assert rc.wait(timeout=0.05) is False
        assert rc.wait(ar, timeout=0) is False
        assert time.monotonic() - t0 < 5
        assert rc.outstanding == set(ar.msg_ids)
        assert rc[2].outstanding == set()
        assert rc.direct_view().outstanding == set()
    finally:
        gate.set()
    assert rc.wait(ar, timeout=10) is True
    assert rc.outstanding == set()


def test_queue_status(rc: Client, cluster) -> None:
    rc[:].apply_sync(abs, 1)
    status = rc.queue_status()
    assert status["unassigned"] == 0
    assert {k for k in status if isinstance(k, int)} == {0, 1, 2}
    assert status[0] == {"queue": 0, "completed": 1, "tasks": 0}
    assert rc.queue_status(1) == {"queue": 0, "completed": 1, "tasks": 0}
    assert set(rc.queue_status([0, 2])) == {0, 2, "unassigned"}
    verbose = rc.queue_status(0, verbose=True)
    assert verbose["completed"] == [m for m in rc.history if rc.metadata[m].engine_id == 0]
    assert rc[1].queue_status() == rc.queue_status(1)
    assert cluster.queries[-1].content == {"targets": [1], "verbose": False}
    with pytest.raises(IndexError):
        rc.queue_status(5)


def test_abort_jobs_and_targets(rc: Client, cluster) -> None:
    gate = gate_on(cluster, 0, 1)
    try:
        rc[0, 1].apply_async(wait_for_gate)
        later = [rc[0].apply_async(abs, -1), rc[1].apply_async(abs, -1)]
        deadline = time.monotonic() + 10
        while len(cluster.engines[0].queued) + len(cluster.engines[1].queued) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert rc.abort(later, block=True) is None
        assert cluster.engines[0].aborted == {later[0].msg_ids[0]}
        assert cluster.engines[1].aborted == {later[1].msg_ids[0]}
        ar = rc.abort(later[0].msg_ids[0], targets=[0])
        assert isinstance(ar, AsyncResult)
        ar.get(10)
    finally:
        gate.set()
    for ar in later:
        with pytest.raises(TaskAborted):
            ar.get(10)
    assert rc.abort(block=True) is None  # nothing outstanding: nothing to send
    assert rc[:].abort(block=False).get(10) == []  # nothing of the view outstanding


def test_send_signal(rc: Client, cluster) -> None:
    rc.send_signal(signal.SIGINT, targets=1, block=True)
    rc.send_signal("SIGTERM", targets=[0, 2], block=True)
    assert cluster.engines[1].signals == [int(signal.SIGINT)]
    assert cluster.engines[0].signals == ["SIGTERM"] == cluster.engines[2].signals
    ar = rc.send_signal()
    assert isinstance(ar, AsyncResult)
    assert ar.get(10) == [None, None, None]
    with pytest.raises(TypeError):
        rc.send_signal(2.0)  # type: ignore[arg-type]


def test_clear_through_the_client(rc: Client, cluster) -> None:
    rc[:].push({"a": 1}, block=True)
    assert rc.clear(targets=[0, 1], block=True) is None
    assert "a" not in cluster.engines[0].namespace
    assert "a" in cluster.engines[2].namespace
    rc.block = True
    assert rc.clear() is None
    assert "a" not in cluster.engines[2].namespace


def test_shutdown_engines_then_the_hub(rc: Client, cluster) -> None:
    assert rc.shutdown(targets=1, block=True) is None
    deadline = time.monotonic() + 10
    while rc.ids != [0, 2]:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert not cluster.hub_shutdown
    rc[:].shutdown(hub=True)
    assert cluster.hub_shutdown
    while rc.ids:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    with pytest.raises(NoEnginesRegistered):
        rc.shutdown()
    rc.shutdown(hub=True)  # no engines left: only the hub is asked


def test_control_without_engines(rc: Client, cluster) -> None:
    rc.shutdown(block=True)
    deadline = time.monotonic() + 10
    while rc.ids:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    with pytest.raises(NoEnginesRegistered):
        rc.clear()
