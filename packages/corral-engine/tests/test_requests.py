"""apply, execute, push and pull against an engine embedded in the test process."""

from __future__ import annotations

import operator
import pickle
from typing import Any

import pytest

from corral.engine import Engine
from corral.wire import get_serializer, interactive, pack_apply_message, unwrap_exception
from corral.wire.errors import RemoteError

pytestmark = pytest.mark.timeout(60)


def push(controller: Any, **values: Any) -> Any:
    return controller.request("push_request", {"serializer": "pickle"}, get_serializer("pickle").dumps(values))


def pull(controller: Any, names: list[str], single: bool) -> Any:
    return controller.request("pull_request", {"names": names, "single": single})


# -- apply ---------------------------------------------------------------------------------


def test_apply_returns_the_result_with_full_metadata(controller: Any, engine: Engine) -> None:
    msg_id = controller.apply(operator.add, 2, 3)
    reply = controller.reply(msg_id)
    assert reply.msg_type == "apply_reply"
    assert reply.idents == [engine.uuid.encode("ascii"), b"client-1"]
    assert reply.content == {"status": "ok", "serializer": "pickle"}
    assert reply.header["status"] == "ok"  # schedulers read the outcome from the header
    assert controller.value_of(reply) == 5
    meta = reply.metadata
    assert set(meta) == {
        "started",
        "completed",
        "engine_id",
        "engine_uuid",
        "status",
        "stdout",
        "stderr",
        "msg_id",
        "error",
        "outputs",
    }
    assert meta["engine_id"] == 0
    assert meta["engine_uuid"] == engine.uuid
    assert meta["status"] == "ok"
    assert meta["msg_id"] == msg_id
    assert meta["error"] is None
    assert meta["started"].endswith("+00:00")
    assert meta["started"] <= meta["completed"]


def test_interactive_function_reads_engine_globals(controller: Any, engine: Engine) -> None:
    assert push(controller, factor=7).content["status"] == "ok"

    @interactive
    def scale(x: int) -> int:
        return x * factor  # type: ignore[name-defined]  # noqa: F821 - an engine global

    assert controller.value_of(controller.reply(controller.apply(scale, 6))) == 42


def test_closures_keep_their_captured_values(controller: Any, engine: Engine) -> None:
    def make(offset: int) -> Any:
        def add(x: int) -> int:
            return x + offset

        return add

    assert controller.value_of(controller.reply(controller.apply(make(100), 1))) == 101


def test_kwargs_and_dill_serializer(controller: Any, engine: Engine) -> None:
    pytest.importorskip("dill")
    ser = get_serializer("dill")
    frames = pack_apply_message(lambda a, b=0: a - b, (10,), {"b": 4}, ser)
    reply = controller.request("apply_request", {"serializer": "dill"}, frames)
    assert reply.content["serializer"] == "dill"
    assert controller.value_of(reply) == 6


def test_numpy_arguments_and_results(controller: Any, engine: Engine) -> None:
    np = pytest.importorskip("numpy")
    big = np.arange(200_000, dtype=np.float64)  # out of band, zero-copy on arrival
    reply = controller.reply(controller.apply(np.multiply, big, 2.0))
    assert reply.content["status"] == "ok"
    assert len(reply.buffers) > 1
    np.testing.assert_array_equal(controller.value_of(reply), big * 2)


def test_unpicklable_result_is_an_error_and_the_engine_goes_on(controller: Any, engine: Engine) -> None:
    reply = controller.reply(controller.apply(lambda: (x for x in range(3))))
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "SerializationError"
    assert controller.value_of(controller.reply(controller.apply(operator.mul, 3, 4))) == 12


# -- errors --------------------------------------------------------------------------------


def test_user_exception_becomes_a_remote_error_with_traceback(controller: Any, engine: Engine) -> None:
    def fails(x: int) -> float:
        return x / 0

    msg_id = controller.apply(fails, 1)
    reply = controller.reply(msg_id)
    assert reply.content["status"] == "error"
    assert reply.header["status"] == "error"
    assert reply.content["ename"] == "ZeroDivisionError"
    assert reply.content["engine_info"] == {"engine_id": 0, "engine_uuid": engine.uuid, "method": "apply"}
    tb = "".join(reply.content["traceback"])
    assert "return x / 0" in tb
    assert "corral/engine" not in tb  # the engine's own frames are not shown
    assert reply.metadata["status"] == "error"
    assert reply.metadata["error"]["ename"] == "ZeroDivisionError"
    err = unwrap_exception(reply.content)
    assert isinstance(err, RemoteError)
    assert "ZeroDivisionError" in str(err)
    assert "[0:apply]" in str(err)
    # published on iopub as well, and the engine still serves
    kinds = [m.msg_type for m in controller.iopub_until_idle(msg_id)]
    assert kinds == ["status", "error", "status"]
    assert controller.value_of(controller.reply(controller.apply(operator.add, 1, 1))) == 2


def test_execute_error_shows_the_cell_source(controller: Any, engine: Engine) -> None:
    reply = controller.reply(controller.execute("a = 1\nb = a / 0\n"))
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "ZeroDivisionError"
    assert reply.content["execution_count"] == 1
    tb = "".join(reply.content["traceback"])
    assert "<corral-cell-1>" in tb
    assert "b = a / 0" in tb


def test_system_exit_does_not_stop_the_engine(controller: Any, engine: Engine) -> None:
    reply = controller.reply(controller.execute("import sys; sys.exit(3)"))
    assert reply.content["ename"] == "SystemExit"
    assert controller.reply(controller.execute("40 + 2")).content["execute_result"]["data"]["text/plain"] == "42"


def test_syntax_error(controller: Any, engine: Engine) -> None:
    reply = controller.reply(controller.execute("def (:"))
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "SyntaxError"


def test_unknown_request_type_gets_an_error_reply(controller: Any, engine: Engine) -> None:
    reply = controller.request("frobnicate_request", {})
    assert reply.msg_type == "frobnicate_reply"
    assert reply.content["status"] == "error"
    assert "unknown request type" in reply.content["evalue"]


def test_unknown_serializer_is_an_error(controller: Any, engine: Engine) -> None:
    reply = controller.request("pull_request", {"names": ["x"], "single": True, "serializer": "marshal"})
    assert reply.content["ename"] == "SerializationError"


# -- execute -------------------------------------------------------------------------------


def test_execute_last_expression_is_the_result(controller: Any, engine: Engine) -> None:
    msg_id = controller.execute("x = 6\ny = 7\nx * y")
    reply = controller.reply(msg_id)
    assert reply.msg_type == "execute_reply"
    assert reply.content["status"] == "ok"
    assert reply.content["execution_count"] == 1
    assert reply.content["execute_result"] == {"data": {"text/plain": "42"}}
    assert controller.value_of(reply) == 42
    assert engine.namespace["x"] == 6
    iopub = controller.iopub_until_idle(msg_id)
    assert [m.msg_type for m in iopub] == ["status", "execute_result", "status"]
    assert iopub[1].content == {"data": {"text/plain": "42"}, "execution_count": 1}
    for m in iopub:
        assert m.metadata == {"engine_id": 0, "engine_uuid": engine.uuid}


def test_execute_without_a_final_expression_has_no_result(controller: Any, engine: Engine) -> None:
    reply = controller.reply(controller.execute("z = 1"))
    assert reply.content["execute_result"] is None
    assert reply.buffers == []
    reply = controller.reply(controller.execute("None"))
    assert reply.content["execute_result"] is None
    assert reply.content["execution_count"] == 2


def test_execute_value_that_does_not_pickle_has_only_its_repr(controller: Any, engine: Engine) -> None:
    reply = controller.reply(controller.execute("g = (i for i in range(3))\ng"))
    assert reply.content["status"] == "ok"
    assert reply.content["execute_result"]["data"]["text/plain"].startswith("<generator object")
    assert reply.buffers == []


def test_silent_execute_publishes_no_result_and_does_not_count(controller: Any, engine: Engine) -> None:
    msg_id = controller.execute("1 + 1", silent=True)
    reply = controller.reply(msg_id)
    assert reply.content["execution_count"] == 0
    assert controller.value_of(reply) == 2
    # the engine publishes in order from one thread: once a later request's output is in,
    # everything the silent one published would be too; a quick quiet request publishes nothing
    marker = controller.execute("print('marker')")
    controller.get("iopub", lambda m: m.parent_header.get("msg_id") == marker and m.msg_type == "stream")
    controller.reply(marker)
    assert [m for m in controller.drain_stash("iopub") if m.parent_header.get("msg_id") == msg_id] == []


def test_a_request_that_runs_longer_than_a_batch_announces_itself(controller: Any, engine: Engine) -> None:
    msg_id = controller.execute("import time\ntime.sleep(0.3)")
    busy = controller.get("iopub", lambda m: m.parent_header.get("msg_id") == msg_id)
    assert (busy.msg_type, busy.content) == ("status", {"execution_state": "busy"})
    controller.reply(msg_id)
    assert [m.msg_type for m in controller.iopub_until_idle(msg_id)] == ["status"]


def test_classes_defined_by_execute_are_usable(controller: Any, engine: Engine) -> None:
    controller.reply(controller.execute("class Point:\n    def __init__(self, x):\n        self.x = x\np = Point(3)"))
    assert controller.reply(controller.execute("p.x")).content["execute_result"]["data"]["text/plain"] == "3"


def test_future_imports_of_the_engine_do_not_leak_into_cells(controller: Any, engine: Engine) -> None:
    code = "def f(x: int): pass\nf.__annotations__['x']"
    reply = controller.reply(controller.execute(code))
    assert reply.content["execute_result"]["data"]["text/plain"] == "<class 'int'>"


# -- output --------------------------------------------------------------------------------


def test_output_streams_while_the_request_runs(controller: Any, engine: Engine) -> None:
    msg_id = controller.execute(
        "import time, sys\nprint('first')\nsys.stdout.flush()\ntime.sleep(1.0)\nprint('second')\n7"
    )
    # 'first' arrives while the request still sleeps: before any reply exists
    stream = controller.get("iopub", lambda m: m.msg_type == "stream" and m.parent_header.get("msg_id") == msg_id)
    assert stream.content == {"name": "stdout", "text": "first\n"}
    assert stream.metadata == {"engine_id": 0, "engine_uuid": engine.uuid}
    assert controller.queues["mux"].empty()
    reply = controller.reply(msg_id)
    assert reply.metadata["stdout"] == "first\nsecond\n"
    rest = controller.iopub_until_idle(msg_id)
    texts = [m.content["text"] for m in rest if m.msg_type == "stream"]
    assert texts == ["second\n"]
    kinds = [m.msg_type for m in rest]
    assert kinds[-1] == "status"
    assert kinds.index("stream") < kinds.index("execute_result")


def test_output_written_in_a_burst_is_coalesced(controller: Any, engine: Engine) -> None:
    msg_id = controller.execute("for i in range(200):\n    print(i)")
    reply = controller.reply(msg_id)
    expected = "".join(f"{i}\n" for i in range(200))
    assert reply.metadata["stdout"] == expected
    streams = [m for m in controller.iopub_until_idle(msg_id) if m.msg_type == "stream"]
    assert "".join(m.content["text"] for m in streams) == expected
    assert len(streams) < 200


def test_stdout_and_stderr_are_captured_apart(controller: Any, engine: Engine) -> None:
    msg_id = controller.execute("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    reply = controller.reply(msg_id)
    assert reply.metadata["stdout"] == "out\n"
    assert reply.metadata["stderr"] == "err\n"
    names = [m.content["name"] for m in controller.iopub_until_idle(msg_id) if m.msg_type == "stream"]
    assert names == ["stdout", "stderr"]


def test_output_kept_in_metadata_is_capped_with_a_note(controller: Any, engine: Engine) -> None:
    reply = controller.reply(controller.execute("import sys\nsys.stdout.write('x' * (1024 * 1024 + 10))"))
    out = reply.metadata["stdout"]
    assert out.startswith("x" * 1000)
    assert out.count("x") == 1024 * 1024
    assert "cut at 1048576 characters; 10 more" in out


def test_output_of_one_request_is_not_in_the_next(controller: Any, engine: Engine) -> None:
    controller.reply(controller.execute("print('one')"))
    assert controller.reply(controller.execute("2")).metadata["stdout"] == ""


# -- push / pull ---------------------------------------------------------------------------


def test_push_then_pull(controller: Any, engine: Engine) -> None:
    reply = push(controller, a=1, b=[1, 2], c="three")
    assert reply.msg_type == "push_reply"
    assert reply.content == {"status": "ok"}
    single = pull(controller, ["b"], True)
    assert single.msg_type == "pull_reply"
    assert single.content == {"status": "ok", "serializer": "pickle"}
    assert controller.value_of(single) == [1, 2]
    assert controller.value_of(pull(controller, ["a", "c"], False)) == [1, "three"]
    assert controller.value_of(pull(controller, ["a"], False)) == [1]


def test_pull_of_a_missing_name_is_a_name_error(controller: Any, engine: Engine) -> None:
    reply = pull(controller, ["nothing_here"], True)
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "NameError"
    assert "nothing_here" in reply.content["evalue"]
    assert reply.content["engine_info"]["method"] == "pull"


def test_push_of_a_large_array_is_not_copied(controller: Any, engine: Engine) -> None:
    np = pytest.importorskip("numpy")
    arr = np.arange(1_000_000, dtype=np.int64)
    assert push(controller, arr=arr).content["status"] == "ok"
    got = engine.namespace["arr"]
    np.testing.assert_array_equal(got, arr)
    assert not got.flags.writeable  # a view of the received frame, not a copy
    np.testing.assert_array_equal(controller.value_of(pull(controller, ["arr"], True)), arr)


def test_push_needs_a_dict(controller: Any, engine: Engine) -> None:
    reply = controller.request("push_request", {"serializer": "pickle"}, [pickle.dumps([1, 2])])
    assert reply.content["status"] == "error"


# -- order ---------------------------------------------------------------------------------


def test_requests_run_one_at_a_time_in_arrival_order(controller: Any, engine: Engine) -> None:
    controller.reply(controller.execute("log = []"))
    code = "import time\nlog.append(('start', {i}))\ntime.sleep(0.005)\nlog.append(('end', {i}))"
    ids = [controller.execute(code.format(i=i)) for i in range(20)]
    for msg_id in ids:
        assert controller.reply(msg_id).content["status"] == "ok"
    log = controller.value_of(controller.reply(controller.execute("log")))
    assert log == [entry for i in range(20) for entry in (("start", i), ("end", i))]


def test_requests_from_mux_and_task_never_overlap(controller: Any, engine: Engine) -> None:
    controller.reply(controller.execute("log = []"))
    code = "import time\nlog.append(('start', {i}))\ntime.sleep(0.005)\nlog.append(('end', {i}))"
    ids = []
    for i in range(20):
        channel = "task" if i % 2 else "mux"
        ids.append((channel, controller.execute(code.format(i=i), channel=channel)))
    for channel, msg_id in ids:
        assert controller.reply(msg_id, channel).content["status"] == "ok"
    log = controller.value_of(controller.reply(controller.execute("log")))
    # each request ends before the next starts; each channel keeps its own order
    assert [kind for kind, _ in log] == ["start", "end"] * 20
    assert [i for kind, i in log[::2]] == [i for kind, i in log[1::2]]
    for parity in (0, 1):
        order = [i for kind, i in log[::2] if i % 2 == parity]
        assert order == sorted(order)


def test_task_channel_replies_on_the_task_channel(controller: Any, engine: Engine) -> None:
    msg_id = controller.apply(operator.neg, 5, channel="task")
    assert controller.value_of(controller.reply(msg_id, "task")) == -5
    assert controller.queues["mux"].empty()
