"""What every launcher does: start processes, tell whether they live, stop them, report failures."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LaunchError", "Launched", "stop_all", "tail"]


class LaunchError(RuntimeError):
    """A process did not start, or died while starting; the message has its command and output."""


def tail(path: Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Launched:
    """A process a launcher started, in its own process group."""

    cmd: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    pid: int = 0
    started: float = field(default_factory=time.monotonic)
    #: where this process's output starts in ``log`` (logs are appended to across runs)
    log_offset: int = 0

    def output(self) -> str:
        """Everything this process wrote to its log so far."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        """True while the process runs (works for processes started by another program too)."""
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, IndexError):
            return True

    def exit_description(self) -> str:
        """How the process ended, if it has."""
        code = self.popen.poll() if self.popen is not None else None
        if code is None:
            return "still running" if self.alive() else "exited"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def failure(self, what: str) -> LaunchError:
        """A :class:`LaunchError` naming the command, how it ended and the tail of its output."""
        out = "\n".join(self.output().splitlines()[-20:]) or "(no output)"
        return LaunchError(
            f"{what} {self.exit_description()}.\n  command: {' '.join(self.cmd)}\n  log: {self.log}\n{out}"
        )

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process's whole group (it leads its own session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def to_record(self) -> dict[str, Any]:
        """What `corral stop` needs to find the process again."""
        return {"pid": self.pid, "cmd": self.cmd, "log": str(self.log)}


def stop_all(processes: Sequence[Launched], timeout: float = 5.0) -> None:
    """SIGTERM every process group, wait up to ``timeout``, then SIGKILL what is left."""
    for proc in processes:
        proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.02)
    for proc in processes:
        if proc.alive():
            proc.signal_group(signal.SIGKILL)
    for proc in processes:
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)
