"""Run the session of docs/magics.md in a real terminal IPython shell and print its transcript.

Usage::

    CORRAL_DIR=$(mktemp -d) IPYTHONDIR=$(mktemp -d) python docs/examples/magics_session.py

Each cell is echoed as IPython's prompt shows it, then run with ``run_cell`` by the same
``TerminalInteractiveShell`` class the ``ipython`` command uses, so what follows each prompt is
IPython's real output. The one cell that sleeps for 30 seconds is interrupted after 2 seconds
by a real SIGINT to the main thread, as pressing Ctrl-C does.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from IPython.terminal.interactiveshell import TerminalInteractiveShell
from traitlets.config import Config

CELLS = [
    "from corral.cluster import Cluster",
    'cluster = Cluster(n=4, cluster_id="demo")',
    "rc = cluster.start_and_connect_sync()",
    "rc[:].activate()",
    "%px import os",
    '%px print(f"engine pid {os.getpid()}")',
    "%%px --targets ::2\nx = 6 * 7\nx",
    "%px 1 / 0",
    '%px --noblock import time; time.sleep(1); "slept"',
    "%pxresult",
    "%autopx",
    'y = os.getpid() % 2\nprint("parity", y)',
    "%autopx",
    'rc[1::2].activate("_odd")',
    "%px_odd y",
    '%%px --group-outputs=engine --targets 0,1\nimport sys\nprint("to stdout")\n'
    'print("to stderr", file=sys.stderr)\ndisplay("shown with display()")',
    '%%px --stream --targets 0,1\nfor i in range(3):\n    print("step", i, flush=True)\n    time.sleep(0.5)',
    "%px time.sleep(30)",
    '%px "still serving"',
    'ar = rc[:].apply_async(lambda: __import__("time").sleep(1))',
    'ar.wait_interactive(kind="plain")',
    "cluster.stop_cluster_sync()",
]

INTERRUPTED = "%px time.sleep(30)"


def press_ctrl_c_after(seconds: float) -> None:
    """Send SIGINT to the main thread after ``seconds``, from a helper thread."""
    main = threading.main_thread().ident
    assert main is not None

    def fire() -> None:
        time.sleep(seconds)
        print("^C", flush=True)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=fire, daemon=True).start()


def main() -> None:
    """Run every cell, echoing it first."""
    cfg = Config()
    cfg.TerminalInteractiveShell.colors = "nocolor"
    cfg.HistoryManager.enabled = False
    ip = TerminalInteractiveShell.instance(config=cfg)
    for cell in CELLS:
        first, *rest = cell.split("\n")
        print(f"In [{ip.execution_count}]: {first}")
        for line in rest:
            print(f"   ...: {line}")
        sys.stdout.flush()
        if cell == INTERRUPTED:
            press_ctrl_c_after(2.0)
        ip.run_cell(cell, store_history=True)
        sys.stdout.flush()
        sys.stderr.flush()
        print()


if __name__ == "__main__":
    main()
