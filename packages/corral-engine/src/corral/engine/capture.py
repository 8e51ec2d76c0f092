"""Capture what user code writes to ``sys.stdout``/``sys.stderr``, per thread.

An engine replaces neither stream outright: it installs a :class:`ThreadRoutedStream` proxy on
``sys.stdout`` and ``sys.stderr`` that sends writes made *by the engine's execution thread* to
the running request (:class:`RequestOutput`), and everything else to the stream that was there
before. So an engine embedded in an application captures its requests' output and leaves the
application's own output where it was.

Output written by threads that user code starts goes to the original streams: only the thread
that runs requests is routed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final, TextIO

__all__ = [
    "OUTPUT_CAP",
    "RequestOutput",
    "Sink",
    "ThreadRoutedStream",
    "ensure_installed",
    "route_thread",
    "unroute_thread",
]

#: Characters of each stream kept for a reply's metadata (1 MiB of ASCII text).
OUTPUT_CAP: Final = 1024 * 1024

#: Where a routed thread's writes go: ``sink(stream_name, text)``.
Sink = Callable[[str, str], None]

_STREAMS: Final = ("stdout", "stderr")
_routes: dict[int, Sink] = {}
_lock = threading.Lock()


class ThreadRoutedStream:
    """A stand-in for ``sys.stdout``/``sys.stderr`` that routes writes by thread.

    Parameters
    ----------
    name
        ``"stdout"`` or ``"stderr"``.
    original
        The stream that was installed before; unrouted threads write there (may be None, as
        under ``pythonw``, in which case their output is dropped).
    """

    def __init__(self, name: str, original: TextIO | None) -> None:
        self._stream_name = name
        self._original = original

    @property
    def original(self) -> TextIO | None:
        """The stream this proxy passes unrouted writes to."""
        return self._original

    def write(self, text: str) -> int:
        """Write ``text`` to the calling thread's sink, or to the original stream.

        Raises
        ------
        TypeError
            If ``text`` is not a str (as a real text stream does).
        """
        sink = _routes.get(threading.get_ident())
        if sink is None:
            if self._original is None:
                return len(text)
            return self._original.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        sink(self._stream_name, text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each string of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the original stream (routed output is flushed by the engine)."""
        if threading.get_ident() not in _routes and self._original is not None:
            self._original.flush()

    def isatty(self) -> bool:
        """Return False for routed threads (output goes to a client), else the original's answer."""
        if threading.get_ident() in _routes or self._original is None:
            return False
        return self._original.isatty()

    def writable(self) -> bool:
        """Return True: the stream accepts writes."""
        return True

    def __getattr__(self, name: str) -> Any:
        # encoding, errors, buffer, fileno, ...: whatever the original stream offers
        if self._original is None:
            raise AttributeError(name)
        return getattr(self._original, name)


def ensure_installed() -> None:
    """Install the proxies on ``sys.stdout`` and ``sys.stderr`` unless they are there already.

    Called before each request, so that a proxy another program replaced (a test runner
    swapping its capture in and out) is put back in front of the new stream.
    """
    for name in _STREAMS:
        current = getattr(sys, name)
        if not isinstance(current, ThreadRoutedStream):
            setattr(sys, name, ThreadRoutedStream(name, current))


def _uninstall() -> None:
    for name in _STREAMS:
        current = getattr(sys, name)
        while isinstance(current, ThreadRoutedStream):
            current = current.original
        # only unwrap our own proxy; a stream someone installed over it stays
        if isinstance(getattr(sys, name), ThreadRoutedStream):
            setattr(sys, name, current)


def route_thread(ident: int, sink: Sink) -> None:
    """Send what thread ``ident`` writes to ``sys.stdout``/``sys.stderr`` to ``sink``."""
    with _lock:
        _routes[ident] = sink
        ensure_installed()


def unroute_thread(ident: int) -> None:
    """Stop routing thread ``ident``; the proxies are removed once no thread is routed."""
    with _lock:
        _routes.pop(ident, None)
        if not _routes:
            _uninstall()


class RequestOutput:
    """What one request wrote: kept for the reply (up to a cap) and passed on for streaming.

    Parameters
    ----------
    forward
        Called with ``(stream_name, text)`` for every write, e.g. to stream it on iopub.
    cap
        Characters of each stream to keep; the rest is counted and noted in :meth:`text`.
    """

    def __init__(self, forward: Sink | None = None, cap: int = OUTPUT_CAP) -> None:
        self._forward = forward
        self._cap = cap
        self._parts: dict[str, list[str]] = {name: [] for name in _STREAMS}
        self._kept: dict[str, int] = dict.fromkeys(_STREAMS, 0)
        self._dropped: dict[str, int] = dict.fromkeys(_STREAMS, 0)
        #: display data the request published (``{"data": ..., "metadata": ...}``), in order
        self.outputs: list[dict[str, Any]] = []
        self.wrote = False

    def write(self, name: str, text: str) -> None:
        """Record ``text`` written to stream ``name`` and forward it."""
        if not text:
            return
        self.wrote = True
        room = self._cap - self._kept[name]
        if room >= len(text):
            self._parts[name].append(text)
            self._kept[name] += len(text)
        else:
            if room > 0:
                self._parts[name].append(text[:room])
                self._kept[name] += room
            self._dropped[name] += len(text) - max(room, 0)
        if self._forward is not None:
            self._forward(name, text)

    def text(self, name: str) -> str:
        """Return everything kept of stream ``name``, with a note if some was cut."""
        kept = "".join(self._parts[name])
        dropped = self._dropped[name]
        if dropped:
            kept += (
                f"\n[corral: {name} cut at {self._cap} characters; {dropped} more were written "
                "and streamed on iopub but are not kept here]\n"
            )
        return kept
