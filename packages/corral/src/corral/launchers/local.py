"""Start controllers and engines as local processes (the default launcher)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from corral.launchers.base import Launched, Launcher, LaunchError, stop_all
from corral.wire.paths import private_dir

__all__ = ["LocalLauncher", "spawn_logged"]


def spawn_logged(
    cmd: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    launcher: str = "local",
    engines: int = 1,
) -> Launched:
    """Start ``cmd`` in its own session with stdout and stderr appended to ``log``.

    Raises
    ------
    LaunchError
        If the program does not exist or cannot be executed (the message names the command).
    OSError
        If the log cannot be opened.
    """
    private_dir(log.parent)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    offset = os.lseek(fd, 0, os.SEEK_END)
    with os.fdopen(fd, "ab") as out:
        try:
            popen = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                pass_fds=tuple(pass_fds),
                start_new_session=True,
                close_fds=True,
            )
        except (FileNotFoundError, PermissionError) as err:
            raise LaunchError(f"cannot run {cmd[0]}: {err.strerror}.\n  command: {' '.join(cmd)}") from None
    return Launched(list(cmd), log, popen, popen.pid, log_offset=offset, launcher=launcher, engines=engines)


class LocalLauncher(Launcher):
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
    options: ClassVar[Mapping[str, str]] = {}

    def spawn(self, args: Sequence[str], log_name: str) -> Launched:
        """Start ``python -m <args>`` with its output in ``log_dir/log_name``.

        Raises
        ------
        LaunchError
            If the interpreter cannot be run.
        OSError
            If the log cannot be opened.
        """
        cmd = [sys.executable, "-m", *args]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        fds: tuple[int, ...] = ()
        if self.lifeline:
            read_end = self.lifeline_fd()
            env["CORRAL_LIFELINE_FD"] = str(read_end)
            fds = (read_end,)
        return spawn_logged(cmd, self.log_dir / log_name, env=env, pass_fds=fds, launcher=self.name)

    def start_engines(
        self, n: int, connection_file: Path, engine_args: Sequence[str], *, first_index: int = 0
    ) -> list[Launched]:
        """Start ``n`` engine processes, logs ``engine-<i>.log``.

        Raises
        ------
        LaunchError
            If the interpreter cannot be run (what was started is stopped again).
        """
        started: list[Launched] = []
        try:
            for i in range(first_index, first_index + n):
                args = ["corral.engine", "--connection-file", str(connection_file), *engine_args]
                started.append(self.spawn(args, f"engine-{i}.log"))
        except BaseException:
            stop_all(started)
            raise
        return started

    def start_controller(self, connection_file: Path, controller_args: Sequence[str]) -> Launched:
        """Start ``python -m corral.cluster --reuse`` on this machine, log ``controller.log``."""
        args = ["corral.cluster", "--connection-file", str(connection_file), "--reuse", *controller_args]
        return self.spawn(args, "controller.log")
