"""An engine embedded in an application: in a thread, on asyncio, with the application's namespace."""

from __future__ import annotations

import asyncio
import operator
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from corral.engine import Engine, RegistrationError
from corral.wire import interactive

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "embed_engine.py"


@interactive
def bump() -> int:
    app_state["counter"] += 1  # type: ignore[name-defined]  # noqa: F821 - the application's global
    return app_state["counter"]  # type: ignore[name-defined]  # noqa: F821


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("corral-engine")]


def test_serves_the_applications_namespace_and_stops_cleanly(controller: Any) -> None:
    before = set(threading.enumerate())
    state = {"counter": 41}
    eng = Engine(controller.path, namespace={"app_state": state}, registration_timeout=15)
    eng.start()
    try:
        assert eng.id == 0
        assert engine_threads()
        assert controller.value_of(controller.reply(controller.apply(bump))) == 42
        assert state["counter"] == 42  # the application's own object changed
    finally:
        eng.stop()
    assert eng.join(0)
    assert not engine_threads()
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leftover == []
    eng.stop()  # idempotent


def test_the_applications_own_output_is_not_captured(controller: Any, engine: Engine, capsys: Any) -> None:
    msg_id = controller.execute("import time\nprint('from the request')\ntime.sleep(0.3)\nprint('again')")
    controller.get("iopub", lambda m: m.msg_type == "stream" and m.parent_header.get("msg_id") == msg_id)
    print("from the application")  # while the request runs
    reply = controller.reply(msg_id)
    assert reply.metadata["stdout"] == "from the request\nagain\n"
    assert capsys.readouterr().out == "from the application\n"


def test_stop_waits_for_the_running_request_or_says_it_could_not(controller: Any) -> None:
    eng = Engine(controller.path, registration_timeout=15)
    eng.start()
    msg_id = controller.execute("import time\ntime.sleep(1.5)\n'done'")
    controller.get("iopub", lambda m: m.msg_type == "status" and m.parent_header.get("msg_id") == msg_id)
    from corral.wire.errors import TimeoutError as CorralTimeoutError

    with pytest.raises(CorralTimeoutError, match="did not finish its running request"):
        eng.stop(timeout=0.2)
    # sockets closed and helper threads gone; the execution thread ends when the call returns
    assert eng.join(15)
    deadline = time.monotonic() + 15
    while engine_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not engine_threads()


def test_a_request_may_stop_its_own_engine(controller: Any) -> None:
    eng = Engine(controller.path, namespace={}, registration_timeout=15)
    eng.namespace["engine"] = eng
    eng.start()
    reply = controller.reply(controller.execute("engine.stop()\n'bye'"))
    assert reply.content["status"] == "ok"
    assert eng.join(15)
    assert eng.stop_reason == "stop() called"


def test_run_in_a_thread_and_stop_from_another(controller: Any) -> None:
    eng = Engine(controller.path, registration_timeout=15)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            eng.run()
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=serve)
    thread.start()
    assert eng.wait_registered(15)
    assert controller.value_of(controller.reply(controller.apply(operator.add, 1, 2))) == 3
    eng.stop()
    thread.join(15)
    assert not thread.is_alive()
    assert errors == []


MAIN_THREAD_APP = """
import sys
from corral.engine import Engine

engine = Engine(sys.argv[1], namespace={"who": "main-thread app"})
engine.run()  # in the main thread: SIGINT interrupts requests
print("stopped:", engine.stop_reason, flush=True)
"""


def test_run_in_the_main_thread_can_be_interrupted(controller: Any, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(MAIN_THREAD_APP)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(controller.path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        blocker = controller.execute("import time\ntime.sleep(30)")
        controller.get("iopub", lambda m: m.msg_type == "status" and m.parent_header.get("msg_id") == blocker)
        signal_reply = controller.reply(controller.send("control", "signal_request", {"signal": "SIGINT"}), "control")
        assert signal_reply.content == {"status": "ok"}
        assert controller.reply(blocker).content["ename"] == "KeyboardInterrupt"
        reply = controller.reply(controller.execute("who"))
        assert reply.content["execute_result"]["data"]["text/plain"] == "'main-thread app'"
        controller.reply(controller.send("control", "shutdown_request"), "control")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"stopped: shutdown requested by a client" in out


def test_handle_signals_needs_the_main_thread(controller: Any) -> None:
    with pytest.raises(RuntimeError, match="main thread"):
        Engine(controller.path, handle_signals=True).start()


def test_run_async_serves_on_the_running_loop(controller: Any) -> None:
    async def main() -> tuple[int, Any]:
        eng = Engine(controller.path, namespace={"greeting": "hello"}, registration_timeout=15)
        task = asyncio.create_task(eng.run_async())
        while not eng.wait_registered(0):
            await asyncio.sleep(0.01)  # the loop is never blocked meanwhile
            assert not task.done()
        msg_id = controller.execute("greeting.upper()")
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(None, controller.reply, msg_id)
        control = await loop.run_in_executor(
            None, lambda: controller.reply(controller.send("control", "shutdown_request"), "control")
        )
        await asyncio.wait_for(task, 15)  # returns when the engine stops
        return reply.content["execute_result"]["data"]["text/plain"], control.content

    text, control = asyncio.run(main())
    assert text == "'HELLO'"
    assert control == {"status": "ok"}
    assert not engine_threads()


def test_cancelling_run_async_stops_the_engine(controller: Any) -> None:
    async def main() -> Engine:
        eng = Engine(controller.path, registration_timeout=15)
        task = asyncio.create_task(eng.run_async())
        while not eng.wait_registered(0):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return eng

    eng = asyncio.run(main())
    assert eng.join(0)
    assert not engine_threads()


def test_run_async_raises_registration_errors(make_controller: Any) -> None:
    ctrl = make_controller(registration="refuse")

    async def main() -> None:
        await Engine(ctrl.path, registration_timeout=15).run_async()

    with pytest.raises(RegistrationError, match="ProtocolVersionError"):
        asyncio.run(main())


@pytest.mark.skipif(not EXAMPLE.exists(), reason="docs/examples is not part of this checkout")
def test_the_documented_example_runs(controller: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), str(controller.path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        controller.registered()
        reply = controller.reply(controller.execute("len(app.history) >= 0, app.name"))
        assert reply.content["status"] == "ok", reply.content
        assert reply.content["execute_result"]["data"]["text/plain"] == "(True, 'sensor-station')"
        reply = controller.reply(controller.execute("app.set_rate(5.0)\napp.rate"))
        assert reply.content["execute_result"]["data"]["text/plain"] == "5.0"
        controller.reply(controller.send("control", "shutdown_request"), "control")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"engine 0 serving" in out
    assert b"engine stopped: shutdown requested by a client" in out
