"""The hub with scripted engines and clients on real sockets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from corral.hub import MemoryStore, Record, describe_exit
from corral.wire import Session, unwrap_exception
from corral.wire.errors import EngineError

KEY = b"h" * 32  # the key the bench fixture (conftest.py) uses
HubBench = Any

pytestmark = pytest.mark.timeout(60)


def test_ids_are_handed_out_in_order_and_engines_go_live(bench: HubBench) -> None:
    ids = []
    for _ in range(3):
        uuid, reply = bench.engine()
        assert reply.content["status"] == "ok"
        assert reply.content["heartbeat_period"] == 0.1
        ids.append(reply.content["id"])
        note = bench.note()
        assert note.msg_type == "engine_registered"
        assert note.content == {"id": reply.content["id"], "uuid": uuid, "shm": "", "direct": ""}
    assert ids == [0, 1, 2]
    conn = bench.ask("connection_request", {})
    assert conn.content["engines"] == {str(i): r.uuid for i, r in enumerate(bench.hub.engines.live())}
    assert conn.content["shm"] == {}


def test_engines_shared_memory_addresses_reach_clients(bench: HubBench) -> None:
    address = "0123456789abcdef:4242"
    uuid, _ = bench.engine(shm=address)
    assert bench.note().content == {"id": 0, "uuid": uuid, "shm": address, "direct": ""}
    odd, _ = bench.engine(shm="x" * 500)  # not an address: the engine is served without one
    assert bench.note().content["shm"] == ""
    conn = bench.ask("connection_request", {})
    assert conn.content["shm"] == {uuid: address}
    assert odd in conn.content["engines"].values()


@pytest.mark.parametrize(
    "bad", ["tcp://evil.example:1", "udp://127.0.0.1:5", "tcp://127.0.0.1", "x" * 600, 7, ["tcp://127.0.0.1:5"]]
)
def test_engines_direct_addresses_reach_clients_and_odd_ones_are_dropped(bench: HubBench, bad: object) -> None:
    url = "tcp://127.0.0.1:40001"
    uuid, _ = bench.engine(direct=url)
    assert bench.note().content["direct"] == url
    odd, reply = bench.engine(direct=bad)  # type: ignore[arg-type]
    assert reply.content["status"] == "ok"  # registered all the same, only without a direct path
    assert bench.note().content["direct"] == ""
    conn = bench.ask("connection_request", {})
    assert conn.content["direct"] == {uuid: url}
    assert odd in conn.content["engines"].values()


def test_an_engine_is_not_live_before_hellos_and_a_heartbeat(bench: HubBench) -> None:
    uuid, _ = bench.engine(beat=False)
    time.sleep(0.3)
    assert bench.on_loop(lambda: bench.hub.engines.get(uuid).state) == "registering"
    bench.heart(uuid)
    assert bench.note().content["uuid"] == uuid


def test_requested_ids_and_refusals(bench: HubBench) -> None:
    _, reply = bench.engine(requested_id=5)
    assert reply.content["id"] == 5
    _, clash = bench.engine(requested_id=5)
    assert clash.content["status"] == "error"
    assert "held by a live engine" in clash.content["evalue"]
    _, nxt = bench.engine()
    assert nxt.content["id"] == 6  # never below an id already handed out
    bad = bench.ask("registration_request", {"uuid": "not-a-uuid"})
    assert bad.content["status"] == "error"
    assert "32 lowercase hex digits" in bad.content["evalue"]


def test_an_incompatible_engine_is_refused_with_a_clear_error(bench: HubBench) -> None:
    s = Session(KEY)
    sock = bench.dealer("registration")
    msg = s.msg("registration_request", {"uuid": "ab" * 16})
    msg.header["version"] = "9.0"
    sock.send_multipart(s.serialize(msg))
    assert sock.poll(5000)
    reply = s.recv(sock)
    assert reply.msg_type == "registration_reply"
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "ProtocolVersionError"
    assert "9.0" in reply.content["evalue"]
    assert "1.0" in reply.content["evalue"]


def test_silent_engine_is_declared_dead_and_its_work_fails_with_engine_error(bench: HubBench) -> None:
    uuid, reply = bench.engine()
    bench.note()
    request = bench.request(uuid)
    silenced = time.monotonic()
    bench.hearts[uuid].set()  # the engine stops answering
    note = bench.note()
    # 3 missed periods of 0.1 s, give or take one period and the loop's scheduling
    assert time.monotonic() - silenced < 2.0
    assert note.msg_type == "engine_unregistered"
    assert note.content["id"] == reply.content["id"]
    assert "stopped answering heartbeats" in note.content["reason"]
    assert len(bench.sent_replies) == 1
    client, engine, msg_type, parent, content, metadata = bench.sent_replies[0]
    assert client == b"client-1"
    assert engine == uuid.encode()
    assert msg_type == "apply_reply"
    assert parent["msg_id"] == request.msg_id
    err = unwrap_exception(content)
    assert isinstance(err, EngineError)
    assert f"engine {reply.content['id']} stopped answering heartbeats" in str(err)
    assert metadata["engine_id"] == reply.content["id"]
    # a late reply from the dead engine is dropped, not delivered twice
    s = Session(KEY)
    late = bench.session.deserialize_raw(s.serialize(s.msg("apply_reply", {}, parent=request))[1:], stream="late")
    assert bench.on_loop(bench.hub.reply, "mux", late, b"client-1", uuid.encode()) is False


def test_supervisor_exit_report_names_the_signal(bench: HubBench) -> None:
    uuid, _reply = bench.engine()
    bench.note()
    bench.request(uuid)
    s = Session(KEY)
    s.send(bench.dealer("registration"), "engine_exit", {"uuid": uuid, "exit_code": None, "signal": "SIGKILL"})
    note = bench.note()
    assert note.content["reason"] == "killed by SIGKILL"
    bench.wait_for(lambda: len(bench.sent_replies) == 1)
    assert "killed by SIGKILL" in bench.sent_replies[0][4]["evalue"]
    assert describe_exit(3, None) == "exited with code 3"
    assert describe_exit(-11, None) == "killed by SIGSEGV"


def test_queue_result_and_purge_queries(bench: HubBench) -> None:
    uuid, reply = bench.engine()
    bench.note()
    r1 = bench.request(uuid)
    r2 = bench.request(uuid)
    status = bench.ask("queue_request", {"targets": None, "verbose": False}).content
    assert status[str(reply.content["id"])] == {"queue": 2, "tasks": 0, "completed": 0}
    bench.reply(uuid, r1, [b"result-bytes"])
    got = bench.ask("result_request", {"msg_ids": [r1.msg_id, r2.msg_id, "nope"]})
    results = got.content["results"]
    assert results[r1.msg_id]["state"] == "completed"
    assert results[r1.msg_id]["content"] == {"status": "ok"}
    assert results[r1.msg_id]["buffer_count"] == 1
    assert [bytes(b) for b in got.buffers] == [b"result-bytes"]
    assert results[r2.msg_id]["state"] == "pending"
    assert results["nope"]["state"] == "unknown"
    verbose = bench.ask("queue_request", {"targets": [reply.content["id"]], "verbose": True}).content
    assert verbose[str(reply.content["id"])]["queue"] == [r2.msg_id]
    assert bench.ask("purge_request", {"msg_ids": [r1.msg_id]}).content["purged"] == 1
    assert bench.ask("result_request", {"msg_ids": [r1.msg_id]}).content["results"][r1.msg_id]["state"] == "unknown"


def test_bad_requests_get_errors_and_the_hub_keeps_serving(bench: HubBench) -> None:
    assert bench.ask("frobnicate_request", {}).content["status"] == "error"
    assert "unknown request type" in bench.ask("frobnicate_request", {}).content["evalue"]
    assert bench.ask("result_request", {"msg_ids": "x"}).content["status"] == "error"
    bench.client.send_multipart([b"garbage"])
    Session(b"w" * 32).send(bench.client, "connection_request", {})
    assert bench.ask("connection_request", {}).content["status"] == "ok"
    counts = bench.on_loop(lambda: dict(bench.session.rejections))
    assert counts[("registration", "bad_signature")] == 1
    assert counts[("registration", "malformed")] == 1


def test_uncollected_results_are_never_culled_collected_ones_are_bounded(tmp_path: Any) -> None:
    for spill in (tmp_path, False):
        store = MemoryStore(max_collected=3, spill=spill)
        for i in range(10):
            store.add_request(Record(f"m{i}", "mux", b"c", "e", {"msg_id": f"m{i}"}))
            store.complete(f"m{i}", [b"{}", b"{}", b"{}", b"{}", b"buf%d" % i])
        for i in range(5):
            store.mark_collected(f"m{i}")
        stats = store.stats()
        assert (stats["pending"], stats["uncollected"], stats["collected"]) == (0, 5, 3)
        assert stats["collected_bytes"] == 3 * 4
        assert len(store._records) == 8, "in memory: 5 uncollected, the 3 latest collected"
        if spill is False:
            # dropped, and remembered as expired rather than unknown
            assert store.get("m0") is None
            assert store.is_expired("m0")
            assert store.is_expired("m1")
            assert stats["expired_ranges"] == 2
        else:
            # spilled to disk, still fetchable
            assert stats["spilled"] == 2
            store._flush_spill()
            got = store.get("m0")
            assert got is not None
            assert got.reply()[3] == [b"buf0"]
            assert not store.is_expired("m0")
        assert not store.is_expired("m2")
        assert not store.is_expired("never-sent")
        for i in range(2, 10):
            assert store.get(f"m{i}") is not None
        assert store.purge() == (8 if spill is False else 10)
        assert store.stats()["uncollected"] == 0
        assert store.get("m0") is None
        store.close()
    assert not list(tmp_path.glob("spill-*")), "close removes the spill folder"


def test_task_requests_are_left_to_their_scheduler_and_outcomes_are_answered(bench: HubBench) -> None:
    uuid, reply = bench.engine()
    bench.note()
    bench.hub.unassigned = lambda: 3
    task = bench.request(uuid, channel="task")
    mux = bench.request(uuid)
    assert bench.on_loop(bench.hub.outcome, task.msg_id) == ("pending", None, uuid)
    assert bench.on_loop(bench.hub.outcome, "nope") == ("unknown", None, None)
    status = bench.ask("queue_request", {"targets": None, "verbose": False}).content
    assert status[str(reply.content["id"])] == {"queue": 1, "tasks": 1, "completed": 0}
    assert status["unassigned"] == 3
    bench.hearts[uuid].set()  # the engine dies: its mux request fails here, its task does not
    bench.note()
    bench.wait_for(lambda: len(bench.sent_replies) == 1)
    assert bench.sent_replies[0][3]["msg_id"] == mux.msg_id
    assert bench.on_loop(bench.hub.outcome, mux.msg_id) == ("completed", "error", uuid)
    assert bench.on_loop(bench.hub.outcome, task.msg_id)[0] == "pending"
    # the scheduler answers the task itself (and one it never routed) and stores the replies
    parts = ("apply_reply", {"status": "error", "ename": "EngineError"}, {"status": "error"})
    bench.on_loop(bench.hub.answered, "task", b"client-1", uuid, dict(task.header), parts, True)
    never = {"msg_id": "never-routed", "msg_type": "apply_request"}
    bench.on_loop(bench.hub.answered, "task", b"client-1", "", never, parts, False)
    assert bench.on_loop(bench.hub.outcome, task.msg_id) == ("completed", "error", uuid)
    assert bench.on_loop(bench.hub.outcome, "never-routed") == ("completed", "error", None)
    results = bench.ask("result_request", {"msg_ids": ["never-routed"]}).content["results"]
    assert results["never-routed"]["content"]["ename"] == "EngineError"


def test_a_resubmitted_request_moves_to_its_new_engine() -> None:
    store = MemoryStore()
    store.add_request(Record("t", "task", b"c", "e0", {"msg_id": "t"}))
    store.add_request(Record("t", "task", b"c", "e1", {"msg_id": "t"}))
    assert store.pending_on("e0") == []
    assert [r.engine for r in store.pending_on("e1")] == ["e1"]
    assert store.stats()["pending"] == 1
