"""What every launcher does: start engines (and controllers), tell whether they live, stop them.

The interface, for launchers in this package and third-party ones alike:

- :class:`Launcher` -- constructed as ``cls(log_dir, lifeline=..., **options)``; its
  :meth:`~Launcher.start_engines` starts ``n`` engines and returns one :class:`Launched` per
  thing it started (a process, an ``mpiexec``, an ``ssh`` session, a batch job);
  :meth:`~Launcher.start_controller` does the same for a controller where the launcher can;
  :meth:`~Launcher.restore` rebuilds a :class:`Launched` from its :meth:`~Launched.to_record`
  so ``corral stop`` can stop what an earlier command started.
- :class:`Launched` -- a handle: :meth:`~Launched.status` / :meth:`~Launched.alive`,
  :meth:`~Launched.terminate` / :meth:`~Launched.kill` / :meth:`~Launched.reap` (what
  :func:`stop_all` calls), and :meth:`~Launched.failure`, a :class:`LaunchError` naming the
  command it ran and the tail of its output. Subclasses (a batch job) override these.

Failures to start are reported, never waited out: a command that cannot run raises
:class:`LaunchError` at once; one that dies is noticed by :meth:`Launched.alive` while the
cluster waits for its engines (within the cluster's ``engine_timeout``), and the cluster then
stops everything it started.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["LaunchError", "Launched", "Launcher", "run_logged", "stop_all", "tail", "which_or_fail"]

#: lines of output a :class:`LaunchError` shows
TAIL_LINES = 20


class LaunchError(RuntimeError):
    """A process did not start, or died while starting; the message has its command and output."""


def tail(path: Path, lines: int = TAIL_LINES) -> str:
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


def which_or_fail(program: str, what: str, fix: str) -> str:
    """Return the full path of ``program`` on ``PATH``.

    Raises
    ------
    LaunchError
        If it is not there; the message names ``what`` needed it and ``fix``.
    """
    found = shutil.which(program)
    if found is None:
        raise LaunchError(f"{what} needs `{program}`, which is not on PATH. {fix}")
    return found


def run_logged(
    cmd: Sequence[str],
    what: str,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> str:
    """Run a short helper command (``scp``, ``sbatch``, ``scancel``) to completion; return its output.

    ``stdin`` is written to its standard input (none by default).

    Raises
    ------
    LaunchError
        If it cannot start, exits non-zero, or runs longer than ``timeout`` seconds (it is
        killed); the message has the command and the tail of its output.
    """
    try:
        done = subprocess.run(
            list(cmd),
            input=b"" if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except FileNotFoundError:
        raise LaunchError(f"{what}: `{cmd[0]}` is not installed or not on PATH.\n  command: {' '.join(cmd)}") from None
    except subprocess.TimeoutExpired as err:
        out = (err.output or b"").decode(errors="replace")
        raise LaunchError(
            f"{what} did not finish within {timeout:g} s and was killed.\n  command: {' '.join(cmd)}\n"
            + ("\n".join(out.splitlines()[-TAIL_LINES:]) or "(no output)")
        ) from None
    out = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        raise LaunchError(
            f"{what} failed ({_describe_code(done.returncode)}).\n  command: {' '.join(cmd)}\n"
            + ("\n".join(out.splitlines()[-TAIL_LINES:]) or "(no output)")
        )
    return out


def _describe_code(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


@dataclass
class Launched:
    """Something a launcher started: here, a local process leading its own process group.

    Subclasses stand for other things (a batch job) and override :meth:`alive`,
    :meth:`status`, :meth:`terminate`, :meth:`kill`, :meth:`reap`, :meth:`output` and
    :meth:`to_record`.
    """

    cmd: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    pid: int = 0
    started: float = field(default_factory=time.monotonic)
    #: where this process's output starts in ``log`` (logs are appended to across runs)
    log_offset: int = 0
    #: name of the launcher that started it (its entry point), for ``corral stop``
    launcher: str = "local"
    #: how many engines it runs (an ``mpiexec`` or a job array runs several)
    engines: int = 1

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

    def status(self) -> str:
        """``"running"``, or how it ended (``"exited with code 1"``, ``"killed by SIGKILL"``)."""
        return "running" if self.alive() else self.exit_description()

    def exit_description(self) -> str:
        """How the process ended, if it has."""
        code = self.popen.poll() if self.popen is not None else None
        if code is None:
            return "still running" if self.alive() else "exited"
        return _describe_code(code)

    def failure(self, what: str) -> LaunchError:
        """A :class:`LaunchError` naming the command, how it ended and the tail of its output."""
        out = "\n".join(self.output().splitlines()[-TAIL_LINES:]) or "(no output)"
        return LaunchError(
            f"{what} {self.exit_description()}.\n  command: {' '.join(self.cmd)}\n  log: {self.log}\n{out}"
        )

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process's whole group (it leads its own session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM to its process group); returns at once."""
        self.signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """Stop it now (SIGKILL to its process group)."""
        self.signal_group(signal.SIGKILL)

    def reap(self, timeout: float = 5.0) -> None:
        """Collect its exit status once it has stopped (no zombie is left)."""
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)

    def to_record(self) -> dict[str, Any]:
        """What `corral stop` needs to find it again (see :meth:`Launcher.restore`)."""
        return {
            "pid": self.pid,
            "cmd": self.cmd,
            "log": str(self.log),
            "launcher": self.launcher,
            "engines": self.engines,
        }


class Launcher(abc.ABC):
    """Starts engines one way (local processes, ``mpiexec``, ``ssh``, a batch system).

    Launchers are found by name in the ``corral.launchers`` entry-point group
    (:func:`corral.launchers.find_launcher`); ``Cluster(engines=NAME, launcher_options={...})``
    and ``corral start --engines NAME -o KEY=VALUE`` construct one as
    ``cls(log_dir, lifeline=..., **options)``. Option values may arrive as strings (from the
    command line): launchers convert them, and raise :class:`ValueError` naming the option and
    the accepted values for anything wrong or unknown.

    Parameters
    ----------
    log_dir
        Where the output of what it starts goes (one file per :class:`Launched`).
    lifeline
        Let what it starts stop by itself when this process dies (where the launcher can);
        off for clusters that outlive the command that started them (``corral start``).
    """

    #: the entry-point name
    name: ClassVar[str] = ""
    #: the options its constructor accepts, for error messages and ``corral start --help``
    options: ClassVar[Mapping[str, str]] = {}

    def __init__(self, log_dir: Path, *, lifeline: bool = True, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ValueError(
                f"the {self.name!r} launcher has no option {', '.join(map(repr, unknown))}; its options: {known}"
            )
        self.log_dir = Path(log_dir)
        self.lifeline = lifeline
        self._lifeline_fds: tuple[int, int] | None = None

    def lifeline_fd(self) -> int:
        """The read end of this launcher's lifeline pipe, created on first use (inheritable)."""
        if self._lifeline_fds is None:
            r, w = os.pipe()
            os.set_inheritable(r, True)
            self._lifeline_fds = (r, w)
        return self._lifeline_fds[0]

    def spawn_command(
        self,
        cmd: Sequence[str],
        log_name: str,
        *,
        engines: int = 1,
        env: Mapping[str, str] | None = None,
        hold_stdin: bool = False,
    ) -> Launched:
        """Start ``cmd`` with its output in ``log_dir/log_name``, under a lifeline guard if on.

        The guard (``python -m corral.launchers._guard``) holds the lifeline for programs that
        cannot pass it on (``mpiexec``, ``ssh``) and stops ``cmd`` when this process dies.
        With ``hold_stdin`` the guard always runs and gives ``cmd`` a standard input that
        stays open until the guard ends (``ssh`` forwards it: the remote engine's lifeline).
        The handle's :attr:`~Launched.cmd` is ``cmd`` itself, the command users recognise.

        Raises
        ------
        LaunchError
            If ``cmd`` (or the interpreter) cannot be run.
        """
        from corral.launchers.local import spawn_logged

        run_env = dict(os.environ if env is None else env)
        run_env.setdefault("PYTHONUNBUFFERED", "1")
        argv = list(cmd)
        fds: tuple[int, ...] = ()
        if self.lifeline:
            fd = self.lifeline_fd()
            run_env["CORRAL_LIFELINE_FD"] = str(fd)
            fds = (fd,)
        if self.lifeline or hold_stdin:
            argv = [sys.executable, "-m", "corral.launchers._guard", *(["--hold-stdin"] if hold_stdin else []), *argv]
        launched = spawn_logged(
            argv, self.log_dir / log_name, env=run_env, pass_fds=fds, launcher=self.name, engines=engines
        )
        launched.cmd = list(cmd)
        return launched

    @abc.abstractmethod
    def start_engines(
        self, n: int, connection_file: Path, engine_args: Sequence[str], *, first_index: int = 0
    ) -> list[Launched]:
        """Start ``n`` engines of the cluster whose connection file is ``connection_file``.

        Parameters
        ----------
        n
            How many engines.
        connection_file
            The cluster's connection file on this machine (launchers that start engines
            elsewhere copy it there).
        engine_args
            Extra arguments for ``python -m corral.engine`` (``--log-level``, ...).
        first_index
            Index of the first engine among those the cluster started (names log files).

        Returns
        -------
        list of Launched
            What it started; together they run ``n`` engines.

        Raises
        ------
        LaunchError
            If a command cannot be run (missing program, refused submission); the message
            names the command and its output. Nothing it started is left running.
        """

    def start_controller(self, connection_file: Path, controller_args: Sequence[str]) -> Launched:
        """Start a controller that binds what ``connection_file`` says (``--reuse``).

        Raises
        ------
        LaunchError
            If this launcher cannot start controllers, or the command cannot be run.
        """
        raise LaunchError(f"the {self.name!r} launcher cannot start controllers; use 'local' for the controller")

    def close(self) -> None:
        """Release what the launcher holds; dropping the lifeline stops what still holds it."""
        if self._lifeline_fds is not None:
            for fd in self._lifeline_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._lifeline_fds = None

    @classmethod
    def restore(cls, record: Mapping[str, Any]) -> Launched:
        """Rebuild the handle :meth:`Launched.to_record` described, to stop it from another process.

        Raises
        ------
        ValueError
            If the record lacks what this launcher needs.
        """
        try:
            return Launched(
                cmd=list(record.get("cmd", [])),
                log=Path(record.get("log", "")),
                pid=int(record["pid"]),
                launcher=str(record.get("launcher", cls.name)),
                engines=int(record.get("engines", 1)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"cluster record entry {dict(record)!r} has no usable pid: {err}") from None


def stop_all(processes: Sequence[Launched], timeout: float = 5.0) -> None:
    """Terminate everything, wait up to ``timeout`` seconds, then kill what is left, and reap."""
    for proc in processes:
        proc.terminate()
    deadline = time.monotonic() + timeout
    while any(p.alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.02)
    for proc in processes:
        if proc.alive():
            proc.kill()
    for proc in processes:
        proc.reap()
