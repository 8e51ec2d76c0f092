#!/usr/bin/env python
"""Direct execution benchmark: cluster start, apply round trip, push/pull bandwidth, vs anchors.

Runs whole clusters on this machine, side by side in one run, and prints tables of medians,
spreads and ratios:

(1) start: from nothing to a controller and 2 engines answering a trivial call: corral
    ``Cluster(n=2).start_and_connect_sync()`` + one ``apply_sync``, ipyparallel the same,
    dask.distributed ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` +
    ``Client`` + one ``submit().result()``. A fresh cluster per round, stopped after it.
(2) latency: ``rc[0].apply_sync(f)`` and ``rc[:].apply_sync(f)`` round trips (corral and
    ipyparallel), dask ``client.submit(f, pure=False, workers=[w]).result()`` (and one submit
    per worker + gather for "all"), and a raw pyzmq floor: client DEALER -> a Python
    ROUTER/ROUTER relay process -> worker DEALER process(es) and back.
(3) bandwidth: a float64 numpy array pushed to one engine and pulled back: corral and
    ipyparallel ``rc[0].push({'a': arr}, block=True)`` / ``rc[0].pull('a', block=True)``,
    dask ``client.scatter(arr, workers=[w], direct=True, hash=False)`` / ``future.result()``;
    every pulled array is compared with the original.

Cases are interleaved round by round in a rotating order, so load from other processes on a
shared machine hits them alike. See ``tools/bench/README.md``. ipyparallel and dask are
optional: their rows read "not installed" without them.

Usage::

    python tools/bench/direct.py                     # full run (several minutes)
    python tools/bench/direct.py --quick             # smoke test, about a minute
    python tools/bench/direct.py --only latency --rounds 9 --calls 1000
    python tools/bench/direct.py --only bandwidth --sizes 80 800
"""

# Only the standard library at module level: dask starts its workers with multiprocessing's
# "spawn", which re-runs this file's top level in every worker; importing numpy, zmq or the
# anchors here would slow dask's start down for nothing.
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import logging
import os
import platform
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from report import median, spread, table

NOT_INSTALLED = "not installed"
START_TARGET_IPP = 10.0  # corral starts >= 10x faster than ipyparallel
LATENCY_TARGET = 0.2  # corral round trip <= 1/5 of ipyparallel's
N_ENGINES = 2


def noop() -> None:
    """The trivial call: defined in ``__main__``, so every system sends it by value."""
    return None


# -- small helpers ------------------------------------------------------------------------------


def rotations(n_rounds: int, items: list[Any]) -> Iterator[list[Any]]:
    """Each round's order: the list rotated by one more place every round."""
    for r in range(n_rounds):
        k = r % len(items) if items else 0
        yield items[k:] + items[:k]


def paired(num: list[float], den: list[float]) -> str:
    """Median and range of per-round ratios num/den (rounds where both ran)."""
    ratios = [a / b for a, b in zip(num, den, strict=False) if b > 0]
    if not ratios:
        return ""
    return f"per-round: median {median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x"


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return NOT_INSTALLED


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def quiet_logs() -> None:
    for name in ("distributed", "ipyparallel", "tornado", "asyncio", "corral", "traitlets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


# -- the systems -----------------------------------------------------------------------------


def descendants() -> dict[int, float]:
    """pid -> start time of every process below this one (empty without psutil).

    multiprocessing's resource tracker is left out: it serves the whole run and ends with it.
    """
    try:
        import psutil
    except ImportError:
        return {}
    found = {}
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if not any("resource_tracker" in part for part in p.cmdline()):
                found[p.pid] = p.create_time()
    return found


def reap(procs: dict[int, float], name: str, timeout: float = 15.0) -> None:
    """Wait for the processes a system started to end; kill (by pid) those still there."""
    if not procs:
        return
    import psutil

    live = []
    for pid, created in procs.items():
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            if p.create_time() == created:  # not a recycled pid
                live.append(p)
    _, left = psutil.wait_procs(live, timeout=timeout)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    if left:
        print(f"  ({name}: killed {len(left)} process(es) still running {timeout:g} s after its stop)", file=sys.stderr)
        psutil.wait_procs(left, timeout=5)


class System:
    """One system under test. Subclasses: start a cluster, call, push, pull, stop."""

    name = "?"
    module = ""  # importable when installed
    _procs: dict[int, float] | None = None

    @property
    def installed(self) -> bool:
        return available(self.module)

    def launch(self) -> None:
        """:meth:`start`, remembering which processes it started (to reap them in :meth:`shutdown`)."""
        before = descendants()
        try:
            self.start()
        finally:
            after = descendants()
            self._procs = {pid: t for pid, t in after.items() if before.get(pid) != t}

    def shutdown(self) -> float:
        """:meth:`stop`, then wait for (or kill) every process :meth:`launch` saw start.

        Returns the seconds :meth:`stop` took (the wait for processes that linger is not in it).
        """
        t0 = time.perf_counter()
        try:
            self.stop()
        finally:
            elapsed = time.perf_counter() - t0
            procs, self._procs = self._procs or {}, None
            reap(procs, self.name)
        return elapsed

    def start(self) -> None:
        raise NotImplementedError

    def call(self) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def call_one(self) -> None:
        raise NotImplementedError

    def call_all(self) -> None:
        raise NotImplementedError

    def push(self, arr: Any) -> Any:
        raise NotImplementedError

    def pull(self, token: Any) -> Any:
        raise NotImplementedError

    def release(self, token: Any) -> None:
        """Forget what :meth:`push` left on the engine (untimed)."""


class Corral(System):
    name = "corral"
    module = "corral.cluster"

    def __init__(self) -> None:
        self.cluster: Any = None
        self.rc: Any = None

    def start(self) -> None:
        from corral.cluster import Cluster

        self.cluster = Cluster(n=N_ENGINES, log_level="ERROR")
        self.rc = self.cluster.start_and_connect_sync()
        self.one, self.all = self.rc[0], self.rc[:]

    def call(self) -> Any:
        return self.rc[0].apply_sync(noop)

    def stop(self) -> None:
        cluster, self.cluster, self.rc = self.cluster, None, None
        if cluster is not None:
            cluster.stop_cluster_sync()

    def call_one(self) -> None:
        self.one.apply_sync(noop)

    def call_all(self) -> None:
        self.all.apply_sync(noop)

    def push(self, arr: Any) -> Any:
        self.one.push({"a": arr}, block=True)

    def pull(self, token: Any) -> Any:
        return self.one.pull("a", block=True)

    def release(self, token: Any) -> None:
        self.one.execute("a = None", block=True)
        # as for ipyparallel below: the client and the hub keep every result otherwise (the
        # hub's copies of pulled arrays would pile up and, past its budget, be spilled to disk)
        self.rc.purge_everything()


class IPyParallel(System):
    name = "ipyparallel"
    module = "ipyparallel"

    def __init__(self) -> None:
        self.cluster: Any = None
        self.rc: Any = None

    def start(self) -> None:
        import ipyparallel as ipp

        self.cluster = ipp.Cluster(n=N_ENGINES, log_level=logging.ERROR)
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(N_ENGINES, timeout=120)
        self.one, self.all = self.rc[0], self.rc[:]

    def call(self) -> Any:
        return self.rc[0].apply_sync(noop)

    def stop(self) -> None:
        cluster, rc, self.cluster, self.rc = self.cluster, self.rc, None, None
        try:
            if rc is not None:
                rc.close()
        finally:
            if cluster is not None:
                cluster.stop_cluster_sync()

    def call_one(self) -> None:
        self.one.apply_sync(noop)

    def call_all(self) -> None:
        self.all.apply_sync(noop)

    def push(self, arr: Any) -> Any:
        self.one.push({"a": arr}, block=True)

    def pull(self, token: Any) -> Any:
        return self.one.pull("a", block=True)

    def release(self, token: Any) -> None:
        self.one.execute("a = None", block=True)
        self.rc.purge_everything()  # ipyparallel's client and hub keep every result otherwise


class Dask(System):
    name = "dask.distributed"
    module = "distributed"

    def __init__(self) -> None:
        self.cluster: Any = None
        self.client: Any = None

    def start(self) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=N_ENGINES,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(N_ENGINES)
        self.workers = sorted(self.client.scheduler_info()["workers"])

    def call(self) -> Any:
        return self.client.submit(noop, pure=False).result()

    def stop(self) -> None:
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    def call_one(self) -> None:
        self.client.submit(noop, pure=False, workers=[self.workers[0]]).result()

    def call_all(self) -> None:
        c = self.client
        c.gather([c.submit(noop, pure=False, workers=[w]) for w in self.workers])

    def push(self, arr: Any) -> Any:
        return self.client.scatter(arr, workers=[self.workers[0]], direct=True, hash=False)

    def pull(self, token: Any) -> Any:
        return token.result()

    def release(self, token: Any) -> None:
        token.release()


# -- the raw pyzmq floors ----------------------------------------------------------------------
# The floor is the same route as corral's with no corral in it: client DEALER -> a Python
# ROUTER/ROUTER relay process -> worker DEALER process, and back. The relay routes on the first
# identity as corral's does:
#   client sends  [worker_id, op, ...]  -> front ROUTER gets [client_id, worker_id, op, ...]
#   back ROUTER sends [worker_id, client_id, op, ...] -> worker gets [client_id, op, ...]
# and the way back is the mirror image. The direct variant drops the relay (one hop each way,
# like dask's direct path): each worker binds a ROUTER and the client connects one DEALER to it.
# Workers answer op b"echo" with the same frames, keep the frame of b"push" (answer b"ok") and
# send it back for b"pull"; large frames are never copied in Python.


def floor_relay() -> None:
    import zmq

    ctx = zmq.Context()
    front, back = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    for s in (front, back):
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
    ports = [s.bind_to_random_port("tcp://127.0.0.1") for s in (front, back)]
    print(*ports, flush=True)
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    while True:
        for sock, _ in poller.poll():
            frames = sock.recv_multipart(copy=False)
            peer, dest = frames[0].bytes, frames[1].bytes
            with contextlib.suppress(zmq.ZMQError):  # a worker not connected yet: the client retries
                (back if sock is front else front).send_multipart([dest, peer, *frames[2:]], copy=False)


def floor_worker(port: int, ident: str) -> None:
    """Serve ops; ``port`` 0: bind a ROUTER (direct), else connect a DEALER to the relay."""
    import zmq

    ctx = zmq.Context()
    if port:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, ident.encode())
        sock.connect(f"tcp://127.0.0.1:{port}")
    else:
        sock = ctx.socket(zmq.ROUTER)
        print(sock.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    kept: Any = b""
    while True:
        frames = sock.recv_multipart(copy=False)
        head, op = frames[0], frames[1].bytes
        if op == b"push":
            kept = frames[2]
            sock.send_multipart([head, b"ok"], copy=False)
        elif op == b"pull":
            sock.send_multipart([head, b"data", kept], copy=False)
        else:
            sock.send_multipart(frames, copy=False)


class Floor(System):
    """Raw pyzmq, no corral: through a Python relay process, or ``direct`` to the workers."""

    module = "zmq"
    PAYLOAD = b"x" * 100

    def __init__(self, direct: bool = False) -> None:
        self.direct = direct
        self.name = "raw pyzmq, direct (no relay)" if direct else "raw pyzmq floor (via relay)"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.socks: list[Any] = []

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, os.path.abspath(__file__), "--floor-role", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    @staticmethod
    def _line(proc: subprocess.Popen[bytes]) -> list[int]:
        assert proc.stdout is not None
        return [int(p) for p in proc.stdout.readline().split()]

    def start(self) -> None:
        import zmq

        self.ctx: Any = zmq.Context()
        self.ids = [f"w{i}".encode() for i in range(N_ENGINES)]
        if self.direct:
            workers = [self._spawn("worker", "0", ident.decode()) for ident in self.ids]
            urls = [f"tcp://127.0.0.1:{self._line(w)[0]}" for w in workers]
        else:
            front, back = self._line(self._spawn("relay"))
            for ident in self.ids:
                self._spawn("worker", str(back), ident.decode())
            urls = [f"tcp://127.0.0.1:{front}"]
        for url in urls:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(url)
            self.socks.append(sock)
        deadline = time.monotonic() + 30
        for i in range(N_ENGINES):  # until every worker answers (the relay drops what it cannot route)
            while True:
                self._send(i, [b"echo", self.PAYLOAD])
                if self._sock(i).poll(100):
                    self._recv(i)
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: the workers did not answer within 30 s")
        for sock in self.socks:
            while sock.poll(200):  # late echoes of the retries
                sock.recv_multipart()

    def _sock(self, i: int) -> Any:
        return self.socks[i if self.direct else 0]

    def _send(self, i: int, frames: list[Any]) -> None:
        self._sock(i).send_multipart(frames if self.direct else [self.ids[i], *frames], copy=False)

    def _recv(self, i: int) -> list[Any]:
        frames = self._sock(i).recv_multipart(copy=False)
        return frames if self.direct else frames[1:]

    def stop(self) -> None:
        for sock in self.socks:
            sock.close(linger=0)
        self.socks = []
        ctx, self.ctx = getattr(self, "ctx", None), None
        if ctx is not None:
            ctx.term()
        kill_all(self.procs)
        self.procs = []

    def call_one(self) -> None:
        self._send(0, [b"echo", self.PAYLOAD])
        self._recv(0)

    def call_all(self) -> None:
        for i in range(N_ENGINES):
            self._send(i, [b"echo", self.PAYLOAD])
        for i in range(N_ENGINES):
            self._recv(i)

    def push(self, arr: Any) -> Any:
        self._send(0, [b"push", arr])
        self._recv(0)
        return arr.dtype

    def pull(self, token: Any) -> Any:
        import numpy as np

        self._send(0, [b"pull"])
        return np.frombuffer(self._recv(0)[1], dtype=token)


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop processes this benchmark started, by process group (each leads its own)."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
        if p.stdout is not None:
            p.stdout.close()


# -- (0) library import times ----------------------------------------------------------------

IMPORTS = {
    "corral": "import corral.cluster, corral.client",
    "ipyparallel": "import ipyparallel",
    "dask.distributed": "import distributed",
}


def bench_imports(systems: list[System], rounds: int) -> None:
    """Import time of each client library in a fresh interpreter (not part of (1)'s times)."""
    live = [s for s in systems if s.name in IMPORTS and s.installed]
    times: dict[str, list[float]] = {s.name: [] for s in live}
    baseline: list[float] = []

    def run(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, stdin=subprocess.DEVNULL)
        return time.perf_counter() - t0

    for order in rotations(rounds, live):
        baseline.append(run("pass"))
        for s in order:
            times[s.name].append(run(IMPORTS[s.name]))
    base = median(baseline)
    rows = [["python -c pass", f"{base:.3f}", "-", spread(baseline)]]
    for s in systems:
        if s.name not in IMPORTS:
            continue
        if s.name not in times:
            rows.append([IMPORTS[s.name], NOT_INSTALLED, "-", "-"])
            continue
        t = median(times[s.name])
        rows.append([IMPORTS[s.name], f"{t:.3f}", f"{t - base:.3f}", spread(times[s.name])])
    print(f"(0) client library import in a fresh interpreter (not included in (1)); {rounds} rounds, medians")
    print(table(["command", "s", "s over bare python", "spread"], rows))


# -- (1) cluster start -----------------------------------------------------------------------


def bench_start(systems: list[System], rounds: int) -> None:
    live = [s for s in systems if s.installed]
    times: dict[str, list[float]] = {s.name: [] for s in live}
    stops: dict[str, list[float]] = {s.name: [] for s in live}
    for order in rotations(rounds, live):
        for s in order:
            gc.collect()
            t0 = time.perf_counter()
            try:
                s.launch()
                answer = s.call()
                elapsed = time.perf_counter() - t0
            finally:
                stop_time = s.shutdown()
            assert answer is None, f"{s.name}: the trivial call returned {answer!r}"
            times[s.name].append(elapsed)
            stops[s.name].append(stop_time)
    ipp = times.get(IPyParallel.name)
    dask = times.get(Dask.name)
    rows = []
    for s in systems:
        if s.name not in times:
            rows.append([s.name, NOT_INSTALLED, "-", "-", "-", "-", "-"])
            continue
        t = median(times[s.name])
        rows.append(
            [
                s.name,
                f"{t:.3f}",
                f"{min(times[s.name]):.3f}",
                spread(times[s.name]),
                f"{median(ipp) / t:.1f}x" if ipp else "-",
                f"{median(dask) / t:.2f}x" if dask else "-",
                f"{median(stops[s.name]):.2f}",
            ]
        )
    print(
        f"(1) cluster start: nothing -> controller + {N_ENGINES} engines answering one trivial call, "
        f"a fresh cluster per round; {rounds} rounds, medians"
    )
    print(table(["system", "start s", "best s", "spread", "speedup vs ipp", "speedup vs dask", "stop s"], rows))
    c = times.get(Corral.name)
    if c and ipp:
        r = median(ipp) / median(c)
        ok = "met" if r >= START_TARGET_IPP else "MISSED"
        print(f"  ipyparallel / corral = {r:.1f}x   (target >= {START_TARGET_IPP:g}x: {ok}; {paired(ipp, c)})")
    if c and dask:
        r = median(dask) / median(c)
        print(f"  dask / corral        = {r:.2f}x   (target > 1x: {'met' if r > 1 else 'MISSED'}; {paired(dask, c)})")


# -- (2) latency -----------------------------------------------------------------------------


@dataclass
class LatencyCase:
    system: System
    kind: str  # "one" or "all"
    medians: list[float] = field(default_factory=list)  # per round: median µs per call
    means: list[float] = field(default_factory=list)  # per round: mean µs per call
    p90s: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.system.name}, {'1 engine' if self.kind == 'one' else f'all {N_ENGINES} engines'}"


def _timed_calls(fn: Callable[[], None], n: int) -> list[float]:
    clock = time.perf_counter
    out = []
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def bench_latency(systems: list[System], live: list[System], rounds: int, calls: int) -> None:
    cases = [LatencyCase(s, kind) for s in live for kind in ("one", "all")]
    for c in cases:  # warm up: imports, connections, code paths
        _timed_calls(getattr(c.system, f"call_{c.kind}"), 20)
    for order in rotations(rounds, cases):
        for c in order:
            gc.collect()
            ts = sorted(_timed_calls(getattr(c.system, f"call_{c.kind}"), calls))
            c.medians.append(median(ts) * 1e6)
            c.means.append(sum(ts) / len(ts) * 1e6)
            c.p90s.append(ts[int(len(ts) * 0.9)] * 1e6)
    by = {(c.system.name, c.kind): c for c in cases}
    rows = []
    for s in systems:
        for kind in ("one", "all"):
            case = by.get((s.name, kind))
            if case is None:
                rows.append([LatencyCase(s, kind).label, NOT_INSTALLED, "-", "-", "-", "-", "-"])
                continue
            m = median(case.medians)
            ipp = by.get((IPyParallel.name, kind))
            floor = next(
                (x for x in cases if isinstance(x.system, Floor) and not x.system.direct and x.kind == kind), None
            )
            rows.append(
                [
                    case.label,
                    f"{m:,.0f}",
                    f"{median(case.means):,.0f}",
                    f"{median(case.p90s):,.0f}",
                    spread(case.medians),
                    f"{m / median(ipp.medians):.2f}x" if ipp else "-",
                    f"{m / median(floor.medians):.1f}x" if floor else "-",
                ]
            )
    print(
        f"(2) round trip of a trivial call: {calls} calls per case per round, {rounds} rounds; "
        "µs per call, medians over rounds"
    )
    print(table(["case", "median µs", "mean µs", "p90 µs", "spread", "vs ipyparallel", "vs floor"], rows))
    for kind in ("one", "all"):
        cor, i = by.get((Corral.name, kind)), by.get((IPyParallel.name, kind))
        if cor and i:
            r = median(cor.medians) / median(i.medians)
            ok = "met" if r <= LATENCY_TARGET else "MISSED"
            print(
                f"  corral / ipyparallel ({kind}) = {r:.2f}x   (target <= {LATENCY_TARGET:g}x: {ok}; "
                f"{paired(cor.medians, i.medians)})"
            )


# -- (3) bandwidth ---------------------------------------------------------------------------


@dataclass
class BandwidthCase:
    system: System
    push: list[float] = field(default_factory=list)
    pull: list[float] = field(default_factory=list)

    @property
    def both(self) -> list[float]:
        return [a + b for a, b in zip(self.push, self.pull, strict=True)]


def bench_bandwidth(systems: list[System], live: list[System], sizes_mb: list[int], rounds: int) -> bool:
    import numpy as np

    live = list(live)
    ok = True
    for size_mb in sizes_mb:
        arr = np.random.default_rng(size_mb).random(size_mb * 1_000_000 // 8)
        nbytes = arr.nbytes
        cases = [BandwidthCase(s) for s in live]
        bad: list[str] = []
        for order in rotations(rounds, cases):
            for c in order:
                gc.collect()
                t0 = time.perf_counter()
                token = c.system.push(arr)
                t1 = time.perf_counter()
                out = c.system.pull(token)
                t2 = time.perf_counter()
                if not (
                    isinstance(out, np.ndarray)
                    and out.shape == arr.shape
                    and out.dtype == arr.dtype
                    and np.array_equal(out, arr)
                ):
                    bad.append(f"{c.system.name}: the pulled array differs from the pushed one")
                del out
                c.system.release(token)
                c.push.append(t1 - t0)
                c.pull.append(t2 - t1)
        del arr
        by = {c.system.name: c for c in cases}
        dask = by.get(Dask.name)
        rows = []
        for s in systems:
            c = by.get(s.name)
            if c is None:
                rows.append([s.name, NOT_INSTALLED, "-", "-", "-", "-", "-"])
                continue
            gbs = [nbytes / median(x) / 1e9 for x in (c.push, c.pull)]
            rt = nbytes / median(c.both) / 1e9
            rows.append(
                [
                    s.name,
                    f"{gbs[0]:.2f}",
                    f"{gbs[1]:.2f}",
                    f"{rt:.2f}",
                    f"{median(c.both) * 1e3:,.0f}",
                    spread(c.both),
                    f"{rt / (nbytes / median(dask.both) / 1e9):.2f}x" if dask else "-",
                ]
            )
        print(
            f"(3) push + pull of a float64 array of {nbytes / 1e6:,.0f} MB to/from one engine; {rounds} rounds, "
            "medians; GB/s = 1e9 bytes of array per second; round trip = array bytes / (push + pull time)"
        )
        print(table(["system", "push GB/s", "pull GB/s", "round trip GB/s", "push+pull ms", "spread", "vs dask"], rows))
        c = by.get(Corral.name)
        if c and dask:
            parts = []
            for what, a, b in (
                ("push", c.push, dask.push),
                ("pull", c.pull, dask.pull),
                ("round trip", c.both, dask.both),
            ):
                r = median(b) / median(a)
                parts.append(f"{what} {r:.2f}x")
            r = median(dask.both) / median(c.both)
            print(
                f"  corral / dask (speed) = {', '.join(parts)}   (target > 1x round trip: "
                f"{'met' if r > 1 else 'MISSED'}; {paired(dask.both, c.both)})"
            )
        if bad:
            ok = False
            for problem in sorted(set(bad)):
                print(f"  CORRECTNESS CHECK FAILED: {problem}")
        else:
            print("  correctness: every pulled array equals the pushed one (shape, dtype, values)")
        print()
    return ok


# -- main ------------------------------------------------------------------------------------


def describe_environment() -> str:
    import numpy as np
    import zmq

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    corral = ", ".join(
        f"{d.removeprefix('corral-')} {version(d)}"
        for d in ("corral", "corral-client", "corral-engine", "corral-scheduler", "corral-hub", "corral-wire")
    )
    return (
        f"corral ({corral}) | ipyparallel {version('ipyparallel')} | distributed {version('distributed')}\n"
        f"Python {platform.python_version()} | pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()}) | numpy {np.__version__} | "
        f"{platform.machine()}, {cpus} CPUs usable, load average {load}"
    )


@contextlib.contextmanager
def running(systems: list[System]) -> Iterator[list[System]]:
    """Start every installed system once; stop them all however the block ends."""
    started: list[System] = []
    try:
        for s in systems:
            if s.installed:
                try:
                    s.launch()
                finally:
                    started.append(s)
        yield started
    finally:
        for s in reversed(started):
            try:
                s.shutdown()
            except Exception as err:  # keep stopping the others
                print(f"  (stopping {s.name} failed: {err})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few rounds: a smoke test in about a minute")
    parser.add_argument("--only", choices=("start", "latency", "bandwidth"), help="run one part only")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per part (default 5; 1-2 with --quick)")
    parser.add_argument("--calls", type=int, default=None, help="calls per case per round in (2) (default 500)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, metavar="MB", help="array sizes for (3) (default 80 800)"
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
    rounds = args.rounds or (2 if args.quick else 5)
    calls = args.calls or (50 if args.quick else 500)
    sizes = args.sizes or ([8] if args.quick else [80, 800])
    if rounds < 1 or calls < 1 or min(sizes) < 1:
        parser.error("--rounds, --calls and --sizes must be positive")
    quiet_logs()
    print(describe_environment())
    print()
    systems: list[System] = [Corral(), IPyParallel(), Dask()]
    ok = True
    if args.only in (None, "start"):
        bench_imports(systems, 1 if args.quick else 3)
        print()
        bench_start(systems, 1 if args.quick and not args.rounds else rounds)
        print()
    if args.only in (None, "latency", "bandwidth"):
        wanted = [*systems, Floor(), Floor(direct=True)]
        with running(wanted) as live:
            if args.only in (None, "latency"):
                bench_latency(wanted, live, rounds, calls)
                print()
            if args.only in (None, "bandwidth"):
                ok = bench_bandwidth(wanted, live, sizes, rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
