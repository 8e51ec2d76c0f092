"""``corral demo``: a real parallel job on a local cluster, one engine per core.

It estimates pi by Monte Carlo: every engine throws random darts at the unit square in
batches and counts those inside the quarter circle; the client adds the counts up as batches
come back and prints the running estimate.
"""

from __future__ import annotations

import math
import sys
import time

__all__ = ["demo"]


def _darts(n: int, seed: int) -> int:
    """Count how many of ``n`` random points in the unit square fall inside the unit circle."""
    import numpy as np

    rng = np.random.default_rng(seed)
    inside = 0
    for start in range(0, n, 1_000_000):
        xy = rng.random((min(1_000_000, n - start), 2))
        inside += int(np.count_nonzero((xy * xy).sum(axis=1) <= 1.0))
    return inside


def demo(n_engines: int | None = None, batches: int = 32, darts: int = 2_000_000) -> int:
    """Start a local cluster, estimate pi on it, print progress and the result, stop it.

    Returns
    -------
    int
        0 if the estimate is within 0.01 of pi, 1 otherwise.
    """
    from corral.cluster import Cluster

    t0 = time.monotonic()
    with Cluster(n=n_engines) as rc:
        print(f"cluster of {len(rc.ids)} engines ready in {time.monotonic() - t0:.2f} s")
        per_engine = -(-batches // len(rc.ids))
        pending = []
        for round_ in range(per_engine):
            for eid in rc.ids:
                seed = round_ * len(rc.ids) + eid
                pending.append(rc[eid].apply_async(_darts, darts, seed))
        total = inside = 0
        tty = sys.stdout.isatty()
        t1 = time.monotonic()
        for done, ar in enumerate(pending, 1):
            inside += ar.get()
            total += darts
            estimate = 4 * inside / total
            line = f"  {done:3d}/{len(pending)} batches, {total / 1e6:6.0f} M darts, pi ~ {estimate:.6f}"
            if tty:
                print(f"\r{line}", end="", flush=True)
            elif done % 8 == 0 or done == len(pending):
                print(line, flush=True)
        elapsed = time.monotonic() - t1
        if tty:
            print()
        engines = sorted({ar.metadata["engine_id"] for ar in pending})  # type: ignore[call-overload]
        print(
            f"pi ~ {estimate:.6f} (error {abs(estimate - math.pi):.1e}) from {total / 1e6:.0f} M darts "
            f"on engines {engines} in {elapsed:.2f} s ({total / elapsed / 1e6:.0f} M darts/s)"
        )
    return 0 if abs(estimate - math.pi) < 0.01 else 1


if __name__ == "__main__":
    sys.exit(demo())
