"""Load-balanced ``map`` and ``imap`` against a real cluster, as a user sees them.

``imap`` streams more data than the client may hold: a separate client process (so its peak
RSS is its own) maps over a generator of large arrays and reports its ``VmHWM``. Tasks that must
stay unfinished wait for a file the test creates (a gate), never for a fixed time.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import AsyncMapResult, CompositeError, RemoteError, interactive

if TYPE_CHECKING:
    from conftest import Processes

    from corral.client import Client
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(60)

PEERS = Path(__file__).resolve().parent / "peers"

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0


@interactive
def divide(x: float) -> float:
    """Return 12 / x (ZeroDivisionError for 0)."""
    return 12 / x


@interactive
def gated(x: int, gate: str, deadline: float = 30.0) -> int:
    """Return x * 10; the element whose gate is not "" waits (at most ``deadline`` s) for that file."""
    import time
    from pathlib import Path

    end = time.monotonic() + deadline
    while gate and not Path(gate).exists() and time.monotonic() < end:
        time.sleep(0.01)
    return x * 10


@interactive
def engine_pid(x: Any) -> int:
    """Return the engine's process id."""
    import os

    return os.getpid()


def test_map_with_chunksize_is_ordered_and_sends_one_task_per_chunk(rc: Client) -> None:
    lbv = rc.load_balanced_view()
    for chunksize in (1, 7, 50, 100):
        amr = lbv.map_async(divide, range(1, 51), chunksize=chunksize)
        assert isinstance(amr, AsyncMapResult)
        assert len(amr) == -(-50 // chunksize), "one task per chunk"
        assert amr.get(DEADLINE) == [12 / x for x in range(1, 51)]
        assert list(amr) == [12 / x for x in range(1, 51)]
    # several sequences; the blocking form
    assert lbv.map_sync(lambda a, b: a * b, range(10), range(10, 20)) == [
        a * b for a, b in zip(range(10), range(10, 20), strict=True)
    ]
    # small chunks spread over the engines
    pids = lbv.map_sync(engine_pid, range(40))
    assert len(set(pids)) == len(rc.ids)
    with pytest.raises(ValueError, match="chunksize"):
        lbv.map_async(divide, range(3), chunksize=0)
    with pytest.raises(ValueError, match="differ in length"):
        lbv.map_async(lambda a, b: a, range(3), range(4))


def test_async_map_result_iterates_while_results_arrive(rc: Client, tmp_path: Path) -> None:
    assert len(rc.ids) == 4
    lbv = rc.load_balanced_view()
    gate, gate2 = tmp_path / "gate", tmp_path / "gate2"
    try:
        # element 3 waits for the gate; the first four tasks go to four different engines
        amr = lbv.map_async(gated, range(8), ["" if i != 3 else str(gate) for i in range(8)])
        it = iter(amr)
        assert [next(it) for _ in range(3)] == [0, 10, 20], "in order, before the map is done"
        assert not amr.done()
        gate.touch()
        assert list(it) == [30, 40, 50, 60, 70]
        # as completed: one task per engine, the gated first one comes last
        unordered = lbv.map_async(gated, range(4), [str(gate2), "", "", ""], ordered=False)
        un = iter(unordered)
        assert {next(un) for _ in range(3)} == {10, 20, 30}
        assert not unordered.done()
        gate2.touch()
        assert next(un) == 0
        assert unordered.get(DEADLINE) == [0, 10, 20, 30], "get() is in order"
    finally:
        gate.touch()
        gate2.touch()


def test_get_on_a_map_with_failures_names_the_failing_elements(rc: Client) -> None:
    lbv = rc.load_balanced_view()
    amr = lbv.map_async(divide, [1, 0, 2, 0, 3])
    with pytest.raises(CompositeError) as info:
        amr.get(DEADLINE)
    assert re.search(r"elements 1, 3 of 5 failed", str(info.value)), str(info.value)
    assert sorted(amr.failed_elements) == [1, 3]
    assert all(e.ename == "ZeroDivisionError" for e in amr.failed_elements.values())
    # chunks: the failed chunk is reported as its range
    amr = lbv.map_async(divide, [1, 2, 0, 4, 5, 6], chunksize=2)
    with pytest.raises(CompositeError) as info:
        amr.get(DEADLINE)
    assert "2-3" in str(info.value) or "2, 3" in str(info.value), str(info.value)
    assert sorted(amr.failed_elements) == [2, 3]
    # iterating reaches the good elements, then raises at the bad one
    it = iter(lbv.map_async(divide, [1, 2, 0, 4]))
    assert [next(it), next(it)] == [12.0, 6.0]
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        next(it)


def test_imap_is_lazy_ordered_or_not_with_bounded_outstanding_work(rc: Client) -> None:
    lbv = rc.load_balanced_view()
    read = []

    def numbers(n: int) -> Any:
        for i in range(1, n + 1):
            read.append(i)
            yield i

    results = lbv.imap(divide, numbers(40), max_outstanding=3)
    assert read == [], "nothing is read before the first next()"
    first = next(results)
    assert first == 12.0
    assert len(read) <= 4, f"at most max_outstanding (+1 as one finished) read ahead: {len(read)}"
    assert [first, *results] == [12 / x for x in range(1, 41)]
    assert len(read) == 40
    unordered = list(lbv.imap(divide, range(1, 41), ordered=False, chunksize=3))
    assert sorted(unordered) == sorted(12 / x for x in range(1, 41))
    with pytest.raises(ValueError, match="max_outstanding"):
        lbv.imap(divide, range(3), max_outstanding=0)
    with pytest.raises(RemoteError):
        list(lbv.imap(divide, [1, 0, 2]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.timeout(90)
def test_imap_streams_far_more_data_than_the_client_holds(cluster: Cluster, rc: Client, processes: Processes) -> None:
    arrays, mib = 48, 8  # 384 MiB made by the generator, twice (ordered and unordered)
    peer = processes.spawn(
        "imap-stream", str(PEERS / "imap_stream.py"), str(cluster.connection_file), str(arrays), str(mib)
    )
    assert peer.finish(75) == 0, peer.output()
    report = peer.events()[-1]
    assert report["ordered_ok"], report
    assert report["unordered_ok"], report
    outstanding = 2 * report["engines"]  # max_outstanding "auto"
    assert report["ahead"] <= outstanding, report
    growth = report["peak_after_mib"] - report["peak_before_mib"]
    # what may be in flight (arrays sent but unanswered), with room for one copy each: far
    # below the 384 MiB streamed
    bound = 2 * outstanding * mib
    assert growth < bound, f"the client's peak RSS grew {growth:.0f} MiB (bound {bound} MiB): {report}"
    assert arrays * mib >= 3 * bound
