"""Sweep a parameter grid on a local cluster, with a progress bar as results come in.

Each point of the grid is one load-balanced task: it simulates a damped oscillator with
that stiffness and damping and returns how long the motion takes to settle. Results are
taken as they finish (``concurrent.futures.as_completed``), so the bar moves while the
sweep runs, and the fastest-settling parameters are printed at the end::

    $ python docs/examples/parameter_sweep.py
    [########################################] 48/48 points
    fastest settling: k=4.0, c=3.5 -> 1.23 s (48 points on engines [0, 1])

The bar is drawn with ``\\r`` on a terminal and printed as lines otherwise (e.g. in a log).
"""

from __future__ import annotations

import itertools
import sys
from concurrent.futures import as_completed

from corral.cluster import Cluster


def settling_time(k: float, c: float, dt: float = 1e-3, t_max: float = 20.0) -> float:
    """Seconds until a unit mass on a spring (stiffness ``k``, damping ``c``) stays within 2% of rest."""
    x, v, t, last_outside = 1.0, 0.0, 0.0, 0.0
    while t < t_max:
        a = -k * x - c * v
        v += a * dt
        x += v * dt
        t += dt
        if abs(x) > 0.02:
            last_outside = t
    return last_outside


def progress(done: int, total: int, width: int = 40) -> None:
    """Draw a progress bar: in place on a terminal, every quarter as a line otherwise."""
    filled = width * done // total
    line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} points"
    if sys.stdout.isatty():
        print(f"\r{line}", end="" if done < total else "\n", flush=True)
    elif done == total or done % max(1, total // 4) == 0:
        print(line, flush=True)


def main() -> tuple[float, float]:
    """Run the sweep; return the (k, c) that settles fastest."""
    grid = list(itertools.product([1.0, 2.0, 4.0, 8.0], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0]))
    with Cluster(n=2) as rc:
        view = rc.load_balanced_view()
        futures = {view.apply_async(settling_time, k, c): (k, c) for k, c in grid}
        times: dict[tuple[float, float], float] = {}
        for done, ar in enumerate(as_completed(futures, timeout=120), 1):
            times[futures[ar]] = ar.result()
            progress(done, len(grid))
        engines = sorted({ar.metadata["engine_id"] for ar in futures})
    best = min(times, key=times.__getitem__)
    print(
        f"fastest settling: k={best[0]}, c={best[1]} -> {times[best]:.2f} s ({len(times)} points on engines {engines})"
    )
    return best


if __name__ == "__main__":
    main()
