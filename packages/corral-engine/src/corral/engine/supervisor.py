"""The supervisor: a small parent process that reports how its engine ended.

``python -m corral.engine`` starts this parent by default. It spawns the real engine
(``sys.executable -m corral.engine ... --no-supervisor --uuid U --supervised``), waits for it,
and when it exits sends ``engine_exit`` (``uuid``, ``exit_code`` or ``signal``) to the hub on the
``registration`` channel, so that the hub learns at once that the engine died and how (for
example ``SIGKILL``) instead of waiting for heartbeats to stop. It then exits with the engine's
code (128 + the signal number if the engine was killed by a signal).

SIGTERM, SIGINT and SIGHUP to the supervisor are passed on to the engine as SIGTERM, which stops
it cleanly; an engine that does not stop within ``kill_timeout`` seconds is killed.

Optionally (``--restart N``) an engine that dies unexpectedly (killed by a signal, or exiting
with a code above 1) is started again under the same engine id, with a new uuid, at most N
times in any minute; and (``--memory-limit MB``) an engine whose resident memory passes the
limit is killed (and restarted if allowed), the hub being told why: ``memory limit exceeded``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid as _uuid
from collections import deque
from collections.abc import Sequence
from types import FrameType
from typing import Any, Final

import zmq

from corral.engine.lifeline import SUPERVISOR_ID_FD_ENV, SUPERVISOR_PID_ENV
from corral.engine.signals import signal_name
from corral.wire import ConnectionInfo, MessageRejected, Session, channel_url, harden
from corral.wire.gate import admit

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)

_FORWARDED: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# ms the engine_exit message may wait to leave when the supervisor closes its socket
_REPORT_LINGER_MS: Final = 2000
#: Seconds over which ``restart_limit`` restarts are allowed.
RESTART_WINDOW: Final = 60.0
# seconds between looks at the engine (memory, its id at the hub)
_TICK: Final = 0.5
# seconds a query to the hub may take
_QUERY_TIMEOUT: Final = 2.0


class Supervisor:
    """Run an engine child process and report its exit to the hub.

    Parameters
    ----------
    info
        The connection info (the hub's address and the key).
    uuid
        The uuid the child engine registers with.
    child_args
        Arguments after ``python -m corral.engine`` for the child (with ``--uuid``).
    kill_timeout
        Seconds the child has to stop after SIGTERM before it is killed.
    restart_limit
        Restarts allowed within :data:`RESTART_WINDOW` seconds (0: never restart).
    memory_limit
        Bytes of resident memory past which the engine is killed (None: no limit).
    """

    def __init__(
        self,
        info: ConnectionInfo,
        uuid: str,
        child_args: Sequence[str],
        kill_timeout: float = 10.0,
        *,
        restart_limit: int = 0,
        memory_limit: int | None = None,
    ) -> None:
        self.info = info
        self.uuid = uuid
        self.child_args = list(child_args)
        self.kill_timeout = kill_timeout
        self.restart_limit = restart_limit
        self.memory_limit = memory_limit
        #: the engine id the hub gave the current child, once known (for restarts)
        self.engine_id: int | None = None
        self._restarts: deque[float] = deque()
        self._kill_reason: str | None = None
        self._terminating_since: float | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._id_pipe = -1

    def run(self) -> int:
        """Start the child, wait for it, report its exit (restarting it if allowed); return the code to exit with.

        Raises
        ------
        OSError
            If the child cannot be started.
        """
        session = Session(self.info["key"], scheme=self.info["signature_scheme"])
        context: zmq.Context[Any] = zmq.Context()
        sock = admit(harden(context.socket(zmq.DEALER)), session.key, self.info.get("curve_public_key"))
        try:
            # connected before the child starts, so the report can leave at once at the end
            sock.connect(channel_url(self.info, "registration"))
            while True:
                self._kill_reason = None
                returncode = self._run_child(session, sock)
                exit_code, sig = (None, signal_name(-returncode)) if returncode < 0 else (returncode, None)
                content: dict[str, Any] = {"uuid": self.uuid, "exit_code": exit_code, "signal": sig}
                if self._kill_reason is not None:
                    content["reason"] = self._kill_reason
                how = sig or f"exit code {exit_code}"
                log.info("engine %s ended (%s); reporting to the hub", self.uuid, how)
                try:
                    session.send(sock, "engine_exit", content)
                except zmq.ZMQError as err:
                    log.warning("could not report the engine's exit to the hub: %s", err)
                if not self._may_restart(returncode):
                    return 128 - returncode if returncode < 0 else returncode
                self._prepare_restart(session, sock, how)
        finally:
            sock.close(linger=_REPORT_LINGER_MS)
            context.term()

    def _may_restart(self, returncode: int) -> bool:
        if self.restart_limit <= 0 or self._terminating_since is not None:
            return False  # not asked for, or told to stop
        if returncode in (0, 1) and self._kill_reason is None:
            return False  # a clean stop, or an engine that cannot start (it would fail again)
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW:
            self._restarts.popleft()
        if len(self._restarts) >= self.restart_limit:
            log.error(
                "engine %s died %d times within %g s; not restarting it again",
                self.engine_id,
                len(self._restarts) + 1,
                RESTART_WINDOW,
            )
            return False
        self._restarts.append(now)
        return True

    def _prepare_restart(self, session: Session, sock: zmq.Socket[Any], how: str) -> None:
        # a new uuid (the old one's connections may linger in the controller's ROUTERs), the
        # same id; asked for only once the hub has let the old engine go
        old_id = self.engine_id
        self.uuid = _uuid.uuid4().hex
        args = self.child_args
        args[args.index("--uuid") + 1] = self.uuid
        if old_id is not None:
            if "--id" in args:
                args[args.index("--id") + 1] = str(old_id)
            else:
                args += ["--id", str(old_id)]
            deadline = time.monotonic() + _QUERY_TIMEOUT * 2
            while time.monotonic() < deadline:
                engines = self._query_engines(session, sock)
                if engines is None or str(old_id) not in engines:
                    break
                time.sleep(0.05)
        log.warning("engine %s %s; restarting it (restart %d)", old_id, how, len(self._restarts))

    def _query_engines(self, session: Session, sock: zmq.Socket[Any]) -> dict[str, Any] | None:
        """The hub's live engines (``{"id": uuid}``), or None if it did not answer in time."""
        try:
            msg, _ = session.send(sock, "connection_request", {})
        except zmq.ZMQError:
            return None
        deadline = time.monotonic() + _QUERY_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000)):
                return None
            try:
                reply = session.recv(sock, zmq.NOBLOCK, channel="registration")
            except (zmq.Again, MessageRejected):
                continue
            if reply.parent_header.get("msg_id") == msg.msg_id:
                engines = reply.content.get("engines")
                return engines if isinstance(engines, dict) else None
        return None

    def _look_at_child(self, session: Session, sock: zmq.Socket[Any], child: subprocess.Popen[bytes]) -> None:
        if self.memory_limit is not None and self._kill_reason is None:
            rss = _rss(child.pid)
            if rss is not None and rss > self.memory_limit:
                self._kill_reason = (
                    f"memory limit exceeded ({rss / 2**20:.0f} MB resident, limit {self.memory_limit / 2**20:.0f} MB)"
                )
                log.error("engine %s: %s; killing it", self.engine_id, self._kill_reason)
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                return
        self._read_id()

    def _read_id(self) -> None:
        # the id the hub gave the engine, as the engine wrote it: a restart asks for the same one
        try:
            data = os.read(self._id_pipe, 64)
        except (BlockingIOError, OSError):
            return
        text = data.decode("ascii", errors="replace").strip()
        if text.isdigit():
            self.engine_id = int(text)

    def _run_child(self, session: Session, sock: zmq.Socket[Any]) -> int:
        env = dict(os.environ)
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        saved = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        # the child writes its engine id here once registered (read for restarts)
        self._id_pipe, id_w = os.pipe()
        os.set_blocking(self._id_pipe, False)
        env[SUPERVISOR_ID_FD_ENV] = str(id_w)
        try:
            try:
                self._child = subprocess.Popen(
                    [sys.executable, "-m", "corral.engine", *self.child_args],
                    stdin=subprocess.DEVNULL,
                    env=env,
                    pass_fds=(id_w,),
                )
            finally:
                os.close(id_w)
            log.debug("engine child %d started", self._child.pid)
            if self._terminating_since is not None:  # told to stop while starting it
                self._child.send_signal(signal.SIGTERM)
            while True:
                try:
                    return self._child.wait(timeout=_TICK)
                except subprocess.TimeoutExpired:
                    pass
                self._look_at_child(session, sock, self._child)
                since = self._terminating_since
                if since is not None and time.monotonic() - since > self.kill_timeout:
                    log.warning("the engine did not stop within %s s of SIGTERM; killing it", self.kill_timeout)
                    self._child.kill()
                    self._terminating_since = None
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
            self._read_id()
            os.close(self._id_pipe)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        child = self._child
        log.info("%s received; stopping the engine", signal_name(signum))
        if self._terminating_since is None:
            self._terminating_since = time.monotonic()
        if child is None or child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)


def _rss(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes (None where /proc does not tell)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
