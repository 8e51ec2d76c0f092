"""BroadcastView: one message on the broadcast channel, the same results as a DirectView."""

from __future__ import annotations

import pytest

from corral.client import AsyncResult, BroadcastView, Client, CompositeError, DirectView, EngineError, RemoteError

pytestmark = pytest.mark.timeout(30)


def engine_of() -> int:
    return int(__import__("threading").current_thread().name.rsplit("-", 1)[1])


def test_apply_is_one_message_with_per_engine_results(rc: Client, cluster) -> None:
    bv = rc.broadcast_view()
    assert isinstance(bv, BroadcastView)
    assert isinstance(bv, DirectView)
    ar = bv.apply(engine_of)
    assert isinstance(ar, AsyncResult)
    assert ar.get(10) == [0, 1, 2]
    assert len(cluster.broadcasts) == 1
    assert cluster.broadcasts[0].header["sched"] == {"targets": [0, 1, 2]}
    assert ar.get_dict() == {0: 0, 1: 1, 2: 2}
    assert [md["engine_id"] for md in ar.metadata] == [0, 1, 2]
    assert len(ar.msg_ids) == 3
    assert set(ar.msg_ids) <= set(rc.history)
    assert bv.apply_sync(abs, -2) == [2, 2, 2]
    assert len(cluster.broadcasts) == 2
    assert not rc.outstanding


def test_namespaces_execute_and_fallbacks(rc: Client, cluster) -> None:
    bv = rc.broadcast_view(targets=[0, 2])
    bv.push({"a": 5}, block=True)
    assert "a" not in cluster.engines[1].namespace
    assert bv.pull("a", block=True) == [5, 5]
    assert bv.execute("a * 2", block=True).get() == [10, 10]
    n = len(cluster.broadcasts)
    assert bv.map_sync(lambda x: x + 1, range(4)) == [1, 2, 3, 4]  # per-engine blocks: direct
    bv.scatter("s", [1, 2, 3], block=True)
    assert len(cluster.broadcasts) == n
    assert bv.gather("s", block=True) == [1, 2, 3]  # the same pull to each: broadcast
    assert len(cluster.broadcasts) == n + 1
    n += 1
    one = rc.broadcast_view(targets=1)
    assert one.apply_sync(engine_of) == 1  # a single engine: a plain direct request
    assert len(cluster.broadcasts) == n


def test_errors_and_a_missing_engine(rc: Client, cluster) -> None:
    bv = rc.broadcast_view()
    with pytest.raises(CompositeError) as info:
        bv.apply_sync(lambda: 1 // (engine_of() - 1))
    assert [e.engine_id for e in info.value.elist] == [1]
    with pytest.raises(RemoteError):
        rc.broadcast_view(targets=[1]).pull("nothing_here", block=True)
    # an engine that left after the targets were resolved: the controller answers for it
    uuids = [cluster.engines[i].uuid for i in range(3)]
    cluster.remove_engine(2)
    payload = ({"serializer": "pickle"}, _frames())
    out = bv._send("apply_request", [payload] * 3, [0, 1, 2], uuids, fname="f", single=False, track=False)
    with pytest.raises(CompositeError) as info:
        out.get(10)
    assert len(info.value.elist) == 1
    assert isinstance(info.value.elist[0], EngineError)
    assert info.value.elist[0].engine_id == 2


def _frames() -> list[object]:
    from corral.wire import Serializer, pack_apply_message

    return pack_apply_message(abs, (-1,), {}, Serializer())


def test_abort_a_queued_broadcast(rc: Client, cluster) -> None:
    cluster.engines[0].delay = 0.5
    bv = rc.broadcast_view(targets=[0, 1])
    slow = rc[0].apply_async(abs, 1)
    queued = bv.apply_async(abs, 2)
    queued.abort()
    with pytest.raises(CompositeError) as info:
        queued.get(10)
    assert [type(e).__name__ for e in info.value.elist] in (["TaskAborted"], ["TaskAborted", "TaskAborted"])
    assert info.value.elist[0].engine_id == 0
    assert slow.get(10) == 1
