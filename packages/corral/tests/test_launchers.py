"""The launcher interface: lookup by entry point, option checks, failures that name the command."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from corral.launchers import (
    Launched,
    Launcher,
    LaunchError,
    LocalLauncher,
    available_launchers,
    find_launcher,
    run_logged,
    spawn_logged,
    stop_all,
)

pytestmark = pytest.mark.timeout(60)


def test_builtin_launchers_are_found_by_entry_point() -> None:
    assert "local" in available_launchers()
    assert find_launcher("local") is LocalLauncher


def test_unknown_launcher_names_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"no launcher named 'nope'; available: .*local"):
        find_launcher("nope")


def test_unknown_option_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'local' launcher has no option 'hosts'; its options: none"):
        LocalLauncher(tmp_path, hosts="a")


def test_a_process_that_dies_reports_command_and_output_tail(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(40): print('line', i)\nsys.exit(3)"
    proc = spawn_logged([sys.executable, "-c", code], tmp_path / "x.log")
    deadline = time.monotonic() + 30
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    err = proc.failure("the thing")
    text = str(err)
    assert "the thing exited with code 3" in text
    assert f"command: {sys.executable} -c" in text
    assert "line 39" in text
    assert "line 19" not in text
    assert proc.status() == "exited with code 3"


def test_a_missing_program_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"cannot run /nonexistent/mpiexec.*\n  command: /nonexistent/mpiexec -n 2"):
        spawn_logged(["/nonexistent/mpiexec", "-n", "2"], tmp_path / "x.log")


def test_run_logged_reports_failure_and_overrun() -> None:
    with pytest.raises(LaunchError, match=r"(?s)copying failed \(exited with code 4\).*command: .*boom"):
        run_logged([sys.executable, "-c", "print('boom'); raise SystemExit(4)"], "copying", timeout=30)
    t0 = time.monotonic()
    with pytest.raises(LaunchError, match=r"did not finish within 0.5 s"):
        run_logged([sys.executable, "-c", "import time; time.sleep(30)"], "waiting", timeout=0.5)
    assert time.monotonic() - t0 < 20


def test_stop_all_stops_the_whole_process_group(tmp_path: Path) -> None:
    # a parent that ignores SIGTERM and a child: both must be gone afterwards
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('child', c.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = spawn_logged([sys.executable, "-c", code], tmp_path / "x.log")
    deadline = time.monotonic() + 30
    while "child" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    child = Launched(cmd=[], log=tmp_path / "x.log", pid=int(proc.output().split()[1]))
    stop_all([proc], timeout=0.5)
    assert not proc.alive()
    deadline = time.monotonic() + 10
    while child.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not child.alive()


def test_restore_round_trips_a_record(tmp_path: Path) -> None:
    proc = spawn_logged([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "x.log", engines=3)
    again = LocalLauncher.restore(proc.to_record())
    assert again.pid == proc.pid
    assert again.engines == 3
    assert again.alive()
    stop_all([again])
    proc.reap()
    assert not proc.alive()


def test_a_launcher_must_implement_start_engines(tmp_path: Path) -> None:
    class Half(Launcher):
        name = "half"

    with pytest.raises(TypeError, match="start_engines"):
        Half(tmp_path)  # type: ignore[abstract]
