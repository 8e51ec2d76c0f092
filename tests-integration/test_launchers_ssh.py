"""The ssh launcher against a real ``sshd`` on a loopback port, with throwaway keys.

The fixture starts OpenSSH's ``sshd`` on 127.0.0.1 (a free port) with a host key and an
authorized user key made for the test in a temporary directory, and kills it by pid afterwards.
Needs ``sshd``, ``ssh`` and ``ssh-keygen`` (``.ci/run`` installs openssh-server and
openssh-client); without them the tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.client import interactive
from corral.cluster import Cluster
from corral.launchers import LaunchError
from corral.wire.testing import free_ports

pytestmark = pytest.mark.timeout(180)

SSHD_PROGRAM = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pids_with_cmdline(fragment: str) -> list[int]:
    """Live processes whose command line contains ``fragment`` (a path unique to one test)."""
    needle = fragment.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes() and _alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


class SSHD:
    """A running test sshd and what a client needs to reach it."""

    def __init__(self, directory: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.directory = directory
        self.port = port
        self.proc = proc
        self.key = directory / "user_key"

    def ssh_args(self, key: Path | None = None) -> str:
        return shlex.join([
            "-F", "/dev/null", "-p", str(self.port), "-i", str(key or self.key),
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={self.directory / 'known_hosts'}",
        ])  # fmt: skip

    def options(self, remote_dir: Path, key: Path | None = None) -> dict[str, str]:
        return {
            "hosts": "127.0.0.1",
            "ssh_args": self.ssh_args(key),
            "python": sys.executable,
            "remote_dir": str(remote_dir),
        }


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SSHD]:
    missing = [p for p, found in (("sshd", SSHD_PROGRAM), ("ssh", shutil.which("ssh")), ("ssh-keygen", shutil.which("ssh-keygen"))) if not found]  # fmt: skip
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs openssh-server and openssh-client)")
    assert SSHD_PROGRAM is not None
    if os.geteuid() == 0:  # sshd running as root insists on its privilege separation directory
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    directory = tmp_path / "sshd"
    directory.mkdir(mode=0o700)
    for name in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True, timeout=30
        )
    authorized = directory / "authorized_keys"
    authorized.write_bytes((directory / "user_key.pub").read_bytes())
    authorized.chmod(0o600)
    port = free_ports(1)[0]
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
        f"StrictModes no\nPidFile {directory / 'sshd.pid'}\nAllowUsers {getpass.getuser()}\n"
    )
    log = (directory / "sshd.log").open("wb")
    proc = subprocess.Popen(
        [SSHD_PROGRAM, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.skip(f"sshd could not start here: {(directory / 'sshd.log').read_text()[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"sshd did not listen within 30 s: {(directory / 'sshd.log').read_text()}")
            time.sleep(0.05)
        yield SSHD(directory, port, proc)
    finally:
        # the per-connection sshd processes are children of the listener: kill them, then it
        for child in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        log.close()


def test_engines_over_ssh_run_work_and_stop_with_the_cluster(sshd: SSHD, tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote"
    cluster = Cluster(n=2, engines="ssh", launcher_options=sshd.options(remote_dir), engine_timeout=120)
    with cluster as rc:
        assert len(rc.ids) == 2
        assert rc[:].apply_sync(interactive(lambda: 6 * 7)) == [42, 42]
        copied = remote_dir / cluster.connection_file.name
        assert json.loads(copied.read_text()) == json.loads(cluster.connection_file.read_text())
        assert copied.stat().st_mode & 0o777 == 0o600
        assert remote_dir.stat().st_mode & 0o777 == 0o700
        assert all(e.cmd[0] == "ssh" for e in cluster.engines)
        engine_pids = rc[:].apply_sync(interactive(lambda: __import__("os").getpid()))
        # the engines were started by sshd, not by this process's launcher
        assert not any(pid in _children(os.getpid()) for pid in engine_pids)
    assert _wait_gone(engine_pids) == []
    assert not copied.exists()  # stop_cluster removed the copy of the key
    assert _wait_gone(_pids_with_cmdline(str(remote_dir))) == []  # their supervisors too


def test_controller_and_engines_over_ssh_with_curve(sshd: SSHD, tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote"
    # as across hosts: CurveZMQ on (here forced, as the controller binds loopback)
    cluster = Cluster(
        n=2, engines="ssh", controller="ssh", launcher_options=sshd.options(remote_dir), engine_timeout=120, curve=True
    )
    with cluster as rc:
        assert "curve_public_key" in json.loads((remote_dir / cluster.connection_file.name).read_text())
        assert cluster.controller is not None
        assert cluster.controller.cmd[0] == "ssh"
        assert "corral.cluster" in cluster.controller.cmd[-1]
        assert rc[:].apply_sync(interactive(lambda: 1)) == [1, 1]
    assert _wait_gone(_pids_with_cmdline(str(remote_dir))) == []


def test_an_ssh_auth_failure_reports_command_and_output(sshd: SSHD, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=30)
    remote_dir = tmp_path / "remote"
    cluster = Cluster(n=2, engines="ssh", launcher_options=sshd.options(remote_dir, key=stranger), engine_timeout=60)
    t0 = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        cluster.start_and_connect_sync()
    assert time.monotonic() - t0 < 60
    text = str(caught.value)
    assert "copying the connection file to 127.0.0.1 failed (exited with code 255)" in text
    assert f"command: ssh -o BatchMode=yes -o ConnectTimeout=10 -F /dev/null -p {sshd.port}" in text
    assert "Permission denied" in text
    assert cluster.controller is None
    assert cluster.engines == []
    assert not remote_dir.exists()


def test_engines_stop_when_the_launching_script_is_killed(sshd: SSHD, tmp_path: Path, processes: Any) -> None:
    remote_dir = tmp_path / "remote"
    script = tmp_path / "ssh_script.py"
    script.write_text(
        "import json, os, sys, time\n"
        "from corral.client import interactive\n"
        "from corral.cluster import Cluster\n"
        f"c = Cluster(n=2, engines='ssh', launcher_options={sshd.options(remote_dir)!r}, engine_timeout=120)\n"
        "rc = c.start_and_connect_sync()\n"
        "pids = rc[:].apply_sync(interactive(lambda: __import__('os').getpid()))\n"
        "print(json.dumps({'event': 'up', 'engine_pids': pids}), flush=True)\n"
        "time.sleep(120)\n"
    )
    peer = processes.spawn("ssh-script", str(script))
    engine_pids = peer.wait_for_event("up", timeout=120)["engine_pids"]
    os.killpg(peer.proc.pid, signal.SIGKILL)  # no cleanup runs: only the lifelines are left
    peer.proc.wait(30)
    assert _wait_gone(engine_pids, timeout=60) == []
    assert _wait_gone(_pids_with_cmdline(str(remote_dir)), timeout=30) == []
