"""Signals in an engine: interrupting user code, stopping, and keeping helper threads deaf.

POSIX delivers a signal sent to a process to any thread that does not block it, but Python runs
handlers only in the main thread, and a main thread blocked in ``time.sleep`` only wakes if the
signal reaches *it*. So every helper thread the engine starts blocks SIGINT and SIGTERM
(:func:`block_in_this_thread`), leaving the main thread, which runs user code in an engine
process, to receive them.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Final

__all__ = [
    "EngineStopping",
    "SignalHandlers",
    "UserCodeGuard",
    "block_in_this_thread",
    "parse_signal",
    "signal_name",
]

log = logging.getLogger(__name__)

_BLOCKED: Final = frozenset({signal.SIGINT, signal.SIGTERM})


class EngineStopping(BaseException):
    """Raised into running user code when the engine process is told to stop (SIGTERM)."""


def block_in_this_thread() -> None:
    """Block SIGINT and SIGTERM in the calling (helper) thread, where the platform allows it."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)


def parse_signal(value: Any) -> signal.Signals:
    """Return the signal named or numbered by ``value`` (``2``, ``"SIGINT"``, ``"INT"``).

    Raises
    ------
    ValueError
        If ``value`` names or numbers no signal of this platform.
    """
    if value is None:
        return signal.SIGINT
    if isinstance(value, bool):
        raise ValueError(f"not a signal: {value!r}")
    if isinstance(value, int):
        try:
            return signal.Signals(value)
        except ValueError:
            raise ValueError(f"no signal number {value} on this platform") from None
    if isinstance(value, str):
        name = value.strip().upper()
        if name.isdigit():
            return parse_signal(int(name))
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            return signal.Signals[name]
        except KeyError:
            raise ValueError(f"no signal named {value!r} on this platform") from None
    raise ValueError(f"a signal is a number or a name, not {type(value).__name__}")


def signal_name(number: int) -> str:
    """Return the name of signal ``number`` (``"SIGKILL"``), or ``"SIG<number>"`` if unknown."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


class UserCodeGuard:
    """Know whether user code is running, so that a signal interrupts it and nothing else."""

    def __init__(self) -> None:
        self.running = False

    @contextmanager
    def user_code(self) -> Iterator[None]:
        """Mark the body as user code: SIGINT raises ``KeyboardInterrupt`` inside it."""
        self.running = True
        try:
            yield
        finally:
            self.running = False


class SignalHandlers:
    """Install SIGINT and SIGTERM handlers for an engine serving in the main thread.

    SIGINT raises ``KeyboardInterrupt`` in running user code and is ignored (logged) while the
    engine waits for work, so an interrupt never stops the engine itself. SIGTERM calls
    ``on_terminate`` and, if user code is running, raises :class:`EngineStopping` into it.

    Parameters
    ----------
    guard
        Tells whether user code is running.
    on_terminate
        Called (in the main thread, from the handler) when SIGTERM arrives.

    Raises
    ------
    RuntimeError
        From :meth:`install`, if not called in the main thread.
    """

    def __init__(self, guard: UserCodeGuard, on_terminate: Callable[[str], None]) -> None:
        self._guard = guard
        self._on_terminate = on_terminate
        self._saved: dict[int, Any] = {}

    def install(self) -> None:
        """Install the handlers, remembering the previous ones.

        Raises
        ------
        RuntimeError
            If the calling thread is not the main thread.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")
        self._saved[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_sigint)
        self._saved[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_sigterm)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for signum, handler in self._saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._saved.clear()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._guard.running:
            raise KeyboardInterrupt
        log.info("SIGINT while no request is running: nothing to interrupt")

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._on_terminate("SIGTERM received")
        if self._guard.running:
            raise EngineStopping("the engine is stopping (SIGTERM)")
