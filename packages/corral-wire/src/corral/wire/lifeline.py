"""Die with the launcher: a pipe whose other end the launching process holds.

A launcher that starts a controller or engine on behalf of a script (``Cluster``) creates a
pipe, keeps the write end, and passes the read end's number in ``CORRAL_LIFELINE_FD``. The
child reads from it in a daemon thread; when the launcher exits for any reason (even SIGKILL)
the kernel closes the write end, the read returns end-of-file, and the child stops itself.

Unlike ``prctl(PR_SET_PDEATHSIG)``, this does not fire when the *thread* that started the
child ends, so launching from a worker thread (as sync wrappers in Jupyter do) is safe.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Final

__all__ = ["LIFELINE_ENV", "watch_lifeline"]

log = logging.getLogger(__name__)

#: The environment variable holding the lifeline's read-end file descriptor.
LIFELINE_ENV: Final = "CORRAL_LIFELINE_FD"


def _default_on_loss() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def watch_lifeline(on_loss: Callable[[], None] | None = None) -> bool:
    """Start watching the lifeline named in the environment, if any.

    Parameters
    ----------
    on_loss
        Called (in the watcher thread) when the launcher is gone; by default this process
        sends itself SIGTERM, which corral programs handle as a clean stop.

    Returns
    -------
    bool
        True if a lifeline is being watched.

    Raises
    ------
    ValueError
        If ``CORRAL_LIFELINE_FD`` is set but is not a file descriptor number.
    """
    value = os.environ.pop(LIFELINE_ENV, None)  # children of this process must not inherit it
    if value is None:
        return False
    try:
        fd = int(value)
    except ValueError:
        raise ValueError(f"{LIFELINE_ENV}={value!r} is not a file descriptor number") from None
    try:
        os.fstat(fd)
    except OSError:
        log.warning("lifeline fd %d is not open; not watching the launcher", fd)
        return False
    callback = on_loss or _default_on_loss

    def watch() -> None:
        while True:
            try:
                if not os.read(fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        log.warning("the process that launched this one is gone; stopping")
        callback()

    threading.Thread(target=watch, name="corral-lifeline", daemon=True).start()
    return True
