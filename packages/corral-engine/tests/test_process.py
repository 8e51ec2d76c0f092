"""The engine program, ``python -m corral.engine``, in subprocesses (with and without supervisor)."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import pytest

from corral.wire import channel_url

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups"),
]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def control(controller: Any, msg_type: str, content: dict[str, Any] | None = None) -> Any:
    return controller.reply(controller.send("control", msg_type, content or {}), "control")


def test_sigint_interrupts_running_code_and_the_engine_keeps_serving(controller: Any, spawn: Any) -> None:
    proc = spawn("--connection-file", str(controller.path), "--no-supervisor")
    reg = controller.registered()
    assert reg.content["pid"] == proc.pid
    blocker = controller.execute("import time\ntime.sleep(30)")
    controller.get("iopub", lambda m: m.msg_type == "status" and m.parent_header.get("msg_id") == blocker)
    reply = control(controller, "signal_request", {"signal": "SIGINT"})
    assert reply.content == {"status": "ok"}
    interrupted = controller.reply(blocker)
    assert interrupted.content["status"] == "error"
    assert interrupted.content["ename"] == "KeyboardInterrupt"
    assert "time.sleep(30)" in "".join(interrupted.content["traceback"])
    # still serving, and a SIGINT while idle changes nothing
    assert control(controller, "signal_request", {"signal": 2}).content["status"] == "ok"
    after = controller.reply(controller.execute("6 * 7"))
    assert after.content["execute_result"]["data"]["text/plain"] == "42"
    assert control(controller, "shutdown_request", {"restart": False}).content["status"] == "ok"
    assert proc.wait() == 0


def test_shutdown_interrupts_running_code_and_exits_0(controller: Any, spawn: Any) -> None:
    proc = spawn("--connection-file", str(controller.path), "--no-supervisor")
    blocker = controller.execute("import time\ntime.sleep(30)")
    controller.get("iopub", lambda m: m.msg_type == "status" and m.parent_header.get("msg_id") == blocker)
    assert control(controller, "shutdown_request", {"restart": False}).content == {"status": "ok"}
    assert controller.reply(blocker).content["ename"] == "EngineStopping"
    assert proc.wait() == 0
    assert "shutdown requested by a client" in proc.stderr


def test_process_namespace_is_main_so_classes_pickle(controller: Any, spawn: Any) -> None:
    proc = spawn("--connection-file", str(controller.path), "--no-supervisor")
    code = "class Point:\n    def __init__(self, x):\n        self.x = x\n\nimport sys\n(__name__, sys.modules['__main__'].Point is Point)"
    reply = controller.reply(controller.execute(code))
    assert reply.content["execute_result"]["data"]["text/plain"] == "('__main__', True)"
    reply = controller.reply(controller.execute("p = Point(3)\np"))
    assert reply.content["status"] == "ok"
    assert len(reply.buffers) == 1  # the instance pickled (by reference to __main__.Point)
    control(controller, "shutdown_request")
    assert proc.wait() == 0


def test_supervisor_reports_sigkill_of_the_engine(controller: Any, spawn: Any) -> None:
    proc = spawn("--connection-file", str(controller.path))
    reg = controller.registered()
    engine_pid = reg.content["pid"]
    assert engine_pid != proc.pid  # the engine is the supervisor's child
    assert reg.content["direct"].startswith("tcp://127.0.0.1:")  # it listens for direct requests
    controller.reply(controller.execute("1"))
    os.kill(engine_pid, signal.SIGKILL)
    report = controller.get("registration", lambda m: m.msg_type == "engine_exit")
    assert report.content == {"uuid": reg.content["uuid"], "exit_code": None, "signal": "SIGKILL"}
    assert proc.wait() == 128 + signal.SIGKILL


def test_supervisor_reports_a_clean_shutdown(controller: Any, spawn: Any) -> None:
    proc = spawn("--connection-file", str(controller.path), "--id", "3", "--no-direct")
    reg = controller.registered()
    assert reg.content["requested_id"] == 3
    assert "direct" not in reg.content  # --no-direct reached the supervised engine
    assert control(controller, "shutdown_request").content["status"] == "ok"
    report = controller.get("registration", lambda m: m.msg_type == "engine_exit")
    assert report.content == {"uuid": reg.content["uuid"], "exit_code": 0, "signal": None}
    assert proc.wait() == 0


def test_sigterm_to_the_supervisor_stops_the_engine_cleanly(controller: Any, spawn: Any) -> None:
    proc = spawn("--connection-file", str(controller.path))
    reg = controller.registered()
    blocker = controller.execute("import time\ntime.sleep(30)")
    controller.get("iopub", lambda m: m.msg_type == "status" and m.parent_header.get("msg_id") == blocker)
    os.kill(proc.pid, signal.SIGTERM)
    report = controller.get("registration", lambda m: m.msg_type == "engine_exit")
    assert report.content == {"uuid": reg.content["uuid"], "exit_code": 0, "signal": None}
    assert proc.wait() == 0
    # the running request was interrupted and answered
    assert controller.reply(blocker).content["ename"] == "EngineStopping"
    with pytest.raises(ProcessLookupError):
        os.kill(reg.content["pid"], 0)


def test_engine_dies_with_its_supervisor(controller: Any, spawn: Any) -> None:
    proc = spawn("--connection-file", str(controller.path))
    engine_pid = controller.registered().content["pid"]
    controller.reply(controller.execute("1"))
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    # the engine got SIGTERM from the kernel (PR_SET_PDEATHSIG) or its ppid watch, and stopped
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not alive(engine_pid):
            break
        time.sleep(0.05)
    else:
        os.kill(engine_pid, signal.SIGKILL)
        pytest.fail("the engine outlived its supervisor")


@pytest.mark.parametrize("supervised", [False, True])
def test_a_launchers_lifeline_stops_the_engine_cleanly(controller: Any, spawn: Any, supervised: bool) -> None:
    read_end, write_end = os.pipe()
    try:
        args = ["--connection-file", str(controller.path)] + ([] if supervised else ["--no-supervisor"])
        proc = spawn(*args, env={"CORRAL_LIFELINE_FD": str(read_end)}, pass_fds=[read_end])
    finally:
        os.close(read_end)
    reg = controller.registered()
    controller.reply(controller.execute("1"))
    os.close(write_end)  # the launcher is gone
    assert proc.wait() == 0
    if supervised:
        report = controller.get("registration", lambda m: m.msg_type == "engine_exit")
        assert report.content == {"uuid": reg.content["uuid"], "exit_code": 0, "signal": None}


@pytest.mark.parametrize("supervised", [False, True])
def test_incompatible_protocol_exits_nonzero_with_the_hubs_message(
    make_controller: Any, spawn: Any, supervised: bool
) -> None:
    ctrl = make_controller(registration="refuse")
    args = ["--connection-file", str(ctrl.path)] + ([] if supervised else ["--no-supervisor"])
    proc = spawn(*args)
    assert proc.wait() == 1
    assert "refused this engine: ProtocolVersionError" in proc.stderr
    assert "major versions differ" in proc.stderr


def test_registration_timeout_names_the_address(make_controller: Any, spawn: Any) -> None:
    ctrl = make_controller(registration="silent")
    proc = spawn("--connection-file", str(ctrl.path), "--no-supervisor", "--timeout", "0.5")
    assert proc.wait() == 1
    assert f"no registration reply from the controller at {channel_url(ctrl.info, 'registration')}" in proc.stderr


def test_controller_timeout_exits_cleanly_saying_why(make_controller: Any, spawn: Any) -> None:
    ctrl = make_controller(ping_period=None)
    proc = spawn("--connection-file", str(ctrl.path), "--controller-timeout", "1", "--log-level", "WARNING")
    uuid = ctrl.registered().content["uuid"]
    assert proc.wait() == 0
    assert "no heartbeat from the controller" in proc.stderr
    assert ctrl.get("registration", lambda m: m.msg_type == "engine_exit").content == {
        "uuid": uuid,
        "exit_code": 0,
        "signal": None,
    }


def test_missing_connection_file_is_a_clear_error(tmp_path: Any, spawn: Any) -> None:
    proc = spawn("--connection-file", str(tmp_path / "nope.json"))
    assert proc.wait() == 1
    assert "nope.json" in proc.stderr


def test_bad_arguments_exit_2(spawn: Any) -> None:
    proc = spawn("--connection-file", "x.json", "--timeout", "-1")
    assert proc.wait() == 2
    assert "positive" in proc.stderr
