"""Control requests (abort, clear, shutdown, signal) on an engine embedded in the test process."""

from __future__ import annotations

import time
from typing import Any

import pytest

from corral.engine import Engine
from corral.wire import unwrap_exception
from corral.wire.errors import EngineError, TaskAborted

pytestmark = pytest.mark.timeout(60)


def control(controller: Any, msg_type: str, content: dict[str, Any] | None = None) -> Any:
    return controller.reply(controller.send("control", msg_type, content or {}), "control")


def wait_running(controller: Any, msg_id: str) -> None:
    controller.get("iopub", lambda m: m.msg_type == "status" and m.parent_header.get("msg_id") == msg_id)


def test_abort_named_queued_requests(controller: Any, engine: Engine) -> None:
    blocker = controller.execute("import time\ntime.sleep(0.5)")
    wait_running(controller, blocker)
    queued = [controller.execute(f"{i}") for i in range(3)]
    reply = control(controller, "abort_request", {"msg_ids": [queued[0], queued[2]]})
    assert reply.msg_type == "abort_reply"
    assert reply.content == {"status": "ok"}
    assert reply.header["status"] == "ok"
    assert reply.metadata["engine_id"] == 0
    assert controller.reply(blocker).content["status"] == "ok"
    first, second, third = (controller.reply(m) for m in queued)
    assert first.content["status"] == "aborted"
    assert first.header["status"] == "aborted"
    assert first.content["ename"] == "TaskAborted"
    assert first.metadata["status"] == "aborted"
    assert first.metadata["error"]["ename"] == "TaskAborted"
    assert isinstance(unwrap_exception(first.content), TaskAborted)
    assert second.content["status"] == "ok"
    assert third.content["status"] == "aborted"


def test_abort_everything_queued(controller: Any, engine: Engine) -> None:
    blocker = controller.execute("import time\ntime.sleep(0.5)")
    wait_running(controller, blocker)
    queued = [controller.execute(f"{i}") for i in range(3)]
    # mux and control are separate connections: make sure the three reached the engine (taking
    # them in as the abort itself does) before the abort is sent
    deadline = time.monotonic() + 15
    while len(engine._inbox) < 3:
        assert time.monotonic() < deadline, "requests did not reach the engine"
        with engine._shell.borrow() as got:
            assert got
            engine._shell.drain(engine._inbox)
        time.sleep(0.005)
    assert control(controller, "abort_request", {"msg_ids": None}).content["status"] == "ok"
    after = controller.execute("'after'")
    assert controller.reply(blocker).content["status"] == "ok"
    assert [controller.reply(m).content["status"] for m in queued] == ["aborted"] * 3
    # a request sent after the abort is not aborted
    assert controller.reply(after).content["status"] == "ok"


def test_abort_everything_takes_in_requests_still_in_the_sockets(controller: Any, engine: Engine) -> None:
    blocker = controller.execute("import time\ntime.sleep(0.6)")
    wait_running(controller, blocker)  # the execution thread is in user code: nobody reads the sockets
    queued = [controller.execute(f"{i}") for i in range(3)]
    sock = engine._shell.sockets["mux"]
    deadline = time.monotonic() + 15
    while True:  # the first has arrived (the others follow it on the same connection)
        assert time.monotonic() < deadline, "requests did not reach the engine"
        with engine._shell.borrow() as got:
            assert got
            if sock.poll(0):
                break
        time.sleep(0.005)
    time.sleep(0.05)
    assert len(engine._inbox) == 0
    assert control(controller, "abort_request", {"msg_ids": None}).content["status"] == "ok"
    assert controller.reply(blocker).content["status"] == "ok"
    assert [controller.reply(m).content["status"] for m in queued] == ["aborted"] * 3


def test_abort_before_arrival(controller: Any, engine: Engine) -> None:
    msg = controller.session.msg("execute_request", {"code": "1", "silent": False})
    assert control(controller, "abort_request", {"msg_ids": [msg.msg_id]}).content["status"] == "ok"
    controller.reactor.call_soon_threadsafe(
        lambda: controller.session.send(controller.sockets["mux_engine"], msg, ident=[controller.uuid(), b"c"])
    )
    assert controller.reply(msg.msg_id).content["status"] == "aborted"


def test_bad_abort_is_an_error_reply(controller: Any, engine: Engine) -> None:
    reply = control(controller, "abort_request", {"msg_ids": 5})
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "TypeError"


def test_clear_empties_the_namespace_but_keeps_builtins(controller: Any, engine: Engine) -> None:
    controller.reply(controller.execute("a = 1\nb = 2"))
    reply = control(controller, "clear_request")
    assert reply.msg_type == "clear_reply"
    assert reply.content == {"status": "ok"}
    assert "a" not in engine.namespace
    assert engine.namespace["__name__"] == "__main__"
    assert controller.reply(controller.execute("a")).content["ename"] == "NameError"
    assert controller.reply(controller.execute("len([1])")).content["execute_result"]["data"]["text/plain"] == "1"


def test_clear_applies_while_a_request_runs(controller: Any, engine: Engine) -> None:
    controller.reply(controller.execute("x = 1"))
    blocker = controller.execute("import time\ntime.sleep(0.5)\nx")
    wait_running(controller, blocker)
    control(controller, "clear_request")
    assert controller.reply(blocker).content["ename"] == "NameError"


def test_shutdown_replies_then_stops(controller: Any, engine: Engine) -> None:
    blocker = controller.execute("import time\ntime.sleep(0.3)")
    wait_running(controller, blocker)
    queued = controller.execute("1")
    reply = control(controller, "shutdown_request", {"restart": False})
    assert reply.msg_type == "shutdown_reply"
    assert reply.content == {"status": "ok"}
    assert engine.join(15)
    assert engine.stop_reason == "shutdown requested by a client"
    # the running request finished; the queued one was refused, not dropped
    assert controller.reply(blocker).content["status"] == "ok"
    refused = controller.reply(queued)
    assert refused.content["status"] == "error"
    assert isinstance(unwrap_exception(refused.content), EngineError)


def test_embedded_engine_refuses_signals(controller: Any, engine: Engine) -> None:
    reply = control(controller, "signal_request", {"signal": "SIGINT"})
    assert reply.msg_type == "signal_reply"
    assert reply.content["status"] == "error"
    assert "main thread" in reply.content["evalue"]
    reply = control(controller, "signal_request", {"signal": "NOSUCHSIGNAL"})
    assert reply.content["ename"] == "ValueError"


def test_unknown_control_request(controller: Any, engine: Engine) -> None:
    reply = control(controller, "reboot_request")
    assert reply.msg_type == "reboot_reply"
    assert reply.content["status"] == "error"


def test_drops_request_reports_what_the_engine_dropped(controller: Any, engine: Engine) -> None:
    reply = control(controller, "drops_request")
    assert reply.msg_type == "drops_reply"
    assert reply.content == {"status": "ok", "drops": {}}
    # an apply_request whose buffer was changed after signing: the controller's relays pass it
    # (they check the MAC, not buffers); the engine drops it and counts it
    controller.send("mux", "clear_request")  # the mux hello has arrived once this is sent
    msg = controller.session.msg("apply_request", {"serializer": "pickle"})
    frames = controller.session.serialize(msg, [b"a pickled call"], [controller.uuid(), b"client"])
    frames[-1] = b"a pickled cal!"
    sock = controller.sockets["mux_engine"]
    controller.reactor.call_soon_threadsafe(lambda: sock.send_multipart(frames))
    deadline = time.monotonic() + 10
    while True:
        drops = control(controller, "drops_request").content["drops"]
        if drops or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert drops == {"mux": {"tampered_buffer": 1}}
    # the request was not run, but answered: its header is authentic, so nobody waits forever
    refused = controller.reply(msg.msg_id)
    assert refused.msg_type == "apply_reply"
    assert refused.content["status"] == "error"
    assert refused.content["ename"] == "MessageRejected"
    assert "tampered_buffer" in refused.content["evalue"]
