"""Estimate pi by Monte Carlo on a local cluster of two engines.

Every task throws random darts at the unit square and counts those that land inside the
quarter circle; pi is about 4 * inside / thrown. The tasks are load-balanced, so an engine
that finishes early takes the next one::

    $ python docs/examples/monte_carlo_pi.py
    pi ~ 3.14159 from 16 tasks of 500,000 darts on engines [0, 1] (error 2.1e-05)
"""

from __future__ import annotations

import math

from corral.cluster import Cluster


def darts(n: int, seed: int) -> int:
    """Count how many of ``n`` random points in the unit square fall inside the unit circle."""
    import numpy as np

    xy = np.random.default_rng(seed).random((n, 2))
    return int(np.count_nonzero((xy * xy).sum(axis=1) <= 1.0))


def main(tasks: int = 16, per_task: int = 500_000) -> float:
    """Start a cluster, estimate pi on it, stop it; return the estimate."""
    with Cluster(n=2) as rc:
        view = rc.load_balanced_view()
        results = [view.apply_async(darts, per_task, seed) for seed in range(tasks)]
        inside = sum(ar.get(timeout=60) for ar in results)
        engines = sorted({ar.engine_id for ar in results})
    estimate = 4 * inside / (tasks * per_task)
    print(
        f"pi ~ {estimate:.5f} from {tasks} tasks of {per_task:,} darts on engines {engines} "
        f"(error {abs(estimate - math.pi):.1e})"
    )
    return estimate


if __name__ == "__main__":
    main()
