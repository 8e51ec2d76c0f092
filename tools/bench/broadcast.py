#!/usr/bin/env python
"""Broadcast benchmark: a call on every engine through a BroadcastView vs a DirectView, vs ipyparallel.

For each engine count (4, 8 and 16 by default) it starts, side by side:

- corral with the broadcast scheduler in the controller (``Cluster(n, broadcast_depth=0)``),
- corral with a tree of broadcast scheduler processes (``broadcast_depth=1`` by default: two
  leaves below the controller; ``--depths`` picks others),
- ipyparallel (its default broadcast tree: depth 1, two leaves), if installed,

and times, per round, ``calls`` blocking calls of a trivial function on all engines:
``rc.broadcast_view().apply_sync(f)`` and ``rc[:].apply_sync(f)`` (DirectView). Rounds are
interleaved in a rotating order, so load from other processes hits every case alike; the table
shows the median over rounds of the time per call, the spread, and ratios of medians.
See ``tools/bench/README.md``.

Usage::

    python tools/bench/broadcast.py                   # 4, 8, 16 engines (several minutes)
    python tools/bench/broadcast.py --quick           # smoke test: 4 engines, few calls
    python tools/bench/broadcast.py --engines 16 --depths 0 1 2 --rounds 9 --calls 200
"""

# Only the standard library (and the sibling helpers) at module level, as direct.py.
from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from direct import NOT_INSTALLED, System, available, paired, quiet_logs, rotations, version
from report import median, spread, table


def noop() -> None:
    """The trivial call: defined in ``__main__``, so every system sends it by value."""
    return None


class CorralBroadcast(System):
    """A corral cluster of ``n`` engines whose broadcasts go through a tree ``depth`` levels deep."""

    module = "corral.cluster"

    def __init__(self, n: int, depth: int) -> None:
        self.n = n
        self.depth = depth
        self.name = f"corral (broadcast_depth={depth})"
        self.cluster: Any = None
        self.rc: Any = None

    def start(self) -> None:
        from corral.cluster import Cluster

        self.cluster = Cluster(n=self.n, log_level="ERROR", broadcast_depth=self.depth, engine_timeout=120)
        self.rc = self.cluster.start_and_connect_sync()
        self.bv, self.dv = self.rc.broadcast_view(), self.rc[:]

    def stop(self) -> None:
        cluster, self.cluster, self.rc = self.cluster, None, None
        if cluster is not None:
            cluster.stop_cluster_sync()

    def broadcast(self) -> None:
        self.bv.apply_sync(noop)

    def direct(self) -> None:
        self.dv.apply_sync(noop)

    def forget(self) -> None:
        self.rc.results.clear()


class IPyParallelBroadcast(System):
    """An ipyparallel cluster of ``n`` engines (its broadcast schedulers at their defaults)."""

    name = "ipyparallel"
    module = "ipyparallel"

    def __init__(self, n: int) -> None:
        self.n = n
        self.cluster: Any = None
        self.rc: Any = None

    def start(self) -> None:
        import ipyparallel as ipp

        self.cluster = ipp.Cluster(n=self.n, log_level=logging.ERROR)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(self.n, timeout=180)
        self.bv, self.dv = self.rc.broadcast_view(), self.rc[:]

    def stop(self) -> None:
        cluster, rc, self.cluster, self.rc = self.cluster, self.rc, None, None
        try:
            if rc is not None:
                rc.close()
        finally:
            if cluster is not None:
                cluster.stop_cluster_sync()

    def broadcast(self) -> None:
        self.bv.apply_sync(noop)

    def direct(self) -> None:
        self.dv.apply_sync(noop)

    def forget(self) -> None:
        # ipyparallel 9.2 leaves broadcast msg_ids in rc.outstanding after their results came,
        # and then refuses to purge: what is left stays (a few MB over a run)
        with contextlib.suppress(RuntimeError):
            self.rc.purge_everything()


def timed(fn: Callable[[], None], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls (after one warm-up call)."""
    fn()
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t0) / calls
    finally:
        gc.enable()


def run(n: int, depths: list[int], rounds: int, calls: int) -> dict[str, list[float]]:
    """Start the systems for ``n`` engines, time every case ``rounds`` times, stop them."""
    systems: list[Any] = [CorralBroadcast(n, d) for d in depths]
    if available("ipyparallel"):
        systems.append(IPyParallelBroadcast(n))
    cases: dict[str, Callable[[], None]] = {}
    started = []
    try:
        for system in systems:
            t0 = time.perf_counter()
            system.launch()
            started.append(system)
            print(f"  {system.name}: {n} engines up in {time.perf_counter() - t0:.1f} s", flush=True)
        for system in started:
            if isinstance(system, CorralBroadcast) and system.depth == depths[0]:
                cases["corral DirectView"] = system.direct
            cases[f"{system.name} BroadcastView" if system.module != "ipyparallel" else "ipyparallel BroadcastView"] = (
                system.broadcast
            )
            if system.module == "ipyparallel":
                cases["ipyparallel DirectView"] = system.direct
        times: dict[str, list[float]] = {name: [] for name in cases}
        for order in rotations(rounds, list(cases)):
            for name in order:
                times[name].append(timed(cases[name], calls))
            for system in started:
                system.forget()
        return times
    finally:
        for system in reversed(started):
            system.shutdown()


def report(n: int, times: dict[str, list[float]]) -> None:
    base = median(times["corral DirectView"])
    rows = []
    for name, xs in times.items():
        rows.append([name, f"{median(xs) * 1e3:.2f}", spread(xs), f"{median(xs) / base:.2f}x"])
    print(f"\n(all engines: {n}) time per apply_sync(f) on all engines, median over rounds")
    print(table(["case", "ms/call", "spread", "vs corral DirectView"], rows))
    ipp = times.get("ipyparallel BroadcastView")
    for name, xs in times.items():
        if name.startswith("corral (") and ipp:
            print(f"  {name} vs ipyparallel BroadcastView: {median(xs) / median(ipp):.2f}x ({paired(xs, ipp)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 engines, 2 rounds of 20 calls: a smoke test")
    parser.add_argument("--engines", type=int, nargs="+", default=None, help="engine counts (default 4 8 16)")
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 1], help="corral broadcast depths (default 0 1)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per engine count (default 7)")
    parser.add_argument("--calls", type=int, default=None, help="calls per case per round (default 100)")
    args = parser.parse_args(argv)
    if any(d < 0 for d in args.depths) or any(n < 1 for n in args.engines or [1]):
        parser.error("--depths must be 0 or more and --engines at least 1")
    engines = args.engines or ([4] if args.quick else [4, 8, 16])
    rounds = args.rounds or (2 if args.quick else 7)
    calls = args.calls or (20 if args.quick else 100)
    quiet_logs()
    print(f"python {platform.python_version()}, corral-client {version('corral-client')}, ", end="")
    print(f"ipyparallel {version('ipyparallel')}; {rounds} rounds x {calls} calls per case")
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs usable, load average {load}")
    if version("ipyparallel") == NOT_INSTALLED:
        print("  (ipyparallel rows: not installed)")
    for n in engines:
        print(f"\n== {n} engines", flush=True)
        report(n, run(n, args.depths, rounds, calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
