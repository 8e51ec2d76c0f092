"""Make a supervised engine die with its supervisor.

On Linux the kernel does it: ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` asks for SIGTERM when the
parent exits, and SIGTERM stops the engine cleanly. Elsewhere (or if ``prctl`` is refused) a
daemon thread polls ``os.getppid()`` once a second and sends the engine SIGTERM when the parent
has changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from typing import Final

from corral.engine.signals import block_in_this_thread

__all__ = ["SUPERVISOR_ID_FD_ENV", "SUPERVISOR_PID_ENV", "die_with_parent"]

log = logging.getLogger(__name__)

#: Environment variable the supervisor sets to its pid for the engine it starts.
SUPERVISOR_PID_ENV: Final = "CORRAL_ENGINE_SUPERVISOR_PID"

#: The pipe (a file descriptor number) on which a supervised engine tells its supervisor the
#: engine id the hub gave it, one decimal line, so that a restart can ask for the same id.
SUPERVISOR_ID_FD_ENV: Final = "CORRAL_ENGINE_SUPERVISOR_ID_FD"

_PR_SET_PDEATHSIG: Final = 1
_POLL_SECONDS: Final = 1.0


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError) as err:
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable: %s", err)
        return False


def _watch(parent: int) -> None:
    block_in_this_thread()
    while os.getppid() == parent:
        time.sleep(_POLL_SECONDS)
    log.warning("the supervisor (pid %d) is gone; stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def die_with_parent(parent: int | None = None) -> bool:
    """Arrange for SIGTERM to reach this process when its parent process exits.

    Parameters
    ----------
    parent
        The expected parent pid (default: the current parent).

    Returns
    -------
    bool
        False if the parent is already gone (the caller should stop), True otherwise.
    """
    if parent is None:
        parent = os.getppid()
    armed = _prctl_pdeathsig(signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        return False
    if not armed:
        threading.Thread(target=_watch, args=(parent,), name="corral-engine-lifeline", daemon=True).start()
    return True
