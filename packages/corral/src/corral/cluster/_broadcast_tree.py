"""The controller's broadcast scheduler processes: started level by level, watched, stopped.

Each node of a :class:`~corral.scheduler.broadcast.TreeShape` below the root runs as
``python -m corral.scheduler.broadcast_node`` (that module documents the settings line it
reads and the port line it answers). The controller holds each node's standard input open as
a lifeline, so a node never outlives it, even when the controller is killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from corral.scheduler.broadcast import TreeShape
from corral.wire.protocol import DEFAULT_BUFFER_FRAME_SIZE

__all__ = ["BroadcastTree"]

log = logging.getLogger(__name__)

#: Seconds a level of nodes may take to start (interpreter start-up on a busy machine).
START_TIMEOUT = 60.0
#: Seconds a node has to exit after its lifeline is closed and SIGTERM, before SIGKILL.
STOP_TIMEOUT = 5.0
#: A node that dies is started again on its port at most this many times a minute.
MAX_RESTARTS = 3


def _local(ip: str) -> str:
    """The address a process on this host connects to, for a controller bound to ``ip``."""
    if ip in ("0.0.0.0", "*", ""):
        return "127.0.0.1"
    if ip == "::":
        return "::1"
    return ip


def _url(ip: str, port: int) -> str:
    host = _local(ip)
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


class BroadcastTree:
    """Start, watch and stop the node processes of a broadcast tree.

    Parameters
    ----------
    shape
        The tree (``shape.depth >= 1``).
    key, signature_scheme
        The cluster's key (hex) and scheme, handed to each node through its standard input.
    ip
        The controller's address; nodes bind it too (engines reach their leaf there).
    root_port
        The controller's ``broadcast_engine`` port, which the first level connects to.
    curve_public_key
        The controller's CurveZMQ public key when CurveZMQ is on; nodes then use the same
        derived keys as the controller's sockets.
    max_frame_size
        The frame limit of the nodes' listening sockets, as on the controller's data channels.
    """

    #: seconds between checks that every node process still runs
    check_period = 1.0

    def __init__(
        self,
        shape: TreeShape,
        *,
        key: str,
        signature_scheme: str,
        ip: str,
        root_port: int,
        curve_public_key: str | None = None,
        max_frame_size: int = DEFAULT_BUFFER_FRAME_SIZE,
    ) -> None:
        if shape.depth < 1:
            raise ValueError("a broadcast tree needs depth >= 1")
        self.shape = shape
        self.key = key
        self.signature_scheme = signature_scheme
        self.ip = ip
        self.root_port = root_port
        self.curve_public_key = curve_public_key
        self.max_frame_size = max_frame_size
        #: (level, index) -> the node's process
        self.processes: dict[tuple[int, int], subprocess.Popen[str]] = {}
        #: (level, index) -> the port its children connect to
        self.ports: dict[tuple[int, int], int] = {}
        self._given_up: set[tuple[int, int]] = set()
        self._restarts: dict[tuple[int, int], list[float]] = {}

    def leaf_port(self, leaf: int) -> int:
        """The port engines served by ``leaf`` connect their broadcast socket to."""
        return self.ports[(self.shape.depth, leaf)]

    @property
    def pids(self) -> list[int]:
        """The node processes' pids."""
        return [p.pid for p in self.processes.values()]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start every node, a level at a time, and wait until each has bound its port.

        Raises
        ------
        OSError
            If a node cannot be started or does not report its port within ``timeout`` seconds
            (everything started is stopped again).
        """
        try:
            for level in range(1, self.shape.depth + 1):
                started = {}
                for index in range(self.shape.nodes(level)):
                    started[(level, index)] = self._spawn(level, index)
                deadline = time.monotonic() + timeout
                for place, proc in started.items():
                    self.ports[place] = self._read_port(place, proc, deadline)
        except BaseException:
            self.stop()
            raise
        log.info("broadcast tree: %d node process(es), %d leaves", len(self.processes), self.shape.leaves)

    def _spawn(self, level: int, index: int, port: int = 0) -> subprocess.Popen[str]:
        parent_port = self.root_port if level == 1 else self.ports[(level - 1, index // self.shape.fanout)]
        config = {
            "key": self.key,
            "signature_scheme": self.signature_scheme,
            "curve": self.curve_public_key is not None,
            "curve_public_key": self.curve_public_key,
            "ip": self.ip,
            "port": port,
            "parent": _url(self.ip, parent_port),
            "depth": self.shape.depth,
            "fanout": self.shape.fanout,
            "level": level,
            "index": index,
            "max_frame_size": self.max_frame_size,
        }
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "corral.scheduler.broadcast_node"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                close_fds=True,
            )
        except OSError as err:
            raise OSError(f"cannot start broadcast node {level}-{index}: {err}") from None
        self.processes[(level, index)] = proc
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config) + "\n")
        proc.stdin.flush()
        return proc

    def _read_port(self, place: tuple[int, int], proc: subprocess.Popen[str], deadline: float) -> int:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        line = ""
        while not line.endswith("\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError(
                    f"broadcast node {place[0]}-{place[1]} (pid {proc.pid}) did not start within "
                    f"{START_TIMEOUT:g} s; the machine may be overloaded (see its messages above)"
                )
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 4096).decode()
            if not chunk:
                raise OSError(
                    f"broadcast node {place[0]}-{place[1]} exited with status {proc.wait(STOP_TIMEOUT)} "
                    "before binding its port (its error is printed above)"
                )
            line += chunk
        try:
            port = json.loads(line)["port"]
        except (ValueError, KeyError, TypeError):
            raise OSError(f"broadcast node {place[0]}-{place[1]} answered {line!r}, not its port") from None
        return int(port)

    def check(
        self, on_lost: Callable[[int, int, str], Any], on_restarted: Callable[[int, int], Any] | None = None
    ) -> None:
        """Report each node process that exited since the last check, and start it again.

        ``on_lost(level, index, why)`` is called first (the root fails what the node's engines
        owe), then the node is started again on its port, where its children reconnect by
        themselves, and ``on_restarted(level, index)`` is called. A node that died
        :data:`MAX_RESTARTS` times within a minute is left dead.
        """
        now = time.monotonic()
        for place, proc in list(self.processes.items()):
            if place in self._given_up:
                continue
            code = proc.poll()
            if code is None:
                continue
            _close_pipes(proc)
            why = f"broadcast scheduler node {place[0]}-{place[1]} (pid {proc.pid}) exited with status {code}"
            on_lost(place[0], place[1], why)
            recent = [t for t in self._restarts.get(place, []) if now - t < 60]
            if len(recent) >= MAX_RESTARTS:
                log.error(
                    "%s; it died %d times within a minute and is not started again: "
                    "the engines below it get no more broadcasts",
                    why,
                    len(recent) + 1,
                )
                self._given_up.add(place)
                continue
            self._restarts[place] = [*recent, now]
            log.error("%s; starting it again on port %d", why, self.ports[place])
            try:
                self.processes[place] = self._spawn(place[0], place[1], port=self.ports[place])
            except OSError as err:
                log.error("%s", err)
                self._given_up.add(place)
                continue
            if on_restarted is not None:
                on_restarted(place[0], place[1])

    def stop(self) -> None:
        """Stop every node: close its lifeline, SIGTERM, and SIGKILL what is left after a while."""
        for proc in self.processes.values():
            _close_pipes(proc)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self.processes.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("broadcast node pid %d did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait(STOP_TIMEOUT)


def _close_pipes(proc: subprocess.Popen[str]) -> None:
    """Close a node's lifeline and output pipe (it stops when its lifeline closes)."""
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
