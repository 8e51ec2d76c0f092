"""Results and the hub (issue 5): AsyncResult members, metadata, other clients' results, hub
queries, purge, retention, and a controller restarted from its SQLite store.

Tests that do not break anything use the session's 4-engine cluster (``rc``); those that
purge everything, expire results or kill the controller start their own. Functions sent to
engines are ``@interactive`` or lambdas (this module cannot be imported on the engines).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import (
    AsyncHubResult,
    AsyncMapResult,
    AsyncResult,
    Client,
    CompositeError,
    EngineError,
    RemoteError,
    ResultExpired,
    TaskAborted,
    interactive,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(90)

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0

PEERS = Path(__file__).resolve().parent / "peers"


@interactive
def nap(seconds: float, value: Any = None) -> Any:
    """Sleep on the engine, then return ``value``."""
    import time

    time.sleep(seconds)
    return value


@interactive
def square_after(seconds: float, x: int) -> int:
    """Sleep, then return x * x."""
    import time

    time.sleep(seconds)
    return x * x


@interactive
def fail_once(marker: str) -> str:
    """Fail the first time (creating ``marker``), succeed after."""
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "second attempt"


@interactive
def blob(n: int) -> bytes:
    """Return ``n`` bytes (a result that weighs on the hub's store)."""
    return b"x" * n


def controller_rss(pid: int) -> int:
    """The resident memory of process ``pid`` in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


# -- AsyncResult and AsyncMapResult members ------------------------------------------------------


def test_async_result_timing_progress_and_containers(rc: Client) -> None:
    ar = rc[:].apply_async(nap, 0.3, "v")
    assert len(ar) == 4
    assert ar.msg_ids == rc.history[-4:]
    assert 0 <= ar.progress < 4
    assert ar.elapsed >= 0
    assert ar.wall_time == 0.0, "no wall time while pending"
    ar.wait(DEADLINE)
    assert ar.progress == 4
    assert ar.result_dict == {0: "v", 1: "v", 2: "v", 3: "v"}
    assert list(ar) == ["v"] * 4
    mds = ar.metadata
    assert [md.engine_id for md in mds] == [0, 1, 2, 3]
    # each request ran ~0.3 s: serial time is their sum, wall time spans submission to the last reply
    assert ar.serial_time >= 4 * 0.29
    assert 0.29 <= ar.wall_time <= ar.elapsed
    assert ar.wall_time == pytest.approx(ar.timedelta(ar.submitted, ar.received))
    first_started = ar.timedelta(ar.submitted, ar.started, end_key=min)
    assert 0 <= first_started <= ar.wall_time
    assert ar.timedelta(mds[0]["started"], mds[0]["completed"]) >= 0.29
    for md in mds:
        assert md["submitted"] <= md["received"]
        assert md["started"] <= md["completed"]
    later = ar.elapsed
    time.sleep(0.05)
    assert ar.elapsed > later, "elapsed keeps counting from the submission"


def test_map_results_iterate_in_order_or_as_completed(rc: Client) -> None:
    view = rc.load_balanced_view()
    ordered = view.map_async(square_after, [0.4, 0.0, 0.0, 0.0], range(4))
    assert isinstance(ordered, AsyncMapResult)
    assert len(ordered) == 4, "one task per element"
    assert list(ordered) == [0, 1, 4, 9]
    fast_first = view.map_async(square_after, [0.6, 0.0, 0.0, 0.0], range(4), ordered=False)
    got = list(fast_first)
    assert sorted(got) == [0, 1, 4, 9]
    assert got[-1] == 0, "the slow element comes last when not ordered"
    assert fast_first.get() == [0, 1, 4, 9], "get() is always in order"
    assert fast_first.progress == len(fast_first) == 4
    direct = rc[:].map_async(lambda x: x + 1, range(8))
    assert len(direct) == 4, "one block per engine"
    assert list(direct) == list(range(1, 9))


def test_metadata_keys_of_output_errors_dependencies_and_retries(rc: Client, tmp_path: Path) -> None:
    ok = rc[1].execute("import sys; print('out'); print('err', file=sys.stderr); 6 * 7")
    ok.wait(DEADLINE)
    md = ok.metadata
    assert set(md) >= {
        "msg_id", "submitted", "started", "completed", "received", "engine_id", "engine_uuid",
        "execute_result", "error", "stdout", "stderr", "status", "after", "follow",
    }  # fmt: skip
    assert md["msg_id"] == ok.msg_ids[0]
    assert md.status == "ok"
    assert md.stdout == "out\n"
    assert md.stderr == "err\n"
    assert md.execute_result["data"]["text/plain"] == "42"
    assert md.pyout is md.execute_result, "seed 002's name"
    assert md.error is None
    assert md.engine_id == 1

    bad = rc[1].execute("1 / 0")
    bad.wait(DEADLINE)
    assert not bad.successful()
    assert bad.metadata.status == "error"
    assert bad.metadata.error["ename"] == "ZeroDivisionError"
    assert bad.metadata.pyerr is bad.metadata.error

    view = rc.load_balanced_view()
    first = view.apply_async(nap, 0.1, "a")
    with view.temp_flags(after=[first]):
        second = view.apply_async(nap, 0, "b")
    with view.temp_flags(follow=[second]):
        third = view.apply_async(nap, 0, "c")
    assert third.get(DEADLINE) == "c"
    assert second.metadata.after == first.msg_ids
    assert third.metadata.follow == second.msg_ids
    assert third.metadata.engine_id == second.metadata.engine_id, "follow ran where second ran"
    assert second.metadata.started >= first.metadata.completed

    marker = str(tmp_path / "failed-once")
    with view.temp_flags(retries=1):
        retried = view.apply_async(fail_once, marker)
    assert retried.get(DEADLINE) == "second attempt"
    attempts = retried.metadata["attempts"]
    assert [a["status"] for a in attempts] == ["error", "ok"]
    assert attempts[0]["error"]["evalue"] == "first attempt fails"


def test_abort_from_the_result_and_from_the_client(rc: Client) -> None:
    view = rc[3]
    blocker = view.apply_async(nap, 1.0, "ran")
    queued = view.apply_async(nap, 0, "never")
    other = view.apply_async(nap, 0, "never either")
    queued.abort()
    rc.abort(other, block=True)
    assert blocker.get(DEADLINE) == "ran"
    for ar in (queued, other):
        with pytest.raises(TaskAborted):
            ar.get(DEADLINE)
        assert ar.metadata.status == "aborted"
        assert not ar.successful()


def test_client_results_metadata_history_outstanding_and_queue_status(
    rc: Client, wait_until: Callable[..., Any]
) -> None:
    running = rc[0].apply_async(nap, 0.8, "slow")
    queued = rc[0].apply_async(nap, 0, "next")
    assert set(running.msg_ids + queued.msg_ids) <= rc.outstanding
    assert rc.history[-2:] == running.msg_ids + queued.msg_ids
    wait_until(lambda: rc.queue_status(0, verbose=True)["queue"] == running.msg_ids + queued.msg_ids, "verbose queue")
    status = rc.result_status(running.msg_ids + queued.msg_ids + ["no-such-id"])
    assert status["pending"] == running.msg_ids + queued.msg_ids
    assert status["unknown"] == ["no-such-id"]
    rc.wait([running, queued], DEADLINE)
    assert not (set(running.msg_ids + queued.msg_ids) & rc.outstanding)
    assert rc.results[queued.msg_ids[0]] == "next"
    assert rc.metadata[running.msg_ids[0]]["status"] == "ok"
    full = rc.result_status(running.msg_ids, status_only=False)
    assert full["completed"] == running.msg_ids
    assert full[running.msg_ids[0]] == "slow"
    # the replies came straight from the engine; the hub has them from its records, which follow
    # within tens of milliseconds (docs/messages.md, "The direct path")
    wait_until(lambda: rc.queue_status(0)["queue"] == 0, "the hub has the engine's records", timeout=1.0)
    # a targeted purge forgets these two here and on the hub, and nothing else
    keep = rc[1].apply_async(nap, 0, "kept")
    keep.get(DEADLINE)
    assert rc.purge_results([running, queued]) == 2
    assert running.msg_ids[0] not in rc.results
    assert running.msg_ids[0] not in rc.metadata
    assert rc.results[keep.msg_ids[0]] == "kept"
    assert running.get() == "slow", "an AsyncResult still held keeps its value"
    assert rc.result_status(running.msg_ids)["unknown"] == running.msg_ids
    assert rc.result_status(keep.msg_ids)["completed"] == keep.msg_ids
    pending = rc[1].apply_async(nap, 0.5)
    with pytest.raises(RuntimeError, match="outstanding"):
        rc.purge_results(pending)
    pending.get(DEADLINE)


# -- other clients' results -------------------------------------------------------------------------


def test_get_result_by_this_client_and_by_another_process(
    cluster: Cluster, rc: Client, processes: Any, tmp_path: Path
) -> None:
    values = rc[:].apply_async(lambda: __import__("os").getpid())
    printed = rc[2].execute("print('hello from 2')")
    failed = rc[3].apply_async(lambda: 1 / 0)
    task = rc.load_balanced_view().apply_async(square_after, 0, 12)
    pids = values.get(DEADLINE)
    printed.wait(DEADLINE)
    failed.wait(DEADLINE)
    assert task.get(DEADLINE) == 144

    own = rc.get_result(values.msg_ids)
    assert type(own) is AsyncResult, "this client's own requests need no hub"
    assert own.get(0) == pids
    assert rc.get_result(task.msg_ids[0]).get(0) == 144, "one msg_id: a single result"
    assert rc.get_result(-1).get(0) == 144, "a history index"
    assert rc[2].get_result(printed.msg_ids[0]).metadata.stdout == "hello from 2\n"

    ids = values.msg_ids + printed.msg_ids + failed.msg_ids + task.msg_ids
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(ids))
    other = processes.spawn(
        "fetcher", str(PEERS / "results_client.py"), "fetch", str(cluster.connection_file), str(ids_file)
    )
    assert other.finish(DEADLINE) == 0, other.output()
    fetched = other.wait_for_event("fetched")
    assert fetched["kind"] == "AsyncHubResult"
    assert fetched["ready"] is True
    assert fetched["values"] == [*pids, None, {"error": "RemoteError"}, 144]
    assert [m["status"] for m in fetched["metadata"]] == ["ok"] * 5 + ["error", "ok"]
    assert fetched["metadata"][4]["stdout"] == "hello from 2\n"
    assert [m["engine_uuid"] for m in fetched["metadata"][:4]] == [md.engine_uuid for md in values.metadata]


def test_hub_results_of_another_client_wait_poll_and_await(
    cluster: Cluster, rc: Client, wait_until: Callable[..., Any]
) -> None:
    slow = rc.load_balanced_view().apply_async(nap, 1.0, "late")
    quick = rc[0].apply_async(nap, 0, "early")
    quick.get(DEADLINE)
    with Client(cluster.connection_file) as second:
        hub = second.get_result(slow.msg_ids + quick.msg_ids)
        assert isinstance(hub, AsyncHubResult)
        assert not hub.ready(), "the slow task is still running"
        assert hub.progress == 1
        assert len(hub) == 2
        called = threading.Event()
        hub.add_done_callback(lambda f: called.set())
        assert hub.get(DEADLINE) == ["late", "early"], "waiting polls the hub until the task finishes"
        assert called.wait(DEADLINE)
        assert hub.successful()
        assert hub.metadata[0]["status"] == "ok"
        assert hub.metadata[0]["received"] >= hub.metadata[0]["completed"]
        assert second.results[slow.msg_ids[0]] == "late"
        assert slow.msg_ids[0] not in second.history, "another client's request is not in this one's history"

        again = rc[1].apply_async(nap, 1.0, "awaited")
        # a msg_id reaches the hub through the controller, not at once: wait until it is known
        wait_until(lambda: rc.result_status(again.msg_ids)["pending"], "the hub knows the request")
        single = second.get_result(again.msg_ids[0])
        assert asyncio.run(asyncio.wait_for(_await(single), DEADLINE)) == "awaited"
        assert single.get_dict() == {1: "awaited"}

        err = rc[2].apply_async(lambda: 1 / 0)
        err.wait(DEADLINE)
        with pytest.raises(RemoteError, match="ZeroDivisionError"):
            second.get_result(err.msg_ids[0]).get(DEADLINE)
        with pytest.raises(CompositeError):
            second.get_result(err.msg_ids + quick.msg_ids).get(DEADLINE)
        with pytest.raises(ValueError, match="no record"):
            second.get_result("never-sent")


async def _await(ar: AsyncResult) -> Any:
    return await ar


def test_results_of_a_client_killed_with_1000_tasks_outstanding(
    cluster: Cluster, rc: Client, processes: Any, tmp_path: Path
) -> None:
    ids_file = tmp_path / "ids.json"
    first = processes.spawn(
        "submitter", str(PEERS / "results_client.py"), "submit", str(cluster.connection_file), "1000", str(ids_file)
    )
    acked = first.wait_for_event("acknowledged")
    assert acked["outstanding"] > 500, "most tasks are still outstanding when the client dies"
    assert acked["unknown"] == 0, "an acknowledged task is one the hub has stored"
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(DEADLINE)
    ids = json.loads(ids_file.read_text())
    assert len(ids) == 1000
    with Client(cluster.connection_file) as second:
        results = second.get_result(ids)  # every one was acknowledged: none may be missing
        assert isinstance(results, AsyncHubResult)
        assert results.progress < 1000, "fetched while tasks were still running"
        values = results.get(60)
    assert values == [i * i for i in range(1000)]


# -- purge, retention ------------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_purge_frees_memory_in_the_hub_and_the_client(cluster_factory: Callable[..., Any]) -> None:
    cluster, client = cluster_factory(2)
    pid = cluster.controller.pid
    view = client.load_balanced_view()
    # beyond the 1,000 collected results the memory store keeps, the oldest are spilled to disk
    early = view.map_async(lambda x: -x, range(1_100))
    assert early.get(DEADLINE)[-1] == -1_099
    with Client(cluster.connection_file) as other:
        assert other.get_result(early.msg_ids[0]).get(DEADLINE) == [0], "a spilled result is still fetchable"
    before = controller_rss(pid)
    # 50 MB of results: under the memory store's 64 MB of collected buffers, so all in memory
    ar = view.map_async(blob, [250_000] * 200)
    assert len(ar.get(DEADLINE)) == 200
    full = controller_rss(pid)
    assert full - before > 40e6, f"the hub holds the results: {before / 1e6:.0f} -> {full / 1e6:.0f} MB"
    with Client(cluster.connection_file) as other:
        assert other.get_result(ar.msg_ids[0]).get(DEADLINE) == [b"x" * 250_000], "another client can fetch them"
    assert len(client.results) >= 200
    assert len(client.metadata) >= 200
    msg_ids = ar.msg_ids
    del ar
    assert client.purge_everything() >= 200
    after = controller_rss(pid)
    assert full - after > 35e6, f"purge gave the memory back: {full / 1e6:.0f} -> {after / 1e6:.0f} MB"
    assert client.results == {}
    assert client.metadata == {}
    assert client.history == []
    assert client.result_status(msg_ids)["unknown"] == msg_ids, "the hub forgot them"


def test_results_past_the_retention_limit_raise_result_expired(cluster_factory: Callable[..., Any]) -> None:
    cluster, client = cluster_factory(1, retention=1.0)
    ar = client[0].apply_async(nap, 0, "short-lived")
    assert ar.get(DEADLINE) == "short-lived"
    with Client(cluster.connection_file) as second:
        assert second.get_result(ar.msg_ids[0]).get(DEADLINE) == "short-lived"
    time.sleep(2.5)  # retention 1 s, checked every second
    with Client(cluster.connection_file) as third:
        assert third.result_status(ar.msg_ids)["expired"] == ar.msg_ids
        with pytest.raises(ResultExpired, match="retention") as info:
            third.get_result(ar.msg_ids[0])
        assert info.value.msg_ids == ar.msg_ids
        assert not isinstance(info.value, KeyError)
    assert ar.get() == "short-lived", "the client that sent it still has it"


# -- a controller restarted from its SQLite store -------------------------------------------------


@pytest.mark.timeout(120)
def test_a_controller_killed_twice_restores_every_result(
    cluster_factory: Callable[..., Any], processes: Any, tmp_path: Path
) -> None:
    cluster, client = cluster_factory(2, store="sqlite")
    view = client.load_balanced_view()
    mapped = view.map_async(square_after, [0] * 50, range(50))
    printed = client[0].execute("print('kept')")
    failed = client[1].apply_async(lambda: 1 / 0)
    assert mapped.get(DEADLINE) == [i * i for i in range(50)]
    printed.wait(DEADLINE)
    failed.wait(DEADLINE)
    running = client[1].apply_async(nap, 30, "never answered")  # pending when the controller dies
    time.sleep(0.3)
    ids = mapped.msg_ids + printed.msg_ids + failed.msg_ids
    client.close()

    def check(connection_file: Path) -> None:
        with Client(connection_file, timeout=DEADLINE) as fresh:
            ar = fresh.get_result(ids)
            assert isinstance(ar, AsyncHubResult)
            ar.wait(DEADLINE)
            # each task of a map returns its chunk: a one-element list here
            assert [fresh.results[m] for m in mapped.msg_ids] == [[i * i] for i in range(50)]
            assert fresh.metadata[printed.msg_ids[0]]["stdout"] == "kept\n"
            assert isinstance(fresh.results[failed.msg_ids[0]], RemoteError)
            assert "ZeroDivisionError" in str(fresh.results[failed.msg_ids[0]])
            with pytest.raises(EngineError, match="controller stopped"):
                fresh.get_result(running.msg_ids[0]).get(DEADLINE)

    # first crash: the Cluster restarts its controller on the same file and ports
    os.kill(cluster.controller.pid, signal.SIGKILL)
    cluster.restart_controller_sync()
    check(cluster.connection_file)

    # second crash: `corral controller --restore`, as a user would run it
    old = cluster.controller
    os.kill(old.pid, signal.SIGKILL)
    assert old is not None
    assert old.popen is not None
    old.popen.wait(DEADLINE)
    restored = processes.spawn(
        "restored-controller", "-m", "corral.cli", "controller", "--restore",
        "--cluster-id", cluster.cluster_id, "--connection-file", str(cluster.connection_file),
    )  # fmt: skip
    deadline = time.monotonic() + DEADLINE
    while "corral controller ready" not in restored.output():
        assert restored.proc.poll() is None, restored.output()
        assert time.monotonic() < deadline, restored.output()
        time.sleep(0.05)
    check(cluster.connection_file)


@pytest.mark.timeout(120)
def test_acknowledged_tasks_of_a_killed_client_survive_a_controller_restart(
    cluster_factory: Callable[..., Any], processes: Any, tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    cluster, client = cluster_factory(2, store="sqlite")
    ids_file = tmp_path / "ids.json"
    first = processes.spawn(
        "submitter", str(PEERS / "results_client.py"), "submit", str(cluster.connection_file), "200", str(ids_file)
    )
    acked = first.wait_for_event("acknowledged")
    assert acked["outstanding"] > 0, "the client dies with acknowledged tasks still to run"
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(DEADLINE)
    ids = json.loads(ids_file.read_text())
    # they all run without their client; then the controller is killed and restarted
    wait_until(lambda: not client.result_status(ids)["pending"], "every acknowledged task ran")
    client.close()
    os.kill(cluster.controller.pid, signal.SIGKILL)
    cluster.restart_controller_sync()
    with Client(cluster.connection_file, timeout=DEADLINE) as fresh:
        assert fresh.get_result(ids).get(DEADLINE) == [i * i for i in range(200)]


def test_an_acknowledgement_comes_before_the_reply_and_a_reply_acknowledges(rc: Client) -> None:
    ar = rc[0].apply_async(nap, 3, "done")
    assert ar.wait_for_ack(DEADLINE), "the controller acknowledged the stored request"
    assert not ar.ready(), "long before its reply"
    assert rc.result_status(ar.msg_ids)["pending"] == ar.msg_ids
    assert ar.get(DEADLINE) == "done"
    quick = rc.load_balanced_view().map_async(abs, range(-20, 0))
    assert quick.wait_for_ack(DEADLINE)
    assert quick.get(DEADLINE) == list(range(20, 0, -1))
    assert quick.acknowledged
    broadcast = rc.broadcast_view().apply_async(abs, -1)
    assert broadcast.get(DEADLINE) == [1] * len(rc.ids)
    assert broadcast.acknowledged, "a reply acknowledges its request"


def test_the_controller_refuses_a_bad_store_with_a_clear_error(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all" * 50)
    out = cli("controller", "--cluster-id", "badstore", "--restore", "--db-file", str(bad))
    assert out.returncode == 1
    assert "not a usable corral result store" in out.stderr
    assert str(bad) in out.stderr
    out = cli("controller", "--cluster-id", "badstore", "--retention", "0")
    assert out.returncode == 2
    assert "--retention must be a positive number of seconds" in out.stderr
    out = cli("controller", "--cluster-id", "badstore", "--store", "redis")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
