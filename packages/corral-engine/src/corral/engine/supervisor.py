"""The supervisor: a small parent process that reports how its engine ended.

``python -m corral.engine`` starts this parent by default. It spawns the real engine
(``sys.executable -m corral.engine ... --no-supervisor --uuid U --supervised``), waits for it,
and when it exits sends ``engine_exit`` (``uuid``, ``exit_code`` or ``signal``) to the hub on the
``registration`` channel, so that the hub learns at once that the engine died and how (for
example ``SIGKILL``) instead of waiting for heartbeats to stop. It then exits with the engine's
code (128 + the signal number if the engine was killed by a signal).

SIGTERM, SIGINT and SIGHUP to the supervisor are passed on to the engine as SIGTERM, which stops
it cleanly; an engine that does not stop within ``kill_timeout`` seconds is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any, Final

import zmq

from corral.engine.lifeline import SUPERVISOR_PID_ENV
from corral.engine.signals import signal_name
from corral.wire import ConnectionInfo, Session, channel_url, harden
from corral.wire.gate import admit

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)

_FORWARDED: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# ms the engine_exit message may wait to leave when the supervisor closes its socket
_REPORT_LINGER_MS: Final = 2000


class Supervisor:
    """Run an engine child process and report its exit to the hub.

    Parameters
    ----------
    info
        The connection info (the hub's address and the key).
    uuid
        The uuid the child engine registers with.
    child_args
        Arguments after ``python -m corral.engine`` for the child.
    kill_timeout
        Seconds the child has to stop after SIGTERM before it is killed.
    """

    def __init__(self, info: ConnectionInfo, uuid: str, child_args: Sequence[str], kill_timeout: float = 10.0) -> None:
        self.info = info
        self.uuid = uuid
        self.child_args = list(child_args)
        self.kill_timeout = kill_timeout
        self._terminating_since: float | None = None
        self._child: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        """Start the child, wait for it, report its exit; return the code to exit with.

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
            returncode = self._run_child()
            exit_code, sig = (None, signal_name(-returncode)) if returncode < 0 else (returncode, None)
            content = {"uuid": self.uuid, "exit_code": exit_code, "signal": sig}
            log.info("engine %s ended (%s); reporting to the hub", self.uuid, sig or f"exit code {exit_code}")
            try:
                session.send(sock, "engine_exit", content)
            except zmq.ZMQError as err:
                log.warning("could not report the engine's exit to the hub: %s", err)
            return 128 - returncode if returncode < 0 else returncode
        finally:
            sock.close(linger=_REPORT_LINGER_MS)
            context.term()

    def _run_child(self) -> int:
        env = dict(os.environ)
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        saved = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "corral.engine", *self.child_args],
                stdin=subprocess.DEVNULL,
                env=env,
            )
            log.debug("engine child %d started", self._child.pid)
            if self._terminating_since is not None:  # told to stop while starting it
                self._child.send_signal(signal.SIGTERM)
            while True:
                try:
                    return self._child.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    pass
                since = self._terminating_since
                if since is not None and time.monotonic() - since > self.kill_timeout:
                    log.warning("the engine did not stop within %s s of SIGTERM; killing it", self.kill_timeout)
                    self._child.kill()
                    self._terminating_since = None
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        child = self._child
        log.info("%s received; stopping the engine", signal_name(signum))
        if self._terminating_since is None:
            self._terminating_since = time.monotonic()
        if child is None or child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
