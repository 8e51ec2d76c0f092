#!/usr/bin/env python
"""Hub memory benchmark: controller memory after 100,000 completed tasks and after a purge.

For corral and ipyparallel in the same run, one after the other on the same machine:

1. start a cluster of 2 engines, run a warm-up of 1,000 tasks and purge everything, then read
   the controller's memory: the **start**;
2. run ``--tasks`` load-balanced tasks (100,000 by default), each its own task message and its
   own record in the hub (``view.map_async(f, range(n), chunksize=1)``: one task per element,
   sent in batches of ``--batch``), wait for all of them, drop the results in the client, and
   read the controller's memory again: **after tasks**;
3. ``purge_everything()`` (hub, schedulers and client) and read it a third time: **after purge**.

Memory is the resident set size (RSS) of the controller's whole process tree, read through
psutil from /proc (ipyparallel's controller runs its schedulers in child processes; corral's is
one process). The client-side sizes (``len(rc.results)``, ``len(rc.metadata)``,
``len(rc.history)``) are printed too. Targets (issue 5): corral's growth under 20 MB and back
within 10 MB of the start after purge.

Usage::

    python tools/bench/hub_memory.py                   # 100,000 tasks (a few minutes)
    python tools/bench/hub_memory.py --tasks 10000     # quicker
    python tools/bench/hub_memory.py --only corral
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import logging
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from report import table

GROWTH_TARGET_MB = 20.0
PURGE_TARGET_MB = 10.0
N_ENGINES = 2


def square(x: int) -> int:
    """The task: defined in ``__main__``, so both systems send it by value."""
    return x * x


def tree_rss(pid: int) -> int:
    """RSS in bytes of process ``pid`` and every process below it."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


@dataclass
class Outcome:
    """One system's measurements (bytes and seconds)."""

    name: str
    version: str
    start: int = 0
    after_tasks: int = 0
    after_purge: int = 0
    run_seconds: float = 0.0
    client_sizes: dict[str, int] = field(default_factory=dict)
    client_after_purge: dict[str, int] = field(default_factory=dict)
    error: str = ""


def run_tasks(view: Any, n: int, batch: int) -> float:
    """Run ``n`` tasks through ``view.map_async`` in batches; return the seconds taken.

    Raises
    ------
    AssertionError
        If a result is wrong.
    """
    t0 = time.perf_counter()
    done = 0
    while done < n:
        size = min(batch, n - done)
        amr = view.map_async(square, range(done, done + size), chunksize=1)
        values = amr.get()
        assert values[-1] == (done + size - 1) ** 2, "wrong result"
        del amr, values
        done += size
    return time.perf_counter() - t0


def settle() -> None:
    """Let the controller finish what it is doing before its memory is read."""
    gc.collect()
    time.sleep(1.0)


def measure_corral(n: int, batch: int) -> Outcome:
    from corral.cluster import Cluster

    out = Outcome("corral", importlib.metadata.version("corral"))
    cluster = Cluster(n=N_ENGINES, log_level="ERROR")
    try:
        rc = cluster.start_and_connect_sync()
        assert cluster.controller is not None
        pid = cluster.controller.pid
        view = rc.load_balanced_view()
        run_tasks(view, 1_000, 1_000)
        rc.purge_everything()
        settle()
        out.start = tree_rss(pid)
        out.run_seconds = run_tasks(view, n, batch)
        out.client_sizes = {"results": len(rc.results), "metadata": len(rc.metadata), "history": len(rc.history)}
        rc.purge_local_results("all")  # the client's copies, so the hub's alone are measured
        settle()
        out.after_tasks = tree_rss(pid)
        rc.purge_everything()
        settle()
        out.after_purge = tree_rss(pid)
        out.client_after_purge = {
            "results": len(rc.results),
            "metadata": len(rc.metadata),
            "history": len(rc.history),
        }
    finally:
        cluster.stop_cluster_sync()
    return out


def measure_ipyparallel(n: int, batch: int) -> Outcome:
    import ipyparallel as ipp

    out = Outcome("ipyparallel", ipp.__version__)
    cluster = ipp.Cluster(n=N_ENGINES, log_level=logging.ERROR)
    rc = None
    try:
        rc = cluster.start_and_connect_sync()
        rc.wait_for_engines(N_ENGINES, timeout=120)
        pid = cluster.controller.process.pid
        view = rc.load_balanced_view()
        run_tasks(view, 1_000, 1_000)
        rc.purge_everything()
        settle()
        out.start = tree_rss(pid)
        out.run_seconds = run_tasks(view, n, batch)
        out.client_sizes = {"results": len(rc.results), "metadata": len(rc.metadata), "history": len(rc.history)}
        rc.purge_local_results("all")
        settle()
        out.after_tasks = tree_rss(pid)
        rc.purge_everything()
        settle()
        out.after_purge = tree_rss(pid)
        out.client_after_purge = {
            "results": len(rc.results),
            "metadata": len(rc.metadata),
            "history": len(rc.history),
        }
    finally:
        if rc is not None:
            rc.close()
        cluster.stop_cluster_sync()
    return out


def mb(x: int) -> str:
    return f"{x / 1e6:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks to run (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=1_000, help="tasks per map_async call (default: %(default)s)")
    parser.add_argument("--only", choices=["corral", "ipyparallel"], default=None)
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.batch < 1:
        parser.error("--tasks and --batch must be positive")
    for name in ("ipyparallel", "tornado", "asyncio", "corral", "traitlets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(
        f"hub memory: {args.tasks:,} tasks, {N_ENGINES} engines, Python {platform.python_version()}, {sys.platform}",
        flush=True,
    )
    systems = [("corral", measure_corral), ("ipyparallel", measure_ipyparallel)]
    outcomes: list[Outcome] = []
    for name, measure in systems:
        if args.only and name != args.only:
            continue
        try:
            outcomes.append(measure(args.tasks, args.batch))
            o = outcomes[-1]
            print(
                f"  ({o.name} done: start {mb(o.start)} MB, after tasks {mb(o.after_tasks)} MB, "
                f"after purge {mb(o.after_purge)} MB, {o.run_seconds:.0f} s)",
                flush=True,
            )
        except ImportError:
            outcomes.append(Outcome(name, "not installed", error="not installed"))
        except Exception as err:  # report the other system anyway
            outcomes.append(Outcome(name, "?", error=f"{type(err).__name__}: {err}"))
    rows = []
    for o in outcomes:
        if o.error:
            rows.append([o.name, o.version, o.error, "", "", "", "", ""])
            continue
        rows.append(
            [
                o.name,
                o.version,
                mb(o.start),
                mb(o.after_tasks),
                mb(o.after_tasks - o.start),
                mb(o.after_purge),
                mb(o.after_purge - o.start),
                f"{o.run_seconds:.1f} ({o.run_seconds and args.tasks / o.run_seconds:,.0f}/s)",
            ]
        )
    header = ["system", "version", "start MB", "after tasks MB", "growth MB", "after purge MB", "vs start MB", "run s"]
    print(table(header, rows))
    for o in outcomes:
        if not o.error:
            print(f"  {o.name} client: before purge {o.client_sizes}, after purge_everything {o.client_after_purge}")
    corral = next((o for o in outcomes if o.name == "corral" and not o.error), None)
    if corral is not None:
        growth = (corral.after_tasks - corral.start) / 1e6
        back = (corral.after_purge - corral.start) / 1e6
        print(
            f"  corral growth {growth:.1f} MB (target < {GROWTH_TARGET_MB:g}): "
            f"{'met' if growth < GROWTH_TARGET_MB else 'MISSED'}; after purge {back:+.1f} MB from the start "
            f"(target within {PURGE_TARGET_MB:g}): {'met' if abs(back) <= PURGE_TARGET_MB else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
