"""The client's direct side against a real cluster: every call of issue 3, as a user sees it.

All tests share the session's 4-engine cluster (``rc``); each uses its own names in the
engines' namespaces. Functions sent to engines are ``@interactive`` (or lambdas): this module
cannot be imported on the engines, so they run with the engine's namespace as globals and
import what they need themselves (never this module's globals).
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import itertools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from traitlets import TraitError

from corral.client import (
    AsyncMapResult,
    AsyncResult,
    Client,
    CompositeError,
    CorralError,
    DirectView,
    NoEnginesRegistered,
    RemoteError,
    SerializationError,
    TaskAborted,
    TimeoutError,  # noqa: A004 - corral's, a subclass of the builtin
    interactive,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(60)

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0


@interactive
def nap(seconds: float, value: Any = None) -> Any:
    """Sleep on the engine, then return ``value``."""
    import time

    time.sleep(seconds)
    return value


@interactive
def divide(x: float) -> float:
    """Return 1 / x (ZeroDivisionError for 0)."""
    return 1 / x


@interactive
def chatty(pause: float) -> str:
    """Print a line, sleep, print another (no explicit flush), return."""
    import sys
    import time

    print("first line")
    time.sleep(pause)
    print("second line")
    print("to stderr", file=sys.stderr)
    return "done"


# -- Client ----------------------------------------------------------------------------------------


def test_client_from_connection_file_and_from_cluster_id(cluster: Cluster, rc: Client) -> None:
    with Client(cluster.connection_file) as by_file, Client(cluster_id=cluster.cluster_id) as by_id:
        assert by_file.ids == by_id.ids == rc.ids == [0, 1, 2, 3]
        assert by_file[:].apply_sync(os.getpid) == by_id[:].apply_sync(os.getpid) == rc[:].apply_sync(os.getpid)
    # leaving the with block closed both
    with pytest.raises(CorralError, match="closed"):
        by_id[0].apply_sync(os.getpid)
    assert "closed" in repr(by_file)


def test_close_fails_pending_results_and_is_idempotent(cluster: Cluster) -> None:
    client = Client(cluster.connection_file)
    ar = client[0].apply_async(nap, 1.0, "late")
    client.close()
    client.close()
    with pytest.raises(CorralError, match="closed"):
        ar.get(DEADLINE)  # fails at once instead of hanging
    with pytest.raises(CorralError, match="closed"):
        client[0].apply_async(os.getpid)


def test_indexing_selects_engines(rc: Client) -> None:
    pids = dict(zip(rc.ids, rc[:].apply_sync(os.getpid), strict=True))
    assert len(set(pids.values())) == 4, "each engine is its own process"
    assert rc[0].apply_sync(os.getpid) == pids[0]
    assert rc[-1].apply_sync(os.getpid) == pids[3]
    assert rc[0, 1].apply_sync(os.getpid) == [pids[0], pids[1]]
    assert rc[[2, 1]].apply_sync(os.getpid) == [pids[2], pids[1]]
    assert rc[::2].apply_sync(os.getpid) == [pids[0], pids[2]]
    assert rc[:].apply_sync(os.getpid) == [pids[i] for i in range(4)]
    assert isinstance(rc.direct_view(), DirectView)
    assert rc.direct_view([1, 3]).apply_sync(os.getpid) == [pids[1], pids[3]]
    assert [v.apply_sync(os.getpid) for v in rc] == [pids[i] for i in range(4)]
    with pytest.raises(IndexError, match=r"\[0, 1, 2, 3\]"):
        rc[17]
    with pytest.raises(IndexError):
        rc[10:]
    with pytest.raises(TypeError):
        rc["0"]  # type: ignore[index]


def test_views_fix_their_engines_at_construction_and_shutdown_removes_an_engine(
    cluster: Cluster, rc: Client, wait_until: Callable[..., Any], alive: Callable[[int], bool]
) -> None:
    everything, fixed, live = rc[:], rc.direct_view([0, 1, 2, 3]), rc.direct_view()
    with pytest.raises(TimeoutError):
        rc.wait_for_engines(5, timeout=0.2)

    cluster.start_engines_sync(1)
    rc.wait_for_engines(5, timeout=DEADLINE)
    new = max(rc.ids)
    assert new == 4, "ids are handed out in order and never reused"
    new_pid = rc[new].apply_sync(os.getpid)
    assert len(everything.apply_sync(os.getpid)) == 4, "rc[:] was evaluated when it was made"
    assert len(fixed.apply_sync(os.getpid)) == 4
    assert len(live.apply_sync(os.getpid)) == 5, "direct_view() follows the engines"
    assert len(rc[:].apply_sync(os.getpid)) == 5

    rc[new].shutdown(block=True)
    wait_until(lambda: new not in rc.ids, f"engine {new} leaves rc.ids after shutdown")
    assert rc.ids == [0, 1, 2, 3]
    wait_until(lambda: not alive(new_pid), f"engine process {new_pid} exits after shutdown")
    assert len(live.apply_sync(os.getpid)) == 4
    with pytest.raises(IndexError):
        rc[new]


def test_spin_wait_outstanding_history(rc: Client) -> None:
    view = rc[1]
    before = rc.history
    ar = view.apply_async(nap, 0.5, "slept")
    quick = view.apply_async(os.getpid)
    assert rc.history[: len(before)] == before
    assert rc.history[len(before) :] == ar.msg_ids + quick.msg_ids
    assert view.history[-2:] == ar.msg_ids + quick.msg_ids
    assert set(ar.msg_ids) <= rc.outstanding
    assert set(ar.msg_ids) <= view.outstanding
    assert rc.wait([ar], timeout=0.05) is False
    assert rc.wait(ar.msg_ids[0], timeout=DEADLINE) is True
    assert rc.wait(-1, timeout=DEADLINE) is True  # a history index: the last request sent
    assert rc.wait(timeout=DEADLINE) is True  # everything outstanding
    rc.spin()
    assert not (set(ar.msg_ids + quick.msg_ids) & rc.outstanding)
    assert view.outstanding == set()
    assert rc.results[ar.msg_ids[0]] == "slept"
    assert rc.metadata[quick.msg_ids[0]]["engine_id"] == 1
    with pytest.raises(ValueError, match="unknown msg_id"):
        rc.wait("no-such-msg-id", timeout=1)


def test_queue_status(rc: Client, wait_until: Callable[..., Any]) -> None:
    view = rc[2]
    completed_before = rc.queue_status(2)["completed"]
    running = view.apply_async(nap, 1.0)
    queued = view.apply_async(os.getpid)
    wait_until(lambda: rc.queue_status(2)["queue"] == 2, "the hub counts 2 requests queued on engine 2")
    everything = rc.queue_status()
    assert set(everything) >= {0, 1, 2, 3, "unassigned"}
    assert everything[2]["queue"] == 2
    assert view.queue_status() == rc.queue_status(2)
    queued.get(DEADLINE)
    running.get(DEADLINE)
    wait_until(lambda: rc.queue_status(2)["queue"] == 0, "the queue of engine 2 drains")
    assert rc.queue_status(2)["completed"] == completed_before + 2


# -- DirectView: running code ----------------------------------------------------------------------


def test_apply_variants(rc: Client) -> None:
    one, many = rc[0], rc[:]
    assert one.apply_sync(divmod, 17, 5) == (3, 2)
    assert many.apply_sync(divmod, 17, 5) == [(3, 2)] * 4
    assert one.apply_sync(lambda a, b=1: a * b, 6, b=7) == 42
    ar = one.apply_async(divmod, 9, 4)
    assert isinstance(ar, AsyncResult)
    assert ar.get(DEADLINE) == (2, 1)
    assert isinstance(one.apply(divmod, 1, 1), AsyncResult), "block is False by default"
    one.block = True
    try:
        assert one.apply(divmod, 9, 2) == (4, 1)
    finally:
        one.block = False


def test_map_runs_one_chunk_per_engine(rc: Client) -> None:
    view = rc[:]
    assert view.map_sync(lambda x: x * x, range(10)) == [x * x for x in range(10)]
    assert view.map_sync(lambda x, y: x + y, [1, 2, 3], [10, 20, 30]) == [11, 22, 33]
    amr = view.map_async(interactive(lambda x: (x, __import__("os").getpid())), range(10))
    assert isinstance(amr, AsyncMapResult)
    assert len(amr) == 4, "one request (chunk) per engine"
    assert [pair[0] for pair in amr] == list(range(10)), "iterating yields the items in order"
    blocks = [[x for x, pid in amr.get(DEADLINE) if pid == p] for p in view.apply_sync(os.getpid)]
    assert blocks == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert sorted(md["engine_id"] for md in amr.metadata) == [0, 1, 2, 3]
    assert view.map(str, range(3), block=True) == ["0", "1", "2"]
    assert isinstance(view.map(str, range(3)), AsyncMapResult)
    assert view.map_sync(str, range(2)) == ["0", "1"], "fewer items than engines"
    with pytest.raises(ValueError, match="differ in length"):
        view.map_sync(lambda x, y: x, [1, 2], [1])


def test_execute_returns_the_last_expression_and_captures_output(rc: Client) -> None:
    ar = rc[0].execute("ex_b = 6\nex_b * 7", block=True)
    assert isinstance(ar, AsyncResult)
    assert ar.get(0) == 42
    assert ar.metadata["execute_result"]["data"]["text/plain"] == "42"
    assert rc[:].execute("ex_c = 1\nex_c + 1", block=True).get(0) == [2, 2, 2, 2]
    assert rc[0].execute("ex_d = 3", block=True).get(0) is None, "a statement has no value"
    printed = rc[1].execute("print('hello from execute')", block=True)
    assert printed.stdout == "hello from execute\n"
    assert rc[1].pull("ex_c", block=True) == 1
    pending = rc[2].execute("import time; time.sleep(0.3); 5")
    assert pending.get(DEADLINE) == 5
    with pytest.raises(RemoteError) as info:
        rc[3].execute("undefined_name_here", block=True)
    assert info.value.ename == "NameError"


def test_run_executes_a_local_file(rc: Client, tmp_path: Path) -> None:
    script = tmp_path / "setup_engine.py"
    script.write_text("import math\nrun_value = math.factorial(5)\n", encoding="utf-8")
    rc[:].run(script, block=True)
    assert rc[:].pull("run_value", block=True) == [120] * 4
    with pytest.raises(FileNotFoundError, match=r"missing\.py"):
        rc[:].run(tmp_path / "missing.py", block=True)


def test_interactive_function_sees_engine_globals(rc: Client) -> None:
    @interactive
    def read_global() -> Any:
        return engine_side_name * 2  # type: ignore[name-defined]  # noqa: F821 - an engine global

    rc[:].push({"engine_side_name": 21}, block=True)
    assert rc[:].apply_sync(read_global) == [42] * 4


def test_requests_run_one_at_a_time_in_arrival_order(rc: Client) -> None:
    view = rc[0]
    view.execute("order_seen = []", block=True)
    append = interactive(lambda i: (order_seen.append(i), __import__("time").sleep(0.05)))  # type: ignore[name-defined]  # noqa: F821
    ars = [view.apply_async(append, i) for i in range(8)]
    for ar in ars:
        ar.get(DEADLINE)
    assert view.pull("order_seen", block=True) == list(range(8))
    spans = [(ar.metadata["started"], ar.metadata["completed"]) for ar in ars]
    assert all(done <= nxt for (_, done), (nxt, _) in itertools.pairwise(spans)), "no two requests overlap"


def test_sigint_interrupts_the_running_request_and_the_engine_keeps_serving(
    rc: Client, wait_until: Callable[..., Any]
) -> None:
    import signal

    ar = rc[2].apply_async(chatty, 30)
    queued = rc[2].apply_async(os.getpid)
    wait_until(lambda: "first line" in ar.stdout, "the request runs")
    rc.send_signal(signal.SIGINT, targets=2, block=True)
    with pytest.raises(RemoteError) as info:
        ar.get(DEADLINE)
    assert info.value.ename == "KeyboardInterrupt"
    assert queued.get(DEADLINE) == rc[2].apply_sync(os.getpid), "the queue goes on"


# -- DirectView: namespaces ------------------------------------------------------------------------


def test_push_pull_get_update_and_item_access(rc: Client) -> None:
    view = rc[:]
    view.push({"ns_a": 1, "ns_b": [1, 2]}, block=True)
    assert view.pull("ns_a", block=True) == [1, 1, 1, 1]
    assert view.pull(["ns_a", "ns_b"], block=True) == [[1, [1, 2]]] * 4
    assert rc[2].pull(["ns_a", "ns_b"], block=True) == [1, [1, 2]]
    assert rc[2].get("ns_b") == [1, 2]
    view.update({"ns_a": "updated"})  # with the view's flags: not blocking
    view.wait(timeout=DEADLINE)
    assert view.get("ns_a") == ["updated"] * 4
    rc[3]["ns_item"] = {"k": "v"}
    rc[3].wait(timeout=DEADLINE)
    assert rc[3]["ns_item"] == {"k": "v"}
    assert view["ns_b"] == [[1, 2]] * 4
    ar = rc[1].push({"ns_async": 5})
    assert ar.get(DEADLINE) is None
    assert rc[1].pull("ns_async").get(DEADLINE) == 5
    with pytest.raises(RemoteError) as info:
        rc[0].pull("never_defined_anywhere", block=True)
    assert info.value.ename == "NameError"
    with pytest.raises(TypeError):
        view.push(["not", "a", "dict"])  # type: ignore[arg-type]


def test_scatter_and_gather_lists(rc: Client) -> None:
    view = rc[:]
    view.scatter("sc_list", list(range(10)), block=True)
    assert view.pull("sc_list", block=True) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert view.gather("sc_list", block=True) == list(range(10))
    amr = view.gather("sc_list")
    assert isinstance(amr, AsyncMapResult)
    assert amr.get(DEADLINE) == list(range(10))
    view.scatter("sc_flat", [10, 20, 30, 40], flatten=True, block=True)
    assert view.pull("sc_flat", block=True) == [10, 20, 30, 40], "one-item blocks pushed as the item"
    assert view.gather("sc_flat", block=True) == [10, 20, 30, 40]
    view.scatter("sc_unflat", ["a", "b", "c", "d"], block=True)
    assert view.pull("sc_unflat", block=True) == [["a"], ["b"], ["c"], ["d"]]
    assert view.gather("sc_unflat", block=True) == ["a", "b", "c", "d"]
    view.scatter("sc_str", "abcdefghij", block=True)
    assert view.pull("sc_str", block=True) == ["abc", "def", "gh", "ij"]
    assert view.gather("sc_str", block=True) == "abcdefghij"
    ar = view.scatter("sc_async", list(range(4)), dist="b")
    assert isinstance(ar, AsyncResult)
    ar.get(DEADLINE)
    with pytest.raises(ValueError, match="dist"):
        view.scatter("sc_r", list(range(4)), dist="r", block=True)


def test_scatter_and_gather_numpy(rc: Client) -> None:
    np = pytest.importorskip("numpy")
    view = rc[:]
    data = np.arange(30.0).reshape(10, 3)
    view.scatter("sc_arr", data, block=True)
    shapes = view.apply_sync(interactive(lambda: sc_arr.shape))  # type: ignore[name-defined]  # noqa: F821
    assert shapes == [(3, 3), (3, 3), (2, 3), (2, 3)]
    back = view.gather("sc_arr", block=True)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, data)
    view.scatter("sc_vec", np.arange(4), flatten=True, block=True)
    assert view.pull("sc_vec", block=True) == [0, 1, 2, 3]


def test_clear_empties_the_namespaces(rc: Client) -> None:
    view = rc[:]
    view.push({"to_clear": 1}, block=True)
    assert view.clear(block=True) is None
    with pytest.raises(CompositeError) as info:
        view.pull("to_clear", block=True)
    assert [e.ename for e in info.value.elist] == ["NameError"] * 4
    assert view.apply_sync(os.getpid), "the engines still serve"


def test_abort_queued_requests(rc: Client) -> None:
    view = rc[1]
    sleeping = view.apply_async(nap, 1.0, "woke")
    doomed = view.apply_async(os.getpid)
    kept = view.apply_async(os.getpid)
    doomed.abort()
    with pytest.raises(TaskAborted):
        doomed.get(DEADLINE)
    assert doomed.metadata["status"] == "aborted"
    assert not doomed.successful()
    assert sleeping.get(DEADLINE) == "woke", "the running request is not affected"
    assert isinstance(kept.get(DEADLINE), int), "requests not named run"

    sleeping = view.apply_async(nap, 1.0, "woke")
    queued = [view.apply_async(os.getpid) for _ in range(2)]
    view.abort(queued, block=True)
    for ar in queued:
        with pytest.raises(TaskAborted):
            ar.get(DEADLINE)
    assert sleeping.get(DEADLINE) == "woke"


def test_sync_imports(rc: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    view = rc[:]
    with view.sync_imports(quiet=True):
        import json
        from textwrap import dedent

    assert json.dumps([1]) == "[1]", "imported here too"
    got = view.apply_sync(interactive(lambda: (json.dumps({"a": 1}), dedent("  x"))))
    assert got == [('{"a": 1}', "x")] * 4

    # a module only this side has: imported here, and the engines' failures raised on leaving
    (tmp_path / "corral_only_on_the_client.py").write_text("VALUE = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(CompositeError) as info, view.sync_imports(quiet=True):
        import corral_only_on_the_client  # type: ignore[import-not-found]  # noqa: F401
    assert [e.ename for e in info.value.elist] == ["ModuleNotFoundError"] * 4
    assert "corral_only_on_the_client" in str(info.value)


def test_use_dill_is_per_view(rc: Client) -> None:
    pytest.importorskip("dill")

    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    plain = rc[0]
    with pytest.raises(SerializationError):
        plain.apply_sync(lambda p: p.x, Point(3))  # pickle cannot send a class defined in a function
    dilled = rc[0]
    dilled.use_dill()
    assert dilled.apply_sync(lambda p: p.x * 2, Point(3)) == 6
    with pytest.raises(SerializationError):
        plain.apply_sync(lambda p: p.x, Point(3))


def test_flags_block_track_targets_set_flags_temp_flags(rc: Client) -> None:
    np = pytest.importorskip("numpy")
    view = rc[:]
    assert (view.block, view.track, view.targets) == (False, False, [0, 1, 2, 3])
    view.set_flags(block=True)
    assert len(view.apply(os.getpid)) == 4
    with view.temp_flags(block=False, targets=[2]):
        ar = view.apply(os.getpid)
        assert isinstance(ar, AsyncResult)
        assert ar.get(DEADLINE) == [rc[2].apply_sync(os.getpid)]
    assert (view.block, view.targets) == (True, [0, 1, 2, 3]), "temp_flags restored the flags"
    with pytest.raises(ZeroDivisionError), view.temp_flags(block=False):
        1 / 0  # noqa: B018
    assert view.block is True, "restored also when the block raises"

    view.targets = 3
    assert view.apply(os.getpid) == rc[3].apply_sync(os.getpid), "an int target gives single results"
    with pytest.raises(TypeError, match="block, track, targets"):
        view.set_flags(blocking=True)
    with pytest.raises(TraitError):
        view.set_flags(block=False, targets="some engines")
    assert (view.block, view.targets) == (True, 3), "a refused set_flags changes nothing"

    view.set_flags(block=False, track=True, targets=[0, 1])
    array = np.arange(1000.0)
    ar = view.push({"tracked": array})
    ar.wait_for_send(DEADLINE)
    assert ar.sent
    ar.get(DEADLINE)
    assert view.apply_sync(interactive(lambda: float(tracked.sum()))) == [499500.0] * 2  # type: ignore[name-defined]  # noqa: F821


# -- AsyncResult -----------------------------------------------------------------------------------


def test_async_result_waiting_and_facts(rc: Client) -> None:
    ar = rc[2].apply_async(nap, 1.0, "value")
    with pytest.raises(TimeoutError):
        ar.get(0.05)
    with pytest.raises(builtins.TimeoutError):
        ar.get(0.05)
    with pytest.raises(TimeoutError):
        ar.result(timeout=0.05)
    assert not ar.ready()
    with pytest.raises(AssertionError, match="not ready"):
        ar.successful()
    assert ar.wait(0.05) is False  # as ipyparallel's: whether it is ready
    assert not ar.ready()
    assert ar.wait(DEADLINE) is True
    assert ar.ready()
    assert ar.successful()
    assert ar.get(0) == ar.r == ar.result() == "value"
    assert ar.get_dict() == {2: "value"}
    assert ar.sent
    ar.wait_for_send(1)

    md = ar.metadata
    assert md["engine_id"] == 2
    assert md["status"] == "ok"
    assert len(md["engine_uuid"]) == 32
    int(md["engine_uuid"], 16)  # hex digits
    rc[2].apply_sync(os.getpid)
    assert rc.metadata[rc.history[-1]]["engine_uuid"] == md["engine_uuid"], "one uuid per engine"
    assert md["started"] <= md["completed"]
    assert (md["completed"] - md["started"]).total_seconds() >= 0.9
    assert md["stdout"] == md["stderr"] == ""
    assert ar.engine_id == 2, "metadata keys read as attributes too"

    many = rc[:].apply_async(nap, 0, "x")
    assert many.get_dict(DEADLINE) == {0: "x", 1: "x", 2: "x", 3: "x"}
    assert [md["engine_id"] for md in many.metadata] == [0, 1, 2, 3]
    assert len({md["engine_uuid"] for md in many.metadata}) == 4


def test_async_result_is_a_concurrent_future(rc: Client) -> None:
    ars = [rc[e].apply_async(nap, 0.2, e) for e in rc.ids]
    assert all(isinstance(ar, concurrent.futures.Future) for ar in ars)
    seen: list[Any] = []
    called = threading.Event()

    def on_done(fut: concurrent.futures.Future[Any]) -> None:
        seen.append(fut.result())
        called.set()

    ars[0].add_done_callback(on_done)
    done, not_done = concurrent.futures.wait(ars, timeout=DEADLINE)
    assert not not_done
    assert len(done) == 4
    assert called.wait(DEADLINE)
    assert seen == [0]
    assert sorted(f.result() for f in concurrent.futures.as_completed(ars, timeout=DEADLINE)) == [0, 1, 2, 3]
    late: list[Any] = []
    ars[1].add_done_callback(lambda f: late.append(f.result()))
    assert late == [1], "a callback added after completion runs at once"
    failing = rc[0].apply_async(divide, 0)
    assert isinstance(failing.exception(DEADLINE), RemoteError)


def test_async_result_is_awaitable(rc: Client) -> None:
    async def main() -> tuple[Any, list[Any]]:
        one = await rc[0].apply_async(nap, 0.1, "awaited")
        many = await asyncio.gather(*(rc[e].apply_async(nap, 0.1, e) for e in rc.ids))
        with pytest.raises(RemoteError):
            await rc[1].apply_async(divide, 0)
        return one, many

    one, many = asyncio.run(asyncio.wait_for(main(), DEADLINE))
    assert one == "awaited"
    assert many == [0, 1, 2, 3]


def test_stdout_streams_before_the_call_finishes(rc: Client, wait_until: Callable[..., Any]) -> None:
    """Output reaches ``ar.stdout`` as the engine prints it (docs/messages.md: iopub stream)."""
    ar = rc[3].apply_async(chatty, 2.0)
    wait_until(lambda: "first line" in ar.stdout, "the first printed line reaches ar.stdout")
    assert not ar.ready(), "the first line arrived while the call was still running"
    assert "second line" not in ar.stdout
    assert ar.get(DEADLINE) == "done"
    assert ar.stdout == "first line\nsecond line\n"
    assert ar.stderr == "to stderr\n"
    assert ar.metadata["stdout"] == ar.stdout


# -- errors ----------------------------------------------------------------------------------------


def test_remote_error_shows_type_message_and_traceback(rc: Client) -> None:
    with pytest.raises(RemoteError) as info:
        rc[1].apply_sync(divide, 0)
    err = info.value
    assert err.ename == "ZeroDivisionError"
    assert "division by zero" in err.evalue
    assert "in divide" in err.traceback
    assert "ZeroDivisionError" in err.traceback
    assert err.engine_id == 1
    text = str(err)
    assert "ZeroDivisionError" in text
    assert "division by zero" in text
    assert "Remote traceback" in text


def test_composite_error_from_several_engines(rc: Client) -> None:
    with pytest.raises(CompositeError) as info:
        rc[:].apply_sync(divide, 0)
    err = info.value
    assert [e.ename for e in err.elist] == ["ZeroDivisionError"] * 4
    assert [e.engine_id for e in err.elist] == [0, 1, 2, 3]
    assert "ZeroDivisionError" in str(err)
    assert "divide" in str(err)
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        err.raise_exception(2)

    # one failing engine among several still raises a CompositeError
    rc[:].scatter("err_x", [1, 0, 2, 4], flatten=True, block=True)
    with pytest.raises(CompositeError) as info:
        rc[:].apply_sync(interactive(lambda: 1 / err_x))  # type: ignore[name-defined]  # noqa: F821
    assert [(e.engine_id, e.ename) for e in info.value.elist] == [(1, "ZeroDivisionError")]


def test_no_engines_and_bad_targets_are_clear_errors(rc: Client) -> None:
    with pytest.raises(IndexError, match="live engine ids"):
        rc.direct_view([0, 99])
    assert issubclass(NoEnginesRegistered, CorralError)
