"""Retries of load-balanced tasks: after an exception, and after an engine is SIGKILLed.

Every attempt is recorded in the final reply's metadata (``attempts``). A task stranded on a
dead engine is resubmitted, or failed with ``EngineError``, as soon as the controller knows the
engine is gone: no fixed waiting period.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import CompositeError, EngineError, RemoteError, interactive

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.client import Client
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(90)

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0

#: How soon after a SIGKILL a map must have settled: the controller learns of the death from
#: the engine's supervisor (or, failing that, from missed heartbeats: 4 x 0.5 s), then acts.
SETTLE_WITHIN = 5.0


@interactive
def flaky(counter: str, failures: int) -> int:
    """Fail the first ``failures`` calls (counted in the file ``counter``), then return the pid."""
    import os

    with open(counter, "a+") as f:
        f.write("x")
        f.seek(0)
        calls = len(f.read())
    if calls <= failures:
        raise RuntimeError(f"attempt {calls} fails on purpose")
    return os.getpid()


@interactive
def slow_double(x: int) -> int:
    """Return 2 * x after 10 ms."""
    import time

    time.sleep(0.01)
    return 2 * x


def test_retries_after_an_exception_record_every_attempt(rc: Client, tmp_path: Path) -> None:
    pids = dict(zip(rc[:].apply_sync(os.getpid), rc.ids, strict=True))
    lbv = rc.load_balanced_view()
    lbv.set_flags(retries=2)
    ar = lbv.apply_async(flaky, str(tmp_path / "a"), 2)
    pid = ar.get(DEADLINE)
    attempts = ar.metadata["attempts"]
    assert [a["status"] for a in attempts] == ["error", "error", "ok"]
    assert attempts[0]["error"]["ename"] == "RuntimeError"
    assert "attempt 1 fails" in attempts[0]["error"]["evalue"]
    assert attempts[-1]["engine_id"] == pids[pid] == ar.metadata["engine_id"]
    # a retry goes to an engine the task has not failed on
    assert len({a["engine_id"] for a in attempts}) == 3, attempts
    assert all(a["started"] and a["completed"] for a in attempts)

    # more failures than retries: the last attempt's error, every attempt recorded
    ar = lbv.apply_async(flaky, str(tmp_path / "b"), 5)
    with pytest.raises(RemoteError, match="attempt 3 fails"):
        ar.get(DEADLINE)
    assert [a["status"] for a in ar.metadata["attempts"]] == ["error"] * 3
    # without retries: one attempt, metadata as the engine sent it
    lbv.retries = 0
    ar = lbv.apply_async(flaky, str(tmp_path / "c"), 1)
    with pytest.raises(RemoteError, match="attempt 1 fails"):
        ar.get(DEADLINE)
    assert "attempts" not in ar.metadata
    # retries on a map: every element right although each first attempt fails
    lbv.retries = 1
    counters = [str(tmp_path / f"m{i}") for i in range(8)]
    assert len(lbv.map_sync(flaky, counters, [1] * 8)) == 8


def _kill_mid_map(rc: Client, retries: int) -> tuple[Any, int, float]:
    """Map 200 tasks with ``retries``; SIGKILL one engine mid-way. Return (amr, its id, kill time)."""
    victim = rc.ids[1]
    pid = rc[victim].apply_sync(os.getpid)
    lbv = rc.load_balanced_view(retries=retries)
    amr = lbv.map_async(slow_double, range(200))
    deadline = time.monotonic() + DEADLINE
    while amr.progress < 40:
        assert time.monotonic() < deadline, f"the map never got going: {amr.progress} done"
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    assert amr.progress < 200, "the map finished before the kill: make it longer"
    return amr, victim, killed


def test_a_200_task_map_survives_an_engine_sigkill_with_retries(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
) -> None:
    _, rc = cluster_factory(3)  # the default, adaptive hwm
    amr, victim, killed = _kill_mid_map(rc, retries=1)
    assert amr.get(DEADLINE) == [2 * x for x in range(200)]
    assert time.monotonic() - killed < SETTLE_WITHIN
    moved = [md for md in amr.metadata if len(md["attempts"]) > 1]
    # the task the engine died under was retried; those queued behind it went back unspent
    assert len(moved) == 1, [md["attempts"] for md in moved]
    for md in moved:
        first, last = md["attempts"][0], md["attempts"][-1]
        assert first["engine_id"] == victim
        assert first["status"] == "error"
        assert first["error"]["ename"] == "EngineError"
        assert last["status"] == "ok"
        assert md["engine_id"] != victim
    assert victim not in rc.ids


def test_without_retries_only_the_task_the_engine_died_under_fails_at_once(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
) -> None:
    _, rc = cluster_factory(3)
    amr, victim, killed = _kill_mid_map(rc, retries=0)
    with pytest.raises(CompositeError) as info:
        amr.get(DEADLINE)
    settled = time.monotonic() - killed
    assert settled < SETTLE_WITHIN, f"the map settled {settled:.1f} s after the kill"
    failed = amr.failed_elements
    # only the task the engine died under fails; those queued behind it never started and
    # run elsewhere
    assert len(failed) == 1, failed
    for err in failed.values():
        assert isinstance(err, EngineError), err
        assert err.engine_id == victim
    # the message names the failed elements
    named = re.search(r"elements? ([\d, ]+) of 200 failed", str(info.value))
    assert named, str(info.value)
    assert {int(n) for n in named.group(1).split(",")} == set(failed)
    # every other element succeeded
    assert [md["status"] for md in amr.metadata].count("ok") == 200 - len(failed)
