"""Fixtures for the integration suite: real processes, own process groups, logs on failure.

The suite runs against installed distributions (the ``integration`` tox env installs freshly
built wheels of all of them), never against the repository's ``src/`` trees: the session stops
at once if ``corral.wire`` would be imported from the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Longest any single wait in this suite may take, in seconds.
DEADLINE = 30.0


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        import corral.wire
    except ImportError as err:
        raise pytest.UsageError(
            f"corral-wire is not installed ({err}); run this suite with `tox -e integration`"
        ) from None
    for location in corral.wire.__path__:
        if Path(location).resolve().is_relative_to(REPO / "packages"):
            raise pytest.UsageError(
                f"corral.wire is imported from the repository's source ({location}), not from an installed wheel; "
                "run this suite with `tox -e integration`"
            )


@dataclass
class Peer:
    """A process started by :class:`Processes`; its stdout and stderr go to :attr:`log`."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Return everything the process has printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """Return the JSON objects the process printed, one a line (other lines are skipped)."""
        found = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def wait_for_event(self, event: str, timeout: float = DEADLINE) -> dict[str, Any]:
        """Return the first printed event named ``event``, waiting up to ``timeout`` seconds.

        Raises
        ------
        AssertionError
            If the process exits or the time runs out first.
        """
        deadline = time.monotonic() + timeout
        while True:
            for found in self.events():
                if found.get("event") == event:
                    return found
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before printing {event!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} printed no {event!r} within {timeout} s")
            time.sleep(0.05)

    def finish(self, timeout: float = DEADLINE) -> int:
        """Wait for the process to exit and return its status.

        Raises
        ------
        subprocess.TimeoutExpired
            If it is still running after ``timeout`` seconds (teardown then kills it).
        """
        return self.proc.wait(timeout)


@dataclass
class Processes:
    """Start Python processes in their own process groups and kill every group at the end."""

    directory: Path
    peers: list[Peer] = field(default_factory=list)

    def spawn(self, name: str, *args: str) -> Peer:
        """Run ``sys.executable *args`` in :attr:`directory`, in a new session and process group."""
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
            )
        peer = Peer(name, proc, log)
        self.peers.append(peer)
        return peer

    def kill_all(self) -> None:
        """Terminate every process group, then kill what is left; reap every process."""
        for peer in self.peers:
            if peer.proc.poll() is None:
                _signal_group(peer.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    peer.proc.wait(5)
            # the leader may be gone while something it started still runs in its group
            _signal_group(peer.proc.pid, signal.SIGKILL)
            peer.proc.wait(5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


_PROCESSES = pytest.StashKey[Processes]()


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    """Yield a :class:`Processes` whose logs are attached to a failing test's report."""
    procs = Processes(tmp_path)
    request.node.stash[_PROCESSES] = procs
    try:
        yield procs
    finally:
        procs.kill_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    procs = item.stash.get(_PROCESSES, None)
    if procs is not None and report.failed:
        for peer in procs.peers:
            report.sections.append((f"output of {peer.name} (pid {peer.proc.pid})", peer.output()))
    return report
