"""Progress bars for :meth:`AsyncResult.wait_interactive`: done/total, rate and elapsed time.

Three kinds, chosen by where the process runs and what is installed:

- in a Jupyter kernel with ipywidgets and tqdm: a widget (``tqdm.notebook``);
- elsewhere with tqdm (the ``progress`` extra of corral-client): tqdm's text bar;
- without tqdm: one plain line, rewritten in place, ``12/40 tasks done, 3.1/s, 4 s elapsed``.

None of them imports IPython unless the process is a Jupyter kernel already.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

from corral.client._outputs import ipython_shell

__all__ = ["PlainBar", "ProgressBar", "make_bar"]


class ProgressBar(Protocol):
    """What :func:`make_bar` returns: a counter shown as a bar."""

    def update(self, n: int) -> Any:
        """Add ``n`` to the count shown."""

    def close(self) -> Any:
        """Show the final state and release the display."""


class PlainBar:
    """A progress line without dependencies, rewritten in place (``\\r``) when ``file`` is a terminal.

    Parameters
    ----------
    total
        How many items there are.
    desc
        What the items are, e.g. ``"tasks"``.
    file
        Where to write (default: ``sys.stdout`` at each write).
    min_interval
        Seconds between two lines when ``file`` is not a terminal (each is a new line there).
    """

    def __init__(self, total: int, desc: str = "tasks", file: TextIO | None = None, min_interval: float = 1.0) -> None:
        self.total = total
        self.desc = desc
        self.n = 0
        self._file = file
        self._start = time.monotonic()
        self._last = 0.0
        self._last_n = -1
        self._min_interval = min_interval
        self._closed = False
        self._write(force=True)

    @property
    def _out(self) -> TextIO:
        return self._file if self._file is not None else sys.stdout

    def _line(self) -> str:
        elapsed = time.monotonic() - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        return f"{self.n}/{self.total} {self.desc} done, {rate:.1f}/s, {elapsed:.0f} s elapsed"

    def _write(self, force: bool = False) -> None:
        out = self._out
        tty = bool(getattr(out, "isatty", lambda: False)())
        now = time.monotonic()
        if tty:
            out.write("\r" + self._line())
        elif force or now - self._last >= self._min_interval:
            out.write(self._line() + "\n")
        else:
            return
        self._last = now
        self._last_n = self.n
        out.flush()

    def update(self, n: int) -> None:
        """Add ``n`` to the count and show it."""
        if n:
            self.n += n
            self._write()

    def close(self) -> None:
        """Write the final line (once)."""
        if self._closed:
            return
        self._closed = True
        out = self._out
        if bool(getattr(out, "isatty", lambda: False)()):
            out.write("\r" + self._line() + "\n")
        elif self._last_n != self.n:  # a file or a notebook: the last line is not repeated
            out.write(self._line() + "\n")
        out.flush()


def _in_jupyter_kernel() -> bool:
    shell = ipython_shell()
    return shell is not None and "ipykernel" in sys.modules and type(shell).__name__ == "ZMQInteractiveShell"


def make_bar(total: int, desc: str = "tasks", kind: str = "auto") -> ProgressBar:
    """Return a progress bar of ``total`` items: ``kind`` is ``"auto"``, ``"widget"``, ``"tqdm"`` or ``"plain"``.

    ``"auto"`` picks a widget in a Jupyter kernel that has ipywidgets and tqdm, tqdm's text bar
    where tqdm is installed, and :class:`PlainBar` otherwise. An explicit kind that cannot be
    made falls back the same way.

    Raises
    ------
    ValueError
        If ``kind`` is not one of the four names.
    """
    if kind not in ("auto", "widget", "tqdm", "plain"):
        raise ValueError(f"kind must be 'auto', 'widget', 'tqdm' or 'plain', not {kind!r}")
    if kind in ("auto", "widget") and (kind == "widget" or _in_jupyter_kernel()):
        try:
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(total=total, desc=desc, unit=desc.rstrip("s") or "it")  # type: ignore[no-any-return]
        except Exception:  # no ipywidgets (tqdm raises ImportError) or no front end: text bars
            pass
    if kind in ("auto", "widget", "tqdm"):
        try:
            from tqdm import tqdm as text_tqdm
        except ImportError:
            pass
        else:
            return text_tqdm(total=total, desc=desc, unit=desc.rstrip("s") or "it", file=sys.stdout)  # type: ignore[no-any-return]
    return PlainBar(total, desc)
