"""Run a command and stop it when the launching Python process dies.

``python -m corral.launchers._guard [--hold-stdin] COMMAND [ARG...]``

``mpiexec`` and ``ssh`` do not hand an open pipe on to the programs they start, so the
lifeline (:mod:`corral.wire.lifeline`) cannot reach an MPI rank or a remote engine. This small
process holds the lifeline instead: it runs the command as its child, passes SIGTERM and SIGINT
on to it, and when the lifeline closes it terminates the child (``mpiexec`` then stops its
ranks, ``ssh`` closes the remote session), killing the whole process group after a grace
period. It exits with the child's exit code (128 + signal number for a signal).

With ``--hold-stdin`` the command's standard input is a pipe this process holds open and never
writes to: ``ssh`` forwards it, so a remote engine reading it as its lifeline
(``CORRAL_LIFELINE_FD=0``) stops when this process, or the ssh session, ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from corral.wire.lifeline import watch_lifeline

__all__ = ["main"]

#: seconds between asking the command to stop and killing the process group
GRACE_SECONDS = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` under the lifeline; return its exit code."""
    cmd = list(sys.argv[1:] if argv is None else argv)
    hold_stdin = bool(cmd) and cmd[0] == "--hold-stdin"
    if hold_stdin:
        cmd = cmd[1:]
    if not cmd:
        print("usage: python -m corral.launchers._guard [--hold-stdin] COMMAND [ARG...]", file=sys.stderr)
        return 2
    lost = threading.Event()
    # popped from the environment here, so the command does not inherit it
    watch_lifeline(on_loss=lost.set)
    try:
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE if hold_stdin else None)
    except OSError as err:
        print(f"cannot run {cmd[0]}: {err.strerror}", file=sys.stderr)
        return 127

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while child.poll() is None:
        if lost.wait(0.2):
            child.terminate()
            try:
                child.wait(GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.killpg(0, signal.SIGKILL)
            break
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
