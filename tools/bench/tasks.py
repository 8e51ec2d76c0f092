#!/usr/bin/env python
"""Load-balanced task benchmark: throughput, map, LB round trip and controller memory, vs anchors.

Runs clusters of 2 engines on this machine, side by side in one run, and prints tables of
medians, spreads and ratios:

(1) throughput: ``--tasks`` trivial tasks submitted in a loop, then waited for all: corral and
    ipyparallel ``rc.load_balanced_view().apply_async(noop)``, dask.distributed
    ``client.submit(noop, pure=False)`` + ``wait``, ``multiprocessing.Pool(2).apply_async``
    (local only, no network) and a raw pyzmq floor (client DEALER -> a Python ROUTER/ROUTER
    relay process dispatching to the least-loaded of 2 worker processes, and back).
(2) map: the same tasks as one ``map_async(noop_arg, range(N), chunksize=1)`` (corral,
    ipyparallel), dask ``client.map(noop_arg, range(N), pure=False)`` + ``wait``,
    ``Pool.map_async(noop_arg, range(N), chunksize=1)``; every result is checked.
(3) latency: one trivial task's round trip through the load balancer: ``apply_sync`` on the
    load-balanced view, dask ``submit(noop, pure=False).result()``, ``Pool.apply``, the floor.
(4) memory: resident memory of the controller process(es) (scheduler and hub) before and after
    ``--memory-tasks`` trivial tasks (corral, ipyparallel), the client dropping results as it
    goes.

Cases are interleaved round by round in a rotating order, so load from other processes on a
shared machine hits them alike. See ``tools/bench/README.md``. ipyparallel, dask and psutil
are optional: rows of missing systems read "not installed".

Usage::

    python tools/bench/tasks.py                  # full run (about 15 minutes)
    python tools/bench/tasks.py --quick          # smoke test, about a minute
    python tools/bench/tasks.py --only throughput --tasks 20000 --rounds 5
    python tools/bench/tasks.py --only memory --memory-tasks 100000
"""

# Only the standard library at module level (and the sibling modules, which keep to it too):
# dask starts its workers with multiprocessing's "spawn", which re-runs this file's top level.
from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import direct
from direct import N_ENGINES, NOT_INSTALLED, System, describe_environment, kill_all, paired, quiet_logs, rotations
from report import median, spread, table

THROUGHPUT_TARGET_IPP = 10.0  # corral's tasks/s >= 10x ipyparallel's
THROUGHPUT_TARGET_DASK = 5.0  # ... and >= 5x dask.distributed's
MEMORY_TARGET_MB = 20.0  # controller (scheduler + hub) growth across --memory-tasks tasks
BATCH = 1000  # tasks per batch in (4): the client drops results after each
CALL_TIMEOUT = 30.0  # seconds one round trip in (3) may take


def noop() -> None:
    """The trivial task: defined in ``__main__``, so every system sends it by value."""
    return None


def noop_arg(x: int) -> int:
    """The trivial task of (2): returns its argument, so results can be checked."""
    return x


class Timeout(Exception):
    """A case did not finish within its deadline."""


def left(deadline: float) -> float:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value); :class:`Timeout` if none."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Timeout("deadline passed")
    return remaining


def check(results: list[Any], expected: list[Any], name: str) -> None:
    """Raise if a burst's results are not the expected ones (run outside the timing)."""
    if results != expected:
        wrong = sum(1 for a, b in zip(results, expected, strict=False) if a != b)
        raise AssertionError(
            f"{name}: {len(results)} results, {wrong} wrong, {len(expected)} expected (first: {results[:3]!r})"
        )


# -- memory of processes -------------------------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants (psutil, else /proc)."""
    try:
        import psutil
    except ImportError:
        return _proc_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _proc_rss(pid: int) -> int:
    """VmRSS of one process from /proc (no descendants: without psutil they are not listed)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- the systems -------------------------------------------------------------------------------
# Each adds to direct.py's start/stop: ``apply_burst`` and ``map_burst`` (submit n tasks, wait
# for all, return what is needed to read the results afterwards), ``results`` (untimed),
# ``lb_call`` (one round trip), ``forget`` (drop results, untimed) and, for the systems with
# a controller process, ``controller_pid``.


class TaskSystem(System):
    """A system that runs load-balanced tasks."""

    def apply_burst(self, n: int, deadline: float) -> Any:
        raise NotImplementedError

    def map_burst(self, n: int, deadline: float) -> Any:
        raise NotImplementedError

    def results(self, token: Any) -> list[Any]:
        raise NotImplementedError

    def lb_call(self) -> Any:
        raise NotImplementedError

    def forget(self, token: Any) -> None:
        """Drop what the client keeps of the tasks behind ``token`` (untimed)."""

    def controller_pid(self) -> int | None:
        return None


class Corral(TaskSystem, direct.Corral):
    def start(self) -> None:
        super().start()
        self.lv = self.rc.load_balanced_view()

    def _wait(self, ars: Any, deadline: float) -> None:
        if not self.rc.wait(ars, timeout=left(deadline)):
            raise Timeout(f"{len(self.rc.outstanding)} tasks still outstanding")

    def apply_burst(self, n: int, deadline: float) -> Any:
        apply_async = self.lv.apply_async
        ars = [apply_async(noop) for _ in range(n)]
        self._wait(ars, deadline)
        return ars

    def map_burst(self, n: int, deadline: float) -> Any:
        amr = self.lv.map_async(noop_arg, range(n), chunksize=1)
        self._wait(amr, deadline)
        return amr

    def results(self, token: Any) -> list[Any]:
        if isinstance(token, list):
            return [ar.get(0) for ar in token]
        return list(token.get(0))

    def lb_call(self) -> Any:
        return self.lv.apply_async(noop).get(CALL_TIMEOUT)  # apply_sync with a deadline

    def forget(self, token: Any) -> None:
        rc = self.rc
        if hasattr(rc, "purge_local_results"):  # the client's purge API, where it exists
            rc.purge_local_results("all")
            return
        store = rc._store  # no purge API yet: drop every finished request from the client's store
        with store._cond:
            done = [m for m in store._requests if m not in store._pending]
            for m in done:
                del store._requests[m]
                store.results.pop(m, None)
                store.metadata.pop(m, None)
            store._history[:] = [m for m in store._history if m in store._pending]

    def controller_pid(self) -> int | None:
        return self.cluster.controller.pid if self.cluster and self.cluster.controller else None


class IPyParallel(TaskSystem, direct.IPyParallel):
    def start(self) -> None:
        super().start()
        self.lv = self.rc.load_balanced_view()

    def _wait(self, ars: Any, deadline: float) -> None:
        if not self.rc.wait(ars, timeout=left(deadline)):
            raise Timeout(f"{len(self.rc.outstanding)} tasks still outstanding")

    apply_burst = Corral.apply_burst
    map_burst = Corral.map_burst
    results = Corral.results

    def lb_call(self) -> Any:
        return self.lv.apply_async(noop).get(CALL_TIMEOUT)

    def forget(self, token: Any) -> None:
        # the client only: the hub's records are part of what (4) measures (its in-memory
        # database culls old records on its own)
        self.rc.purge_local_results("all")

    def controller_pid(self) -> int | None:
        pid = self.cluster.controller.pid if self.cluster and self.cluster.controller else -1
        return pid if pid > 0 else None


class Dask(TaskSystem, direct.Dask):
    def apply_burst(self, n: int, deadline: float) -> Any:
        from distributed import wait

        submit = self.client.submit
        futures = [submit(noop, pure=False) for _ in range(n)]
        wait(futures, timeout=left(deadline))
        return futures

    def map_burst(self, n: int, deadline: float) -> Any:
        from distributed import wait

        futures = self.client.map(noop_arg, range(n), pure=False)
        wait(futures, timeout=left(deadline))
        return futures

    def results(self, token: Any) -> list[Any]:
        out: list[Any] = self.client.gather(token)
        return out

    def lb_call(self) -> Any:
        return self.client.submit(noop, pure=False).result(timeout=CALL_TIMEOUT)

    def forget(self, token: Any) -> None:
        if token is not None:
            self.client.cancel(token)  # release the keys now rather than when the list is collected


class Pool(TaskSystem):
    """multiprocessing.Pool(2): local worker processes fed through pipes, no network."""

    name = "multiprocessing.Pool (local)"
    module = "multiprocessing"

    def start(self) -> None:
        import multiprocessing

        # "spawn": forking this process, which runs the other systems' client threads, could
        # copy a lock held by one of them into the workers
        self.pool: Any = multiprocessing.get_context("spawn").Pool(N_ENGINES)
        self.pool.apply(noop)

    def stop(self) -> None:
        pool, self.pool = getattr(self, "pool", None), None
        if pool is not None:
            pool.terminate()
            pool.join()

    @staticmethod
    def _wait(results: list[Any], deadline: float) -> None:
        for r in results:
            r.wait(left(deadline))
            if not r.ready():
                raise Timeout("Pool results still pending")

    def apply_burst(self, n: int, deadline: float) -> Any:
        apply_async = self.pool.apply_async
        rs = [apply_async(noop) for _ in range(n)]
        self._wait(rs, deadline)
        return rs

    def map_burst(self, n: int, deadline: float) -> Any:
        r = self.pool.map_async(noop_arg, range(n), chunksize=1)
        self._wait([r], deadline)
        return r

    def results(self, token: Any) -> list[Any]:
        if isinstance(token, list):
            return [r.get(0) for r in token]
        out: list[Any] = token.get(0)
        return out

    def lb_call(self) -> Any:
        return self.pool.apply_async(noop).get(CALL_TIMEOUT)


# -- the raw pyzmq floor -----------------------------------------------------------------------
# The route of a load-balanced task with nothing of corral in it: client DEALER -> a Python
# ROUTER/ROUTER relay process -> worker DEALER processes, and back. Workers announce themselves
# with b"ready"; the relay sends each task to the worker with the fewest tasks in flight
# (least load; with equal loads, the one that has waited longest), workers echo the frames, and
# the relay routes the answer back on the client's identity:
#   client sends [b"t", payload] -> front ROUTER gets [client, b"t", payload]
#   back ROUTER sends [worker, client, b"t", payload] -> worker gets [client, b"t", payload]
# and the mirror image on the way back. [client, b"workers"] asks how many workers have
# announced themselves. High-water marks are off (0) on every socket: a burst of 10,000 small
# messages is queued, never dropped.


def floor_relay() -> None:
    import zmq

    ctx = zmq.Context()
    front, back = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    for s in (front, back):
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.setsockopt(zmq.SNDHWM, 0)
        s.setsockopt(zmq.RCVHWM, 0)
    ports = [s.bind_to_random_port("tcp://127.0.0.1") for s in (front, back)]
    print(*ports, flush=True)
    load: dict[bytes, int] = {}  # worker identity -> tasks in flight (insertion order: longest idle first)
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    while True:
        for sock, _ in poller.poll():
            if sock is front:
                frames = front.recv_multipart(copy=False)
                if frames[1].bytes == b"workers":
                    front.send_multipart([frames[0], b"workers", str(len(load)).encode()])
                    continue
                if not load:
                    continue  # no worker yet: dropped; the client probes until workers answer
                worker = min(load, key=load.__getitem__)
                load[worker] = load.pop(worker) + 1  # to the end: the next tie goes to another
                back.send_multipart([worker, *frames], copy=False)
            else:
                frames = back.recv_multipart(copy=False)
                worker = frames[0].bytes
                if frames[1].bytes == b"ready":
                    load[worker] = 0
                    continue
                load[worker] -= 1
                front.send_multipart(frames[1:], copy=False)


def floor_worker(port: int, ident: str) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, ident.encode())
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    sock.send(b"ready")
    while True:
        sock.send_multipart(sock.recv_multipart(copy=False), copy=False)


class Floor(TaskSystem):
    """Raw pyzmq through a least-load relay process to 2 worker processes."""

    name = "raw pyzmq floor (via relay)"
    module = "zmq"
    PAYLOAD = b"x" * 100

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, os.path.abspath(__file__), "--floor-role", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        import zmq

        relay = self._spawn("relay")
        assert relay.stdout is not None
        front, back = (int(p) for p in relay.stdout.readline().split())
        for i in range(N_ENGINES):
            self._spawn("worker", str(back), f"w{i}")
        self.ctx: Any = zmq.Context()
        self.sock: Any = self.ctx.socket(zmq.DEALER)
        for opt in (zmq.LINGER, zmq.SNDHWM, zmq.RCVHWM):
            self.sock.setsockopt(opt, 0)
        self.sock.connect(f"tcp://127.0.0.1:{front}")
        deadline = time.monotonic() + 30
        while True:  # until every worker has announced itself
            self.sock.send(b"workers")
            if self.sock.poll(100) and int(self.sock.recv_multipart()[1]) == N_ENGINES:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: the workers did not announce themselves within 30 s")
        while self.sock.poll(200):  # late answers to the probes
            self.sock.recv_multipart()

    def stop(self) -> None:
        sock, self.sock = getattr(self, "sock", None), None
        if sock is not None:
            sock.close(linger=0)
        ctx, self.ctx = getattr(self, "ctx", None), None
        if ctx is not None:
            ctx.term()
        kill_all(self.procs)
        self.procs = []

    def _burst(self, n: int, deadline: float, args: Callable[[int], list[bytes]]) -> Any:
        sock = self.sock
        send = sock.send_multipart
        for i in range(n):
            send(args(i), copy=False)
        import zmq

        recv = sock.recv_multipart
        out = []
        while len(out) < n:
            try:
                out.append(recv(zmq.NOBLOCK))
            except zmq.Again:
                if not sock.poll(int(left(deadline) * 1000) + 1):
                    raise Timeout(f"{n - len(out)} answers missing") from None
        return out

    def apply_burst(self, n: int, deadline: float) -> Any:
        payload = self.PAYLOAD
        return self._burst(n, deadline, lambda i: [b"t", payload])

    def map_burst(self, n: int, deadline: float) -> Any:
        return self._burst(n, deadline, lambda i: [b"t", str(i).encode()])

    def results(self, token: Any) -> list[Any]:
        # the apply burst's answers echo the payload; the map's echo their argument, in the
        # order the workers finished them
        if token and token[0][1] == self.PAYLOAD:
            return [None if f[1] == self.PAYLOAD else f[1] for f in token]
        return sorted(int(f[1]) for f in token)

    def lb_call(self) -> Any:
        self.sock.send_multipart([b"t", self.PAYLOAD])
        if not self.sock.poll(int(CALL_TIMEOUT * 1000)):
            raise Timeout(f"no answer within {CALL_TIMEOUT:g} s")
        self.sock.recv_multipart()
        return None


# -- (1) and (2) throughput ----------------------------------------------------------------------


@dataclass
class Case:
    system: TaskSystem
    rates: list[float] = field(default_factory=list)  # per round: tasks/s (or µs for latency)
    failure: str = ""


def run_bursts(live: list[TaskSystem], kind: str, n: int, rounds: int, timeout: float) -> dict[str, Case]:
    """``rounds`` rounds of one ``kind`` ("apply" or "map") burst of ``n`` tasks per system."""
    cases = [Case(s) for s in live]
    expected = [None] * n if kind == "apply" else list(range(n))
    warm = min(n, 200)
    for c in cases:  # warm up: code paths, connections, function caches
        try:
            token = getattr(c.system, f"{kind}_burst")(warm, time.monotonic() + timeout)
            c.system.forget(token)
        except Exception as err:
            c.failure = f"warm-up failed: {type(err).__name__}: {err}"
    for r, order in enumerate(rotations(rounds, cases), 1):
        for c in order:
            if c.failure:
                continue
            burst = getattr(c.system, f"{kind}_burst")
            gc.collect()
            gc.disable()
            token = None
            try:
                t0 = time.perf_counter()
                token = burst(n, time.monotonic() + timeout)
                elapsed = time.perf_counter() - t0
            except Exception as err:
                c.failure = f"{type(err).__name__}: {err}"[:120]
                continue
            finally:
                gc.enable()
            try:
                check(c.system.results(token), expected, c.system.name)
            except Exception as err:
                c.failure = f"wrong results: {err}"[:120]
            finally:
                c.system.forget(token)
                del token
            c.rates.append(n / elapsed)
            print(f"  ({kind} round {r}/{rounds}: {c.system.name} {n / elapsed:,.0f} tasks/s)", file=sys.stderr)
    return {c.system.name: c for c in cases}


def report_throughput(systems: list[TaskSystem], by: dict[str, Case], title: str) -> bool:
    """Print one throughput table and the target lines; False if results were wrong."""
    ipp, dask, floor = (by.get(x.name) for x in (IPyParallel, Dask, Floor))
    rows = []
    ok = True
    for s in systems:
        c = by.get(s.name)
        if c is None:
            rows.append([s.name, NOT_INSTALLED, "-", "-", "-", "-", "-"])
            continue
        if not c.rates:
            rows.append([s.name, f"FAILED: {c.failure}", "-", "-", "-", "-", "-"])
            ok = ok and not c.failure.startswith("wrong")
            continue
        r = median(c.rates)

        def vs(other: Case | None, r: float = r) -> str:
            return f"{r / median(other.rates):.2f}x" if other and other.rates else "-"

        rows.append([s.name, f"{r:,.0f}", f"{max(c.rates):,.0f}", spread(c.rates), vs(ipp), vs(dask), vs(floor)])
        if c.failure:
            rows[-1][0] += f" (later round failed: {c.failure})"
            ok = ok and not c.failure.startswith("wrong")
    print(title)
    print(table(["system", "tasks/s", "best tasks/s", "spread", "vs ipyparallel", "vs dask", "vs floor"], rows))
    cor = by.get(Corral.name)
    for anchor, target in ((ipp, THROUGHPUT_TARGET_IPP), (dask, THROUGHPUT_TARGET_DASK)):
        if cor and cor.rates and anchor and anchor.rates:
            r = median(cor.rates) / median(anchor.rates)
            print(
                f"  corral / {anchor.system.name} = {r:.1f}x   (target >= {target:g}x: "
                f"{'met' if r >= target else 'MISSED'}; {paired(cor.rates, anchor.rates)})"
            )
    return ok


# -- (3) latency -------------------------------------------------------------------------------


@dataclass
class LatencyCase:
    system: TaskSystem
    medians: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    p90s: list[float] = field(default_factory=list)
    failure: str = ""


def bench_latency(systems: list[TaskSystem], live: list[TaskSystem], rounds: int, calls: int) -> None:
    cases = [LatencyCase(s) for s in live]
    clock = time.perf_counter
    for c in cases:  # warm up
        try:
            for _ in range(20):
                c.system.lb_call()
            c.system.forget(None)
        except Exception as err:
            c.failure = f"{type(err).__name__}: {err}"[:120]
    for order in rotations(rounds, cases):
        for c in order:
            if c.failure:
                continue
            call = c.system.lb_call
            ts = []
            gc.collect()
            try:
                for _ in range(calls):
                    t0 = clock()
                    call()
                    ts.append(clock() - t0)
            except Exception as err:
                c.failure = f"{type(err).__name__}: {err}"[:120]
                continue
            finally:
                c.system.forget(None)
            ts.sort()
            c.medians.append(median(ts) * 1e6)
            c.means.append(sum(ts) / len(ts) * 1e6)
            c.p90s.append(ts[int(len(ts) * 0.9)] * 1e6)
    by = {c.system.name: c for c in cases}
    ipp, dask = by.get(IPyParallel.name), by.get(Dask.name)
    rows = []
    for s in systems:
        c = by.get(s.name)
        if c is None:
            rows.append([s.name, NOT_INSTALLED, "-", "-", "-", "-", "-"])
            continue
        if not c.medians:
            rows.append([s.name, f"FAILED: {c.failure}", "-", "-", "-", "-", "-"])
            continue
        m = median(c.medians)

        def vs(other: LatencyCase | None, m: float = m) -> str:
            return f"{m / median(other.medians):.2f}x" if other and other.medians else "-"

        rows.append(
            [
                s.name,
                f"{m:,.0f}",
                f"{median(c.means):,.0f}",
                f"{median(c.p90s):,.0f}",
                spread(c.medians),
                vs(ipp),
                vs(dask),
            ]
        )
    print(
        f"(3) round trip of one trivial task through the load balancer: {calls} calls per case per round, "
        f"{rounds} rounds; µs per call, medians over rounds (time ratios: lower is faster)"
    )
    print(table(["system", "median µs", "mean µs", "p90 µs", "spread", "vs ipyparallel", "vs dask"], rows))
    cor = by.get(Corral.name)
    for other in (ipp, dask):
        if cor and cor.medians and other and other.medians:
            print(
                f"  corral / {other.system.name} = {median(cor.medians) / median(other.medians):.2f}x "
                f"({paired(cor.medians, other.medians)})"
            )


# -- (4) controller memory ---------------------------------------------------------------------


@dataclass
class MemoryCase:
    system: TaskSystem
    pid: int = 0
    before: int = 0
    after: int = 0
    peak: int = 0
    done: int = 0
    seconds: float = 0.0
    failure: str = ""


def settle() -> None:
    """Collect the client's garbage and let the controllers finish their own bookkeeping."""
    gc.collect()
    time.sleep(2.0)


def bench_memory(systems: list[TaskSystem], live: list[TaskSystem], n: int, budget: float) -> None:
    """Run ``n`` trivial tasks per system in batches, interleaved; controller RSS before/after.

    A system that has spent ``budget`` seconds on its batches runs no more of them (the row
    says how many tasks it got through), so a slow anchor cannot stretch the run without bound.
    """
    cases = [MemoryCase(s, pid=s.controller_pid() or 0) for s in live]
    for c in cases:
        if not c.pid:
            c.failure = "controller process not found"
            continue
        try:  # warm up: imports, caches and pools the first tasks fill are not growth
            c.system.forget(c.system.apply_burst(BATCH, time.monotonic() + budget))
        except Exception as err:
            c.failure = f"warm-up failed: {type(err).__name__}: {err}"[:120]
    settle()
    for c in cases:
        c.before = c.peak = tree_rss(c.pid)
    batches = -(-n // BATCH)
    for b, order in enumerate(rotations(batches, cases)):
        size = min(BATCH, n - b * BATCH)
        for c in order:
            if c.failure:
                continue
            if c.seconds > budget:
                c.failure = f"time budget of {budget:g} s used up after {c.done:,} tasks"
                continue
            try:
                t0 = time.perf_counter()
                c.system.forget(c.system.apply_burst(size, time.monotonic() + budget))
                c.seconds += time.perf_counter() - t0
                c.done += size
            except Exception as err:
                c.failure = f"stopped after {c.done:,} tasks: {type(err).__name__}: {err}"[:120]
                continue
            c.peak = max(c.peak, tree_rss(c.pid))
    settle()
    for c in cases:
        c.after = tree_rss(c.pid)
        c.peak = max(c.peak, c.after)
    mb = 1e6
    rows = []
    for s in systems:
        c = next((x for x in cases if x.system is s), None)
        if c is None:
            rows.append([s.name, NOT_INSTALLED, "-", "-", "-", "-", "-", "-"])
            continue
        if not c.done:
            rows.append([s.name, f"FAILED: {c.failure}", "-", "-", "-", "-", "-", "-"])
            continue
        growth = (c.after - c.before) / mb
        ok = "met" if growth < MEMORY_TARGET_MB and c.done == n else "MISSED"
        rows.append(
            [
                s.name,
                f"{c.done:,}",
                f"{c.before / mb:,.1f}",
                f"{c.after / mb:,.1f}",
                f"{growth:+,.1f}",
                f"{(c.peak - c.before) / mb:+,.1f}",
                f"{c.done / c.seconds:,.0f}" if c.seconds else "-",
                ok if s.name == Corral.name else "-",
            ]
        )
    print(
        f"(4) controller memory (RSS of the controller process and its children: scheduler and hub) across "
        f"{n:,} trivial tasks, in batches of {BATCH:,} interleaved between systems, the client dropping "
        f"results after each batch; MB = 1e6 bytes, measured after a warm-up batch and after a gc + 2 s pause"
    )
    print(
        table(
            ["system", "tasks", "before MB", "after MB", "growth MB", "peak growth MB", "tasks/s", "target"],
            rows,
        )
    )
    for c in cases:
        if c.failure and c.done:
            print(f"  {c.system.name}: {c.failure}")
    print(f"  target: corral's growth < {MEMORY_TARGET_MB:g} MB across {n:,} tasks")


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few tasks, few rounds: a smoke test in about a minute")
    parser.add_argument("--only", choices=("throughput", "map", "latency", "memory"), help="run one part only")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per part (default 3; 1 with --quick)")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per burst in (1) and (2) (default 10000)")
    parser.add_argument("--calls", type=int, default=None, help="calls per case per round in (3) (default 500)")
    parser.add_argument("--memory-tasks", type=int, default=None, help="tasks per system in (4) (default 100000)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one burst in (1)/(2) may take, and each system's time budget in (4) (default: by size)",
    )
    parser.add_argument("--floor-role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_role:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if args.floor_role[0] == "relay":
            floor_relay()
        else:
            floor_worker(int(args.floor_role[1]), args.floor_role[2])
        return 0
    rounds = args.rounds or (1 if args.quick else 3)
    n = args.tasks or (200 if args.quick else 10_000)
    calls = args.calls or (30 if args.quick else 500)
    mem_n = args.memory_tasks or (BATCH if args.quick else 100_000)
    if min(rounds, n, calls, mem_n) < 1 or (args.timeout is not None and args.timeout <= 0):
        parser.error("--rounds, --tasks, --calls, --memory-tasks and --timeout must be positive")
    # the slowest anchor runs a few hundred trivial tasks/s: allow 20/s before calling it stuck
    burst_timeout = args.timeout or max(60.0, n / 20)
    memory_budget = args.timeout or max(60.0, min(600.0, mem_n / 100))
    quiet_logs()
    print(describe_environment())
    print()
    systems: list[TaskSystem] = [Corral(), IPyParallel(), Dask(), Pool(), Floor()]
    ok = True
    parts = [args.only] if args.only else ["throughput", "map", "latency", "memory"]
    with direct.running(systems) as started:  # type: ignore[arg-type]
        live: list[TaskSystem] = started  # type: ignore[assignment]
        if "throughput" in parts:
            by = run_bursts(live, "apply", n, rounds, burst_timeout)
            ok &= report_throughput(
                systems,
                by,
                f"(1) throughput: {n:,} trivial tasks submitted one by one (apply_async / submit) then waited "
                f"for, {N_ENGINES} engines; {rounds} rounds, medians; tasks/s = tasks / (first submit .. last result)",
            )
            print()
        if "map" in parts:
            by = run_bursts(live, "map", n, rounds, burst_timeout)
            ok &= report_throughput(
                systems,
                by,
                f"(2) map: map_async(noop_arg, range({n:,}), chunksize=1) (dask: client.map) then waited for, "
                f"{N_ENGINES} engines; {rounds} rounds, medians; every result checked (outside the timing)",
            )
            print()
        if "latency" in parts:
            bench_latency(systems, live, rounds, calls)
            print()
        if "memory" in parts:
            with_controller = [s for s in systems if isinstance(s, (Corral, IPyParallel))]
            if len(parts) > 1 and not args.quick:
                # fresh controllers: the tasks of (1)-(3) must not fill what (4) measures
                for s in with_controller:
                    if s in live:
                        s.shutdown()
                        s.launch()
            bench_memory(with_controller, [s for s in with_controller if s in live], mem_n, memory_budget)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
