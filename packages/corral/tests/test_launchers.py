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


def test_mpi_command_line_and_options(tmp_path: Path) -> None:
    from corral.launchers.mpi import MPILauncher

    launcher = MPILauncher(tmp_path, mpi_args="--hostfile 'my hosts' --oversubscribe", python="/opt/py")
    conn = tmp_path / "c.json"
    assert launcher.command(4, conn, ["--log-level", "INFO"]) == [
        "mpiexec", "-n", "4", "--hostfile", "my hosts", "--oversubscribe",
        "/opt/py", "-m", "corral.engine", "--connection-file", str(conn), "--mpi", "--log-level", "INFO",
    ]  # fmt: skip
    # engines added later get ids after the first ones: --id is the offset added to the rank
    assert launcher.command(2, conn, [], first_index=4)[-2:] == ["--id", "4"]
    with pytest.raises(ValueError, match="'mpi_args' option takes a string or a list of strings"):
        MPILauncher(tmp_path, mpi_args=3)
    with pytest.raises(ValueError, match="'mpi' launcher has no option 'host'; its options: mpi_args, mpiexec, python"):
        MPILauncher(tmp_path, host="x")


def test_ssh_options_are_checked(tmp_path: Path) -> None:
    from corral.launchers.ssh import SSHLauncher

    with pytest.raises(ValueError, match="needs hosts"):
        SSHLauncher(tmp_path)
    with pytest.raises(ValueError, match="is not a host name"):
        SSHLauncher(tmp_path, hosts="-oProxyCommand=x")
    launcher = SSHLauncher(tmp_path, hosts="a, user@b", ssh_args="-p 2222")
    assert launcher.hosts == ["a", "user@b"]
    assert launcher.ssh_args[-2:] == ["-p", "2222"]
    assert "BatchMode=yes" in launcher.ssh_args
    assert launcher.remote_path(tmp_path / "corral-x.json") == ".corral/security/corral-x.json"


def test_ssh_to_an_unreachable_port_fails_with_command_and_output(tmp_path: Path) -> None:
    import shutil

    from corral.launchers.ssh import SSHLauncher
    from corral.wire.testing import free_ports

    if shutil.which("ssh") is None:
        pytest.skip("no ssh client installed (.ci/run installs openssh-client)")
    conn = tmp_path / "c.json"
    conn.write_text("{}")
    conn.chmod(0o600)
    launcher = SSHLauncher(tmp_path, hosts="127.0.0.1", ssh_args=f"-F /dev/null -p {free_ports(1)[0]}")
    t0 = time.monotonic()
    with pytest.raises(
        LaunchError, match=r"(?s)copying the connection file to 127.0.0.1 failed.*command: ssh .*refused"
    ):
        launcher.start_engines(2, conn, [])
    assert time.monotonic() - t0 < 30


def test_the_guard_stops_its_command_when_the_lifeline_closes(tmp_path: Path) -> None:
    from corral.launchers.mpi import MPILauncher

    launcher = MPILauncher(tmp_path, lifeline=True)
    code = "import os, time; print('child', os.getpid(), flush=True); time.sleep(60)"
    proc = launcher.spawn_command([sys.executable, "-c", code], "guarded.log")
    assert proc.cmd == [sys.executable, "-c", code]  # the command users recognise, not the guard
    deadline = time.monotonic() + 30
    while "child" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    child = Launched(cmd=[], log=proc.log, pid=int(proc.output().split()[1]))
    launcher.close()  # as if this process had died: the lifeline's write end closes
    deadline = time.monotonic() + 30
    while (proc.alive() or child.alive()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not child.alive()
    assert not proc.alive()
    assert proc.status() == "exited with code 143"  # the guard passes on the child's SIGTERM


def test_curve_policy() -> None:
    from corral.cluster.controller import resolve_curve

    assert resolve_curve("127.0.0.1", None, False) is False
    assert resolve_curve("127.0.0.1", True, False) is True
    assert resolve_curve("10.1.2.3", None, False) is True
    assert resolve_curve("10.1.2.3", None, True) is False
    with pytest.raises(ValueError, match=r"binding 10.1.2.3 without CurveZMQ is refused.*--insecure"):
        resolve_curve("10.1.2.3", False, False)
    with pytest.raises(ValueError, match="contradict"):
        resolve_curve("127.0.0.1", True, True)


def test_cluster_ports_avoid_the_ephemeral_range_and_ports_in_use() -> None:
    import socket

    from corral.cluster._ports import _ephemeral_low, listen_ports

    ports = listen_ports(14)
    assert len(set(ports)) == 14
    assert all(10000 <= p < _ephemeral_low() for p in ports)
    for port in ports:  # each is bindable right now
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    # an address of another machine cannot be checked here: ports are still chosen
    assert len(set(listen_ports(3, "192.0.2.1"))) == 3
