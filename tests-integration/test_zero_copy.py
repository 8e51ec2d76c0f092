"""A 100 MB numpy array pushed to an engine and pulled back is not copied on either side.

Shown two ways. Buffer identity: on the engine the pushed array is read-only, does not own its
memory, and its ``base`` chain ends in the ZeroMQ frame it arrived in; the pulled array is the
same on the client. Memory accounting (``VmRSS``/``VmHWM`` from ``/proc/<pid>/status``, the
peak reset through ``/proc/<pid>/clear_refs`` before each step): receiving 100 MB raises the
receiver's peak by about 100 MB (one copy would make it 200 MB), and sending it raises the
sender's peak by far less than 100 MB.

Both transports are checked. Between a client and an engine on one host (the default here) a
large buffer goes through a shared-memory segment (``corral.wire.shm``): the sender writes it
into the segment with ``write(2)`` (one kernel copy, as a socket send makes one; the sender
never maps it, so its peak stays low) and the receiver maps the segment read-only: its array's
``base`` chain ends in the mapped ``corral.wire.shm.Segment`` (an ``mmap``), and its peak grows by the mapped 100 MB (``VmRSS`` counts
mapped shared pages) and the segment stays named for it until its last array goes (then it
returns to the pool of free segments). With ``CORRAL_SHM=0`` the buffer travels as ZeroMQ frames and the chain
ends in the ``zmq.Frame``. Either way no second copy appears on either side, and the only
segments in ``/dev/shm`` are those the two arrays live in.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import interactive
from corral.wire.shm import segment_tag

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.client import Client
    from corral.cluster import Cluster

np = pytest.importorskip("numpy")

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status"),
]

MB = 2**20
SIZE = 100 * MB

#: Peak growth allowed beyond the array itself when receiving it (allocator and message slack):
#: far below the 100 MB a second copy would add.
SLACK = 30 * MB


def memory(reset_peak: bool = False) -> dict[str, int]:
    """This process's VmRSS and VmHWM in bytes; optionally reset VmHWM to VmRSS first."""
    if reset_peak:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


# the same function, run on the engine (by value, in the engine's namespace)
engine_memory = interactive(memory)


@interactive
def describe(name: str) -> dict[str, Any]:
    """How the array ``name`` in the engine's namespace holds its memory."""
    array = globals()[name]
    chain = []
    base = array.base
    while base is not None:
        chain.append(f"{type(base).__module__}.{type(base).__qualname__}")
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return {
        "writeable": array.flags.writeable,
        "owndata": array.flags.owndata,
        "chain": chain,
        "sum": float(array.sum()),
    }


def chain_of(array: Any) -> list[str]:
    chain = []
    base = array.base
    while base is not None:
        chain.append(f"{type(base).__module__}.{type(base).__qualname__}")
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return chain


def segments(key: bytes) -> list[str]:
    """The cluster's shared-memory segments in /dev/shm now, in flight or in use (not free)."""
    prefix = f"corral-{segment_tag(key)}-"
    if not os.path.isdir("/dev/shm"):
        return []
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix) and "-free-" not in n)


@pytest.mark.parametrize("transport", ["shm", "frames"])
def test_push_and_pull_of_100_mb_copy_nothing(
    cluster_factory: Callable[..., tuple[Cluster, Client]], monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    if transport == "frames":
        monkeypatch.setenv("CORRAL_SHM", "0")  # the client here and the engines it starts
    else:
        monkeypatch.delenv("CORRAL_SHM", raising=False)
    # the array's memory ends in the received ZeroMQ frame, or in the mapped segment
    holder = "Frame" if transport == "frames" else "corral.wire.shm.Segment"
    # a result's segment is kept for the hub's record (docs/data.md): mapped all the same
    result_holder = "Frame" if transport == "frames" else "corral.wire.shm.KeptSegment"
    _, rc = cluster_factory(1)
    if transport == "shm" and not rc.session.shm_routes:
        pytest.skip("this host cannot share memory between processes (no writable /dev/shm)")
    assert bool(rc.session.shm_routes) == (transport == "shm")
    engine = rc[0]
    engine.block = True
    array = np.arange(SIZE // 8, dtype=np.float64)
    total = float(array.sum())

    # push: the engine receives 100 MB once; the client sends without copying
    before_engine = engine.apply(engine_memory, True)
    before_client = memory(reset_peak=True)
    engine.push({"big": array})
    client_peak = memory()["VmHWM"] - before_client["VmRSS"]
    after_engine = engine.apply(engine_memory)
    engine_peak = after_engine["VmHWM"] - before_engine["VmRSS"]
    assert client_peak < SIZE / 2, f"the client copied while sending: its peak grew {client_peak / MB:.0f} MB"
    assert SIZE * 0.9 < engine_peak < SIZE + SLACK, f"engine peak grew {engine_peak / MB:.0f} MB for a 100 MB push"

    seen = engine.apply(describe, "big")
    assert seen["sum"] == total
    assert seen["writeable"] is False, seen
    assert seen["owndata"] is False, seen
    assert seen["chain"][-1].endswith(holder), seen["chain"]
    assert "builtins.memoryview" in seen["chain"], seen["chain"]

    # pull: the engine sends without copying; the client receives 100 MB once
    before_engine = engine.apply(engine_memory, True)
    before_client = memory(reset_peak=True)
    pulled = engine.pull("big")
    client_peak = memory()["VmHWM"] - before_client["VmRSS"]
    engine_peak = engine.apply(engine_memory)["VmHWM"] - before_engine["VmRSS"]
    assert engine_peak < SIZE / 2, f"the engine copied while sending: its peak grew {engine_peak / MB:.0f} MB"
    assert SIZE * 0.9 < client_peak < SIZE + SLACK, f"client peak grew {client_peak / MB:.0f} MB for a 100 MB pull"

    assert pulled.flags.writeable is False
    assert pulled.flags.owndata is False
    chain = chain_of(pulled)
    assert "builtins.memoryview" in chain, chain
    assert chain[-1].endswith(result_holder), chain
    assert not np.shares_memory(pulled, array)
    assert pulled.shape == array.shape
    assert pulled.dtype == array.dtype
    assert float(pulled.sum()) == total
    with pytest.raises(ValueError, match="read-only"):
        pulled[0] = 1.0
    # the only segments in use are the two the arrays live in: the engine's, and the result's,
    # kept for the hub's record (any client may fetch it) rather than addressed to this process
    receivers = sorted(name.split("-")[3] for name in segments(rc.session.key))
    expected = [] if transport == "frames" else sorted([str(engine.apply(os.getpid)), "kept"])
    assert receivers == expected
