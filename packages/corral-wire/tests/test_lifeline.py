"""A child watching its lifeline stops when the launcher goes, even if killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(60)

CHILD = """
import signal, sys, time
from corral.wire.lifeline import watch_lifeline
signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))
assert watch_lifeline()
print("watching", flush=True)
time.sleep(60)
"""

LAUNCHER = """
import os, subprocess, sys, time
r, w = os.pipe()
env = dict(os.environ, CORRAL_LIFELINE_FD=str(r))
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], pass_fds=(r,), env=env, stdout=subprocess.PIPE, text=True)
os.close(r)
assert child.stdout.readline().strip() == "watching"
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_child_stops_when_its_launcher_is_killed() -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, CHILD], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert launcher.stdout is not None
        child = int(launcher.stdout.readline())
        assert alive(child)
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait(10)
        if launcher.stdout is not None:
            launcher.stdout.close()


def test_no_lifeline_means_nothing_to_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    from corral.wire.lifeline import watch_lifeline

    monkeypatch.delenv("CORRAL_LIFELINE_FD", raising=False)
    assert watch_lifeline() is False
    monkeypatch.setenv("CORRAL_LIFELINE_FD", "x")
    with pytest.raises(ValueError, match="not a file descriptor"):
        watch_lifeline()
