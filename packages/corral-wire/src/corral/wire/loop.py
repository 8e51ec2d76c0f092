"""A small poll loop for corral processes: sockets, timers, and wake-ups from other threads.

The controller (hub and schedulers), the engine and the client's IO thread each run one
:class:`Reactor`. It is a plain ``zmq.Poller`` loop rather than asyncio because routing is the
hot path: a readable socket's handler drains it in one go, with no per-message task or future.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

__all__ = ["Reactor", "Timer"]

log = logging.getLogger(__name__)


class Timer:
    """A scheduled call; :meth:`cancel` stops it (and every later repetition)."""

    __slots__ = ("args", "callback", "cancelled", "period", "when")

    def __init__(self, when: float, period: float | None, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.period = period
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not call this timer again."""
        self.cancelled = True


class Reactor:
    """Dispatch readable sockets and due timers until stopped.

    Parameters
    ----------
    context
        The ZeroMQ context for the wake-up sockets (the global instance by default).

    Examples
    --------
    >>> r = Reactor()
    >>> t = r.call_later(0.01, r.stop)
    >>> r.run(timeout=5)
    True
    """

    def __init__(self, context: zmq.Context[Any] | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self._poller = zmq.Poller()
        # what the poller reports (a zmq socket, or a file descriptor number) -> (handler, object)
        self._handlers: dict[Any, tuple[Callable[[Any], None], Any]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._running = False
        self._stopped = threading.Event()
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        url = f"inproc://corral-reactor-wake-{id(self)}-{next(_instances)}"
        self._wake_rx = self.context.socket(zmq.PULL)
        self._wake_rx.setsockopt(zmq.LINGER, 0)
        self._wake_rx.bind(url)
        self._wake_tx = self.context.socket(zmq.PUSH)
        self._wake_tx.setsockopt(zmq.LINGER, 0)
        self._wake_tx.connect(url)
        self._wake_lock = threading.Lock()
        self.add_socket(self._wake_rx, self._drain_calls)

    # -- registration ----------------------------------------------------------------------

    def add_socket(self, socket: Any, handler: Callable[[Any], None]) -> None:
        """Call ``handler(socket)`` whenever ``socket`` is readable; it should drain the socket.

        ``socket`` may be a zmq socket, a file descriptor, or anything with ``fileno()`` (the
        handler gets that object).
        """
        self._handlers[_key(socket)] = (handler, socket)
        self._poller.register(socket, zmq.POLLIN)

    def remove_socket(self, socket: Any) -> None:
        """Stop watching ``socket`` (does not close it)."""
        if self._handlers.pop(_key(socket), None) is not None:
            self._poller.unregister(socket)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call ``callback(*args)`` once, ``delay`` seconds from now (loop thread only)."""
        timer = Timer(time.monotonic() + max(0.0, delay), None, callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def call_every(self, period: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Call ``callback(*args)`` every ``period`` seconds, first after one period.

        Raises
        ------
        ValueError
            If ``period`` is not positive.
        """
        if period <= 0:
            raise ValueError(f"period must be positive, not {period}")
        timer = Timer(time.monotonic() + period, period, callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` in the loop thread as soon as possible; safe from any thread."""
        self._calls.append((callback, args))
        with self._wake_lock:
            try:
                self._wake_tx.send(b"", zmq.NOBLOCK)
            except zmq.Again:  # the loop is already far behind on wake-ups; it will drain the deque
                pass
            except zmq.ZMQError:  # closed: the loop is gone
                pass

    def _drain_calls(self, socket: Any) -> None:
        while True:
            try:
                socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        while self._calls:
            callback, args = self._calls.popleft()
            self._invoke(callback, args)

    # -- running ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while :meth:`run` is dispatching."""
        return self._running

    def stop(self) -> None:
        """Make :meth:`run` return after the current dispatch; safe from any thread."""
        self._running = False
        self._stopped.set()
        self.call_soon_threadsafe(lambda: None)

    def _invoke(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except Exception:
            # a failing handler must not take the whole process down; it is a bug to report
            log.exception("error in %r", callback)

    def _run_timers(self) -> float | None:
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            if timer.period is not None:
                timer.when = max(timer.when + timer.period, now)
                heapq.heappush(timers, (timer.when, next(self._seq), timer))
            self._invoke(timer.callback, timer.args)
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        if not timers:
            return None
        return max(0.0, timers[0][0] - time.monotonic())

    def run(self, timeout: float | None = None) -> bool:
        """Dispatch until :meth:`stop` is called or ``timeout`` seconds pass.

        Returns
        -------
        bool
            True if stopped, False if the timeout ran out.
        """
        self._running = True
        self._stopped.clear()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._running:
                wait = self._run_timers()
                if not self._running:
                    break
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = left if wait is None else min(wait, left)
                events = self._poller.poll(None if wait is None else int(wait * 1000))  # pyzmq truncates floats alike
                for socket, _ in events:
                    entry = self._handlers.get(socket)
                    if entry is not None:
                        self._invoke(entry[0], (entry[1],))
            return True
        finally:
            self._running = False

    def close(self) -> None:
        """Close the wake-up sockets; registered sockets are left to their owners."""
        self._poller.unregister(self._wake_rx)
        self._handlers.pop(_key(self._wake_rx), None)
        with self._wake_lock:
            self._wake_tx.close(linger=0)
        self._wake_rx.close(linger=0)


_instances = itertools.count()


def _key(socket: Any) -> Any:
    # zmq.Poller reports zmq sockets (and plain ints) as registered, other objects by fileno()
    if isinstance(socket, (zmq.Socket, int)):
        return socket
    return socket.fileno()
