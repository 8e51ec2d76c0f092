"""Start controllers and engines as local processes (the default launcher)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from corral.launchers.base import Launched
from corral.wire.paths import private_dir

__all__ = ["LocalLauncher"]


class LocalLauncher:
    """Start corral programs as child processes of this one, each in its own session.

    Each process leads its own process group (so Ctrl-C in a terminal reaches only the user's
    script, which then stops the cluster) and its output goes to a log file. With a lifeline,
    the processes stop by themselves if this process dies without stopping them.

    Parameters
    ----------
    log_dir
        Where each process's output goes.
    lifeline
        Give children a pipe end that closes when this process dies (see
        :mod:`corral.wire.lifeline`); off for clusters that must outlive their launcher
        (``corral start``).
    """

    name = "local"

    def __init__(self, log_dir: Path, *, lifeline: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.lifeline = lifeline
        self._lifeline_fds: tuple[int, int] | None = None

    def _lifeline_read_end(self) -> int:
        if self._lifeline_fds is None:
            r, w = os.pipe()
            os.set_inheritable(r, True)
            self._lifeline_fds = (r, w)
        return self._lifeline_fds[0]

    def spawn(self, args: Sequence[str], log_name: str) -> Launched:
        """Start ``python -m <args>`` with its output in ``log_dir/log_name``.

        Raises
        ------
        OSError
            If the process cannot be started or the log cannot be opened.
        """
        private_dir(self.log_dir)
        log = self.log_dir / log_name
        cmd = [sys.executable, "-m", *args]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        fds: tuple[int, ...] = ()
        if self.lifeline:
            read_end = self._lifeline_read_end()
            env["CORRAL_LIFELINE_FD"] = str(read_end)
            fds = (read_end,)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        offset = os.lseek(fd, 0, os.SEEK_END)
        with os.fdopen(fd, "ab") as out:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=fds,
                start_new_session=True,
                close_fds=True,
            )
        return Launched(cmd, log, popen, popen.pid, log_offset=offset)

    def close(self) -> None:
        """Drop the lifeline: children still holding it stop by themselves."""
        if self._lifeline_fds is not None:
            for fd in self._lifeline_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._lifeline_fds = None
