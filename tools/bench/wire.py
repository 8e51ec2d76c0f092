#!/usr/bin/env python
"""corral.wire benchmark: small-message rate and large-array throughput, against anchors.

Runs in one process, without sockets, so it measures the Python work of the wire layer and
nothing of ZeroMQ or the network:

(a) small messages: pack + sign + unpack + verify of an apply-request-like message (about
    100 bytes of JSON content, no buffers) with corral's ``Session.serialize`` /
    ``Session.deserialize``, against jupyter_client's ``Session`` (HMAC-SHA256, its default)
    and a floor that only ``json.dumps``/``json.loads`` the same four dicts (no signing).
(b) large arrays: a float64 numpy array through corral's full path (``Serializer.dumps`` ->
    ``Session.serialize``, which digests every buffer -> ``Session.deserialize``, which checks
    every buffer digest -> ``Serializer.loads``), against plain memory copies (``arr.copy()``,
    ``np.copyto`` into a preallocated array) and jupyter_client's ``Session`` carrying the
    pickled array as buffers (it signs only the small frames, so it never reads them).

Every case runs once per round, cases interleaved in a rotating order so that noise on a shared
machine hits them alike; the table shows medians over rounds and ratios of medians.
See ``tools/bench/README.md``. Needs only numpy, pyzmq, blake3 and corral-wire; jupyter_client
is optional (its rows read "not installed" without it).

Usage::

    python tools/bench/wire.py                 # 800 MB array, 7 rounds
    python tools/bench/wire.py --quick         # seconds; a smoke test for CI
    python tools/bench/wire.py --size-mb 200 --rounds 11 --messages 20000
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import pickle
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import blake3
import numpy as np
import zmq
from report import median, spread, table

import corral.wire
from corral.wire import DEFAULT_SCHEME, MessageRejected, Serializer, Session

try:
    import jupyter_client
    from jupyter_client import session as jc_session
except ImportError:  # an optional anchor
    jupyter_client = None
    jc_session = None

NOT_INSTALLED = "not installed"
KEY = bytes(range(32))  # fixed, so runs are comparable; any 32-byte key costs the same

# What an ipyparallel-style apply request carries besides its buffers.
METADATA = {"after": [], "follow": [], "timeout": None, "targets": [], "retries": 0}
CONTENT = {
    "serializer": "pickle",
    "targets": [0, 1, 2, 3],
    "block": False,
    "track": False,
    "label": "bench-apply",
    "chunk": {"index": 17, "of": 64},
}

SMALL_TARGET = 2.0  # corral >= 2x jupyter_client msgs/s
LARGE_TARGET = 0.5  # corral >= 0.5x raw copy GB/s
SMALL_SLICES = 20  # each round of (a) is interleaved in this many slices


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Case:
    """One column of a table: ``prepare`` runs untimed before each timed ``run``."""

    name: str
    run: Callable[[Any], Any] | None  # None: not installed
    prepare: Callable[[], Any] = lambda: None
    after: Callable[[Any], None] = lambda result: None
    times: list[float] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.run is not None


def run_rounds(cases: list[Case], rounds: int, slices: int = 1) -> None:
    """Time every available case once per round; gc off while timed.

    A round is cut into ``slices`` slices; each slice runs every case once, in an order that
    rotates, and a case's round time is the sum of its slices. Interleaving this finely makes
    a burst of load from other processes land on all cases alike, so per-round ratios are fair.
    """
    live = [c for c in cases if c.available]
    turn = 0
    for _ in range(rounds):
        spent = dict.fromkeys(map(id, live), 0.0)
        for _ in range(slices):
            shift = turn % len(live)
            turn += 1
            for case in live[shift:] + live[:shift]:
                state = case.prepare()
                gc.collect()
                gc.disable()
                try:
                    t0 = time.perf_counter()
                    result = case.run(state)
                    elapsed = time.perf_counter() - t0
                finally:
                    gc.enable()
                case.after(result)
                del result, state
                spent[id(case)] += elapsed
        for case in live:
            case.times.append(spent[id(case)])


def verdict(ratio: float, target: float) -> str:
    return f"target >= {target:g}x: {'met' if ratio >= target else 'MISSED'}"


# -- (a) small messages ----------------------------------------------------------------------


def _corral_pair(scheme: str) -> tuple[Session, Session]:
    return Session(KEY, scheme=scheme, username="bench"), Session(KEY, scheme=scheme, username="bench")


def small_cases(n: int) -> tuple[list[Case], Case, Case | None]:
    """Return the cases, the corral default case and the jupyter_client case."""

    def corral_case(name: str, scheme: str) -> Case:
        sender, receiver = _corral_pair(scheme)
        serialize, deserialize = sender.serialize, receiver.deserialize

        def prepare() -> list[Any]:
            return [sender.msg("apply_request", CONTENT, metadata=METADATA) for _ in range(n)]

        def run(msgs: list[Any]) -> Any:
            for m in msgs:
                out = deserialize(serialize(m)[1:])
            return out

        def after(out: Any) -> None:
            assert out.content == CONTENT, "corral round trip changed the content"
            assert out.metadata == METADATA, "corral round trip changed the metadata"

        return Case(name, run, prepare, after)

    corral = corral_case(f"corral Session ({DEFAULT_SCHEME}, default)", DEFAULT_SCHEME)
    corral_hmac = corral_case("corral Session (hmac-sha256-v1)", "hmac-sha256-v1")

    jc: Case
    if jc_session is None:
        jc = Case("jupyter_client Session (hmac-sha256)", None)
    else:
        jsend = jc_session.Session(key=KEY, username="bench")
        jrecv = jc_session.Session(key=KEY, username="bench")
        jserialize, jdeserialize = jsend.serialize, jrecv.deserialize

        def jprepare() -> list[dict[str, Any]]:
            # distinct msg_ids: jupyter_client refuses a signature it has seen (its replay check)
            return [jsend.msg("apply_request", CONTENT, metadata=METADATA) for _ in range(n)]

        def jrun(msgs: list[dict[str, Any]]) -> Any:
            for m in msgs:
                out = jdeserialize(jserialize(m)[1:])
            return out

        def jafter(out: Any) -> None:
            assert out["content"] == CONTENT, "jupyter_client round trip changed the message"

        jc = Case(f"jupyter_client Session ({jsend.signature_scheme})", jrun, jprepare, jafter)

    floor_header = _corral_pair(DEFAULT_SCHEME)[0].msg_header("apply_request")
    dumps, loads = json.dumps, json.loads

    def floor_run(_: Any) -> Any:
        h, p, md, c = floor_header, {}, METADATA, CONTENT
        for _ in range(n):
            frames = [b"<IDS|MSG>", b"", dumps(h).encode(), dumps(p).encode(), dumps(md).encode(), dumps(c).encode()]
            out = [loads(f) for f in frames[2:]]
        return out

    floor = Case("raw json floor (dumps+loads, no signing)", floor_run)
    return [corral, corral_hmac, jc, floor], corral, (jc if jc.available else None)


def bench_small(n: int, rounds: int) -> None:
    slices = max(1, min(SMALL_SLICES, n // 100))
    n -= n % slices
    cases, corral, jc = small_cases(n // slices)
    run_rounds(cases, rounds, slices)
    jc_rate = n / median(jc.times) if jc else None
    rows = []
    for c in cases:
        if not c.available:
            rows.append([c.name, NOT_INSTALLED, "-", "-", "-"])
            continue
        rate = n / median(c.times)
        rows.append(
            [
                c.name,
                f"{rate:,.0f}",
                f"{1e6 / rate:.2f}",
                f"{rate / jc_rate:.2f}x" if jc_rate else "-",
                spread(c.times),
            ]
        )
    payload = sum(len(json.dumps(d)) for d in (CONTENT,))
    print(
        f"(a) small messages: serialize + deserialize in process, {payload}-byte JSON content, "
        f"no buffers; {n:,} msgs/round, {rounds} rounds, medians"
    )
    print(table(["path", "msgs/s", "us/msg", "vs jupyter_client", "spread"], rows))
    if jc_rate:
        ratio = (n / median(corral.times)) / jc_rate
        paired = [j / c for c, j in zip(corral.times, jc.times, strict=True)]
        print(
            f"  corral / jupyter_client = {ratio:.2f}x   ({verdict(ratio, SMALL_TARGET)}; "
            f"per-round ratios: median {median(paired):.2f}x, range {min(paired):.2f}-{max(paired):.2f}x)"
        )
    else:
        print(f"  corral / jupyter_client: jupyter_client {NOT_INSTALLED}")


# -- (b) large arrays ------------------------------------------------------------------------


def check_zero_copy(arr: np.ndarray) -> list[str]:
    """Send ``arr`` once through corral's path; return what is wrong (nothing, ideally)."""
    problems = []
    ser = Serializer()
    sender, receiver = _corral_pair(DEFAULT_SCHEME)
    frames = ser.dumps(arr)
    wire = sender.serialize(sender.msg("data"), buffers=frames)
    msg = receiver.deserialize(wire[1:])
    out = ser.loads(msg.buffers)
    sent_frame = np.frombuffer(wire[-1], dtype=np.uint8)
    if len(frames) != 2:
        problems.append(f"the array went as {len(frames) - 1} out-of-band buffers, expected 1")
    if out.ctypes.data != sent_frame.ctypes.data or not np.shares_memory(out, arr):
        problems.append("the received array does not use the sent frame's memory (copied)")
    if out.flags.writeable:
        problems.append("the received array is writeable, expected read-only")
    if out.shape != arr.shape or out.dtype != arr.dtype:
        problems.append(f"received {out.dtype}{out.shape}, sent {arr.dtype}{arr.shape}")
    # The timed path must really check buffer digests: a flipped byte has to be refused.
    small = np.arange(1 << 15, dtype=np.float64)
    wire = sender.serialize(sender.msg("data"), buffers=ser.dumps(small))
    tampered = bytearray(wire[-1])
    tampered[len(tampered) // 2] ^= 1
    session_log = logging.getLogger("corral.wire.session")
    was_disabled, session_log.disabled = session_log.disabled, True  # the drop is expected here
    try:
        receiver.deserialize([*wire[1:-1], tampered], channel="bench")
        problems.append("a tampered buffer was accepted")
    except MessageRejected:
        pass
    finally:
        session_log.disabled = was_disabled
    return problems


def large_cases(arr: np.ndarray) -> tuple[list[Case], Case, Case, Case]:
    def corral_case(name: str, scheme: str) -> Case:
        ser = Serializer()
        sender, receiver = _corral_pair(scheme)

        def run(_: Any) -> Any:
            frames = ser.dumps(arr)
            wire = sender.serialize(sender.msg("data"), buffers=frames)
            msg = receiver.deserialize(wire[1:])
            return ser.loads(msg.buffers)

        def after(out: Any) -> None:
            assert out.shape == arr.shape
            assert np.shares_memory(out, arr)

        return Case(name, run, after=after)

    corral = corral_case(f"corral full path ({DEFAULT_SCHEME}, default)", DEFAULT_SCHEME)
    corral_b3 = corral_case("corral full path (blake3-v1)", "blake3-v1")
    corral_hmac = corral_case("corral full path (hmac-sha256-v1)", "hmac-sha256-v1")

    dst = np.empty_like(arr)
    np.copyto(dst, arr)  # fault its pages in now: "preallocated" means mapped, not just reserved
    copyto = Case("np.copyto into a preallocated array", lambda _: np.copyto(dst, arr))
    fresh = Case("arr.copy() (allocates fresh pages)", lambda _: arr.copy())

    jc: Case
    if jc_session is None:
        jc = Case("jupyter_client Session, pickle-5 buffers", None)
    else:
        jsend = jc_session.Session(key=KEY, username="bench")
        jrecv = jc_session.Session(key=KEY, username="bench")

        def jrun(_: Any) -> Any:
            bufs: list[pickle.PickleBuffer] = []
            head = pickle.dumps(arr, protocol=5, buffer_callback=bufs.append)
            frames = jsend.serialize(jsend.msg("data"))  # signs the four JSON frames only
            frames += [head, *(b.raw() for b in bufs)]
            msg = jrecv.deserialize(frames[1:])
            return pickle.loads(msg["buffers"][0], buffers=msg["buffers"][1:])

        def jafter(out: Any) -> None:
            assert out.shape == arr.shape
            assert np.shares_memory(out, arr)

        jc = Case("jupyter_client Session, pickle-5 buffers", jrun, after=jafter)

    flat = memoryview(arr).cast("B")
    hash_once = Case(
        "one BLAKE3 pass alone (multi-threaded)",
        lambda _: blake3.blake3(flat, max_threads=blake3.blake3.AUTO).digest(),
    )

    return [corral, corral_b3, corral_hmac, hash_once, copyto, fresh, jc], corral, copyto, fresh


def bench_large(size_mb: int, rounds: int) -> bool:
    arr = np.random.default_rng(0).random(size_mb * 1_000_000 // 8)
    nbytes = arr.nbytes
    problems = check_zero_copy(arr)
    cases, corral, copyto, fresh = large_cases(arr)
    run_rounds(cases, rounds)
    copy_gbs = nbytes / median(copyto.times) / 1e9
    rows = []
    for c in cases:
        if not c.available:
            rows.append([c.name, NOT_INSTALLED, "-", "-", "-"])
            continue
        t = median(c.times)
        gbs = nbytes / t / 1e9
        rows.append([c.name, f"{gbs:.2f}", f"{t * 1e3:.1f}", f"{gbs / copy_gbs:.2f}x", spread(c.times)])
    print(
        f"(b) large array: float64, {nbytes / 1e6:,.0f} MB, one buffer, in process; "
        f"{rounds} rounds, medians; GB/s = 1e9 bytes of array per second"
    )
    print(table(["path", "GB/s", "ms", "vs np.copyto", "spread"], rows))
    corral_gbs = nbytes / median(corral.times) / 1e9
    fresh_gbs = nbytes / median(fresh.times) / 1e9
    r1, r2 = corral_gbs / copy_gbs, corral_gbs / fresh_gbs
    print(f"  corral / np.copyto   = {r1:.2f}x   ({verdict(r1, LARGE_TARGET)})")
    print(f"  corral / arr.copy()  = {r2:.2f}x   ({verdict(r2, LARGE_TARGET)})")
    if problems:
        for p in problems:
            print(f"  ZERO-COPY CHECK FAILED: {p}")
    else:
        print("  zero-copy check: received array uses the sent frame's memory, read-only; tampered buffer refused")
    return not problems


# -- main ------------------------------------------------------------------------------------


def describe_environment() -> str:
    jc = jupyter_client.__version__ if jupyter_client else NOT_INSTALLED
    packer = ""
    if jc_session is not None:
        packer = " (packer: orjson)" if getattr(jc_session, "has_orjson", False) else " (packer: json)"
    b3 = getattr(blake3, "__version__", "?")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"corral-wire {corral.wire.__version__} | Python {platform.python_version()} | numpy {np.__version__} | "
        f"pyzmq {zmq.__version__} | blake3 {b3} | jupyter_client {jc}{packer}\n"
        f"{platform.machine()}, {cpus} CPUs usable, load average {load}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=None, help="array size in MB (1e6 bytes) for (b) (default 800)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds per case; medians are reported (default 7)"
    )
    parser.add_argument("--messages", type=int, default=None, help="messages per round in (a) (default 10000)")
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds: a smoke test in seconds")
    parser.add_argument("--only", choices=("small", "large"), help="run only one part")
    args = parser.parse_args(argv)
    size_mb = args.size_mb or (8 if args.quick else 800)
    rounds = args.rounds or (3 if args.quick else 7)
    messages = args.messages or (1000 if args.quick else 10000)
    if size_mb < 1 or rounds < 1 or messages < 1:
        parser.error("--size-mb, --rounds and --messages must be positive")

    print(describe_environment())
    print()
    ok = True
    if args.only != "large":
        bench_small(messages, rounds)
        print()
    if args.only != "small":
        ok = bench_large(size_mb, rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
