"""The client's result store: purging forgets finished requests and keeps pending ones."""

from __future__ import annotations

import pytest

from corral.client._metadata import Metadata
from corral.client._store import Request, ResultStore

pytestmark = pytest.mark.timeout(30)


def _requests(store: ResultStore, n: int) -> list[Request]:
    reqs = [Request(f"s_{i}", "apply_request", i % 2, f"u{i % 2}", Metadata(msg_id=f"s_{i}"), True) for i in range(n)]
    store.add(reqs)
    return reqs


def test_purge_forgets_finished_requests_only() -> None:
    store = ResultStore()
    reqs = _requests(store, 6)
    for req in reqs[:4]:
        store.complete(req, value=req.msg_id.upper())
    assert sorted(store.purge(lambda r: r.engine_id == 0)) == ["s_0", "s_2"]
    assert set(store.results) == {"s_1", "s_3"}
    assert set(store.metadata) == {"s_1", "s_3", "s_4", "s_5"}
    assert store.get("s_0") is None
    assert store.get("s_4") is reqs[4], "pending requests are never forgotten"
    assert store.history == [r.msg_id for r in reqs], "history is kept unless asked"
    assert reqs[0].value == "S_0", "a request still held keeps its value"

    assert sorted(store.purge(history=True)) == ["s_1", "s_3"]
    assert store.results == {}
    assert store.history == ["s_4", "s_5"], "only pending requests stay in the history"
    store.complete(reqs[4], value=4)
    assert store.results == {"s_4": 4}, "a request pending during the purge still completes"


def test_acknowledgements_and_replies_acknowledge_requests() -> None:
    import threading

    from corral.wire import Session

    store = ResultStore()
    reqs = _requests(store, 3)
    assert not store.acknowledged(reqs)
    assert not store.wait_for_ack(reqs, 0.05), "nothing acknowledged yet: the timeout passes"
    session = Session(b"k" * 32)
    ack = session.msg("submission_ack", {"msg_ids": ["s_0", "s_2", "not mine"]})
    store.handle_ack(ack)
    assert [r.acked for r in reqs] == [True, False, True]
    assert not store.acknowledged(reqs)
    later = threading.Timer(0.1, lambda: store.complete(reqs[1], value=1))
    later.start()
    try:
        assert store.wait_for_ack(reqs, 10), "a reply acknowledges its request too"
    finally:
        later.join()
    assert store.acknowledged(reqs)
    store.handle_ack(session.msg("submission_ack", {"msg_ids": "s_0"}))  # not a list: ignored
