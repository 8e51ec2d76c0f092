"""Load-balanced engine choice against real controllers: each scheme, ``targets``, ``hwm``.

Each scheme is the controller's (``corral controller --scheme``, ``Cluster(scheme=...)``), so
each test starts its own small cluster. Tasks that must stay busy wait for a file the test
creates (a gate), never for a fixed time.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import EngineError, ImpossibleDependency, interactive

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.client import Client
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(90)

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0

#: How soon the tasks of a SIGKILLed engine must fail (heartbeat detection, then at once).
SETTLE_WITHIN = 5.0

SCHEMES = ["leastload", "lru", "plainrandom", "twobin", "weighted"]


@interactive
def square(x: int) -> int:
    """Return x * x."""
    return x * x


@interactive
def engine_pid() -> int:
    """Return the engine's process id."""
    import os

    return os.getpid()


@interactive
def hold(started: str, gate: str, deadline: float = 30.0) -> int:
    """Create ``started``, then wait (at most ``deadline`` s) until ``gate`` exists; return the pid."""
    import os
    import time
    from pathlib import Path

    Path(started).write_text(str(os.getpid()))
    end = time.monotonic() + deadline
    while not Path(gate).exists() and time.monotonic() < end:
        time.sleep(0.01)
    return os.getpid()


def _engines_of(rc: Client) -> dict[int, int]:
    """pid -> engine id of every engine (through the direct view, before any engine is busy)."""
    return dict(zip(rc[:].apply_sync(engine_pid), rc.ids, strict=True))


def _placed(rc: Client, n: int, pids: dict[int, int]) -> list[int]:
    """Run ``n`` tasks one after another; return the engine id each ran on."""
    lbv = rc.load_balanced_view()
    found = []
    for _ in range(n):
        ar = lbv.apply_async(engine_pid)
        pid = ar.get(DEADLINE)
        assert ar.metadata["engine_id"] == pids[pid], "the metadata names the engine the task ran on"
        found.append(pids[pid])
    return found


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_runs_tasks_right_and_spreads_them_as_it_says(
    scheme: str,
    cluster_factory: Callable[..., tuple[Cluster, Client]],
    wait_until: Callable[..., Any],
    tmp_path: Path,
) -> None:
    _, rc = cluster_factory(3, scheme=scheme)
    pids = _engines_of(rc)
    lbv = rc.load_balanced_view()

    assert lbv.map_sync(square, range(60)) == [x * x for x in range(60)]
    assert lbv.apply_sync(square, 12) == 144
    # every engine serves, whatever the scheme
    seq = _placed(rc, 24, pids)
    assert set(seq) == {0, 1, 2}, seq
    if scheme in ("leastload", "lru"):
        # idle engines: both take the least recently used one, a strict rotation
        assert len(set(seq[:3])) == 3, seq
        assert all(seq[i] == seq[i % 3] for i in range(24)), seq
    elif scheme == "twobin":
        # the most recently used engine loses every tie of the two drawn: never twice in a row
        assert all(a != b for a, b in itertools.pairwise(seq)), seq
    else:
        # random choice: not the rotation the deterministic schemes make (chance ~1e-10)
        assert not all(seq[i] == seq[i % 3] for i in range(24)), seq

    # one engine busy with a task until the gate opens
    started, gate = tmp_path / "started", tmp_path / "gate"
    busy = lbv.apply_async(hold, str(started), str(gate))
    busy_engine = pids[int(wait_until(lambda: started.exists() and started.read_text(), "the long task starts"))]
    try:
        if scheme in ("leastload", "twobin"):
            # both prefer the lighter engine: nothing more goes to the busy one
            assert busy_engine not in _placed(rc, 6, pids)
        elif scheme == "lru":
            # lru ignores load: the third of three tasks goes to the busy engine, behind the long task
            ars = [lbv.apply_async(engine_pid) for _ in range(3)]
            quick = [pids[a.get(DEADLINE)] for a in ars[:2]]
            assert busy_engine not in quick
            assert not ars[2].done(), "the task queued behind the long one cannot have run"
        else:
            # random choice may queue some behind the long task: they finish once it does
            ars = [lbv.apply_async(square, i) for i in range(12)]
    finally:
        gate.touch()
    if scheme in ("plainrandom", "weighted"):
        assert [a.get(DEADLINE) for a in ars] == [i * i for i in range(12)]
    assert pids[busy.get(DEADLINE)] == busy_engine
    if scheme == "lru":
        assert pids[ars[2].get(DEADLINE)] == busy_engine


def test_targets_restrict_the_engines_tasks_run_on(rc: Client) -> None:
    pids = _engines_of(rc)
    lbv = rc.load_balanced_view(targets=[1, 3])
    ars = [lbv.apply_async(engine_pid) for _ in range(24)]
    assert {pids[a.get(DEADLINE)] for a in ars} == {1, 3}
    # a single id, a negative id, and a per-call override
    assert {pids[rc.load_balanced_view(targets=2).apply_sync(engine_pid)] for _ in range(4)} == {2}
    assert pids[rc.load_balanced_view(targets=-1).apply_sync(engine_pid)] == rc.ids[-1]
    with lbv.temp_flags(targets=0):
        assert {pids[lbv.apply_sync(engine_pid)] for _ in range(4)} == {0}
    assert lbv.targets == [1, 3]
    # a dead or unknown target is refused in the client, naming the live ones
    with pytest.raises(IndexError, match="99"):
        rc.load_balanced_view(targets=[99]).apply_async(engine_pid)


def test_tasks_whose_target_engines_all_die_fail_at_once(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any], tmp_path: Path
) -> None:
    _, rc = cluster_factory(2, hwm=2)
    pid1 = rc[1].apply_sync(engine_pid)
    started, gate = tmp_path / "started", tmp_path / "gate"
    # engine 1 busy; of three more tasks for engine 1 only, one is queued there (hwm 2) and
    # two are held by the scheduler
    only1 = rc.load_balanced_view(targets=1)
    busy = only1.apply_async(hold, str(started), str(gate))
    wait_until(started.exists, "the long task starts")
    queued = [only1.apply_async(square, i) for i in range(3)]
    wait_until(lambda: rc.queue_status()["unassigned"] == 2, "two tasks held by the scheduler")
    os.kill(pid1, signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(EngineError):
        busy.get(DEADLINE)
    # the one queued on the engine never started: it goes back, and, like the two held by
    # the scheduler, has nowhere left to run
    for ar in queued:
        with pytest.raises(ImpossibleDependency, match="target"):
            ar.get(DEADLINE)
    assert time.monotonic() - killed < SETTLE_WITHIN, "the stranded tasks fail at once"
    gate.touch()
    assert rc.load_balanced_view().apply_sync(square, 3) == 9


def test_hwm_bounds_the_tasks_outstanding_on_each_engine(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any], tmp_path: Path
) -> None:
    _, rc = cluster_factory(2, hwm=1)
    lbv = rc.load_balanced_view()
    gates = [tmp_path / f"gate{i}" for i in range(2)]
    starts = [tmp_path / f"started{i}" for i in range(2)]
    long = [lbv.apply_async(hold, str(s), str(g)) for s, g in zip(starts, gates, strict=True)]
    wait_until(lambda: all(s.exists() for s in starts), "both engines run a long task")
    short = [lbv.apply_async(square, i) for i in range(4)]
    try:
        # with hwm=1 the scheduler keeps every other task: none is queued on an engine
        wait_until(lambda: rc.queue_status()["unassigned"] == 4, "four tasks held by the scheduler")
        status = rc.queue_status()
        assert [status[i]["tasks"] for i in (0, 1)] == [1, 1], status
        assert not any(ar.done() for ar in short)
        # one engine frees: everything goes there, none waits behind the other long task
        gates[0].touch()
        assert [ar.get(DEADLINE) for ar in short] == [0, 1, 4, 9]
        assert long[0].get(DEADLINE) > 0
        assert not long[1].done()
    finally:
        for g in gates:
            g.touch()
    assert long[1].get(DEADLINE) > 0


@interactive
def nap(seconds: float) -> float:
    """Sleep ``seconds``, then return them."""
    import time

    time.sleep(seconds)
    return seconds


def test_the_default_adaptive_hwm_deals_out_slow_tasks_two_per_engine(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any], tmp_path: Path
) -> None:
    _, rc = cluster_factory(2)
    lbv = rc.load_balanced_view()

    def queued_behind_two_long_tasks(name: str) -> dict[Any, Any]:
        """Block both engines, send 12 quick tasks, return queue_status while they wait."""
        gate = tmp_path / f"gate-{name}"
        starts = [tmp_path / f"started-{name}{i}" for i in range(2)]
        long = [lbv.apply_async(hold, str(s), str(gate)) for s in starts]
        try:
            wait_until(lambda: all(s.exists() for s in starts), "both engines run a long task")
            quick = [lbv.apply_async(square, i) for i in range(12)]
            wait_until(
                lambda: sum(v["tasks"] for k, v in rc.queue_status().items() if k != "unassigned") >= 4,
                "tasks reach the engines",
            )
            status = rc.queue_status()
        finally:
            gate.touch()
        assert [a.get(DEADLINE) for a in quick] == [i * i for i in range(12)]
        assert all(a.get(DEADLINE) for a in long)
        return status

    # after tasks of 30 ms each engine gets at most two (one running, one queued)
    assert lbv.map_sync(nap, [0.03] * 16) == [0.03] * 16
    slow = queued_behind_two_long_tasks("slow")
    assert [slow[i]["tasks"] for i in (0, 1)] == [2, 2], slow
    assert slow["unassigned"] == 10, slow
    # (whether it grows after trivial tasks depends on how fast this loaded machine runs them:
    # corral-scheduler's test_the_default_limit_adapts_to_how_long_tasks_take checks that)
