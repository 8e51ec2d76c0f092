"""Stream far more data through ``LoadBalancedView.imap`` than this process may hold.

Usage: ``imap_stream.py CONNECTION_FILE ARRAYS MIB``. Connects to the cluster, maps a sum over
a generator of ``ARRAYS`` arrays of ``MIB`` MiB each (made one at a time, as the generator is
read), ordered and then unordered, and prints one JSON line: the results' checks, how many
arrays the generator had made ahead of the results at most, and the process's peak RSS
(``VmHWM``) before and after.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import numpy as np

from corral.client import Client, interactive


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (``VmHWM`` in /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


@interactive
def total(a: object) -> float:
    """The sum of an array's elements."""
    return float(a.sum())  # type: ignore[attr-defined]


def main() -> None:
    connection_file, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rows = mib * 1024 * 1024 // 8 // 1024
    made = [0]

    def arrays() -> Iterator[np.ndarray]:
        for i in range(n):
            made[0] += 1
            yield np.full((rows, 1024), float(i))

    rc = Client(connection_file)
    view = rc.load_balanced_view()
    view.apply_sync(total, np.zeros(4))  # warm up: imports, connections, first pickles
    before = peak_rss_mib()
    expected = [float(i) * rows * 1024 for i in range(n)]
    ahead = 0
    ordered = []
    for i, value in enumerate(view.imap(total, arrays())):
        ordered.append(value)
        ahead = max(ahead, made[0] - i - 1)
    made[0] = 0
    unordered = sorted(view.imap(total, arrays(), ordered=False, max_outstanding=4))
    report = {
        "ordered_ok": ordered == expected,
        "unordered_ok": unordered == sorted(expected),
        "ahead": ahead,
        "engines": len(rc.ids),
        "peak_before_mib": before,
        "peak_after_mib": peak_rss_mib(),
    }
    rc.close()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
