#!/usr/bin/env python
"""Where a large push and pull spend CPU, and how many bytes each process copies.

Runs a corral cluster of one engine twice on this machine, once with shared memory for large
buffers (the default on one host) and once with ``CORRAL_SHM=0`` (every buffer as ZeroMQ
frames through the controller), pushes a float64 array of ``--size-mb`` MB to the engine and
pulls it back ``--rounds`` times, and prints per process (client, controller, engine), as
medians over rounds:

- wall time of the push and of the pull;
- CPU time (user + system, from ``/proc/<pid>/stat``) spent during them;
- ``write copies``: bytes through ``read``/``write`` system calls (``rchar + wchar`` in
  ``/proc/<pid>/io``) over the array size: a write into a shared-memory segment counts here,
  socket sends and receives (``send``/``recv``, which ZeroMQ uses) do not;
- ``loopback copies``: bytes sent over the loopback interface during the step
  (``/sys/class/net/lo/statistics/tx_bytes``, the whole machine, so other programs' traffic
  adds to it) over the array size: each socket hop is one copy into the kernel and one out;
- peak memory growth (``VmHWM`` after the step minus ``VmRSS`` before it, the peak reset through
  ``/proc/<pid>/clear_refs``).

Linux only. Usage::

    python tools/bench/copies.py                 # 400 MB, 3 rounds
    python tools/bench/copies.py --size-mb 800 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

from report import table

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def io_bytes(pid: int) -> int:
    """Bytes ``pid`` has read plus written through system calls (``rchar + wchar``)."""
    found = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            key, _, value = line.partition(":")
            found[key] = int(value)
    return found["rchar"] + found["wchar"]


def memory(pid: int, reset: bool = False) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes; optionally reset VmHWM first."""
    if reset:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def loopback_bytes() -> int:
    """Bytes sent over the loopback interface since boot (every process on the machine)."""
    with open("/sys/class/net/lo/statistics/tx_bytes") as f:
        return int(f.read())


def measure(pids: dict[str, int], step: Any) -> dict[str, Any]:
    """Run ``step()`` and return wall time, loopback bytes and, per process, CPU, I/O bytes and peak growth."""
    before = {name: (cpu_seconds(pid), io_bytes(pid), memory(pid, reset=True)["VmRSS"]) for name, pid in pids.items()}
    lo = loopback_bytes()
    start = time.perf_counter()
    step()
    wall = time.perf_counter() - start
    out: dict[str, Any] = {"wall": wall, "lo": loopback_bytes() - lo}
    for name, pid in pids.items():
        cpu0, io0, rss0 = before[name]
        out[name] = (cpu_seconds(pid) - cpu0, io_bytes(pid) - io0, memory(pid)["VmHWM"] - rss0)
    return out


def run(shm: bool, nbytes: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    import numpy as np

    from corral.cluster import Cluster

    os.environ["CORRAL_SHM"] = "1" if shm else "0"
    arr = np.arange(nbytes // 8, dtype=np.float64)
    results: dict[str, list[dict[str, Any]]] = {"push": [], "pull": []}
    cluster = Cluster(n=1, log_level="ERROR")
    rc = cluster.start_and_connect_sync()
    try:
        engine = rc[0]
        engine.block = True
        pids = {"client": os.getpid(), "controller": cluster.controller.pid, "engine": engine.apply(os.getpid)}
        assert bool(rc.session.shm_routes) == shm, "shared memory is not in the state asked for"
        pulled: list[Any] = []
        for _ in range(rounds):
            results["push"].append(measure(pids, lambda: engine.push({"a": arr})))
            results["pull"].append(measure(pids, lambda: pulled.append(engine.pull("a"))))
            if pulled[0].shape != arr.shape or float(pulled[0][-1]) != float(arr[-1]):
                raise RuntimeError("the pulled array differs from the pushed one")
            pulled.clear()
            engine.execute("a = None")
            # the client keeps every result it received: drop the pulled arrays, as direct.py does
            rc.results.clear()
            for req in getattr(getattr(rc, "_store", None), "_requests", {}).values():
                req.value = None
    finally:
        rc.close()
        cluster.stop_cluster_sync()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=400, help="array size in MB (1e6 bytes)")
    parser.add_argument("--rounds", type=int, default=3, help="push/pull rounds per transport")
    args = parser.parse_args()
    if args.size_mb < 2 or args.rounds < 1:
        parser.error("--size-mb must be at least 2 and --rounds at least 1")
    if not sys.platform.startswith("linux"):
        print("copies.py reads /proc: Linux only")
        return 0
    nbytes = args.size_mb * 1_000_000
    rows = []
    for shm in (True, False):
        results = run(shm, nbytes, args.rounds)
        label = "shared memory" if shm else "frames (CORRAL_SHM=0)"
        for step in ("push", "pull"):
            runs = results[step]
            row = [
                f"{label}, {step}",
                f"{statistics.median(r['wall'] for r in runs) * 1e3:,.0f}",
                f"{statistics.median(r['lo'] for r in runs) / nbytes:.2f}",
            ]
            for name in ("client", "controller", "engine"):
                cpu = statistics.median(r[name][0] for r in runs)
                copies = statistics.median(r[name][1] for r in runs) / nbytes
                peak = statistics.median(r[name][2] for r in runs) / 1e6
                row += [f"{cpu * 1e3:,.0f}", f"{copies:.2f}", f"{peak:,.0f}"]
            rows.append(row)
    print(
        f"push / pull of a {args.size_mb:,} MB float64 array to one engine, medians of {args.rounds} rounds; "
        "cpu ms = user+system; loopback = loopback bytes / array size; writes = read/write syscall bytes / array "
        "size; peak = MB of VmHWM growth"
    )
    headers = ["transport, step", "wall ms", "loopback"]
    for name in ("client", "controller", "engine"):
        headers += [f"{name} cpu ms", "writes", "peak MB"]
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
