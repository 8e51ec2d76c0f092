"""Engines restarted by their supervisor (``--restart``) and killed at a memory limit.

An engine that dies comes back under the same id within seconds, its running request failing
with an ``EngineError`` that says how it died; one that passes ``--memory-limit`` is killed
with ``memory limit exceeded``; and restarts are bounded, so an engine that keeps dying is let go.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import EngineError, interactive

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Peer, Processes

    from corral.client import Client
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(90)

#: How soon a restarted engine must serve again after its death (issue 7: back to size in 5 s).
BACK_WITHIN = 5.0

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE_S = 30.0


@interactive
def sleep_for(seconds: float) -> None:
    import time

    time.sleep(seconds)


@interactive
def hold_megabytes(n: int) -> int:
    import time

    block = bytearray(n * 2**20)
    for i in range(0, len(block), 4096):  # touch every page: resident, not just reserved
        block[i] = 1
    time.sleep(30)
    return len(block)


def add_engine(
    cluster: Cluster, rc: Client, processes: Processes, wait_until: Callable[..., Any], *flags: str
) -> tuple[Peer, int]:
    """Start one more engine with ``flags`` beside the cluster's; return it and its id."""
    before = set(rc.ids)
    peer = processes.spawn("engine", "-m", "corral.engine", "--connection-file", str(cluster.connection_file), *flags)
    wait_until(lambda: set(rc.ids) - before, "the extra engine registered")
    (eid,) = set(rc.ids) - before
    return peer, eid


def pid_of(rc: Client, eid: int) -> int | None:
    """The pid of engine ``eid``, or None while the client does not know a live engine by that id."""
    try:
        return rc[eid].apply_sync(os.getpid) if eid in rc.ids else None
    except (EngineError, IndexError):
        return None  # the client still held the dead engine's uuid for that id


def test_a_killed_engine_comes_back_under_the_same_id(
    cluster_factory: Callable[..., tuple[Cluster, Client]], processes: Processes, wait_until: Callable[..., Any]
) -> None:
    cluster, rc = cluster_factory(1)
    _, eid = add_engine(cluster, rc, processes, wait_until, "--restart", "3")
    pid = rc[eid].apply_sync(os.getpid)
    running = rc[eid].apply_async(sleep_for, 30)
    time.sleep(0.3)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EngineError, match="killed by SIGKILL"):
        running.get(10)

    wait_until(lambda: pid_of(rc, eid) not in (None, pid), f"engine {eid} serving again under its id")
    assert time.monotonic() - killed_at < BACK_WITHIN
    assert len(rc.ids) == 2


def test_an_engine_past_its_memory_limit_is_killed_and_restarted(
    cluster_factory: Callable[..., tuple[Cluster, Client]], processes: Processes, wait_until: Callable[..., Any]
) -> None:
    cluster, rc = cluster_factory(1)
    _, eid = add_engine(cluster, rc, processes, wait_until, "--restart", "3", "--memory-limit", "200")
    pid = rc[eid].apply_sync(os.getpid)
    with pytest.raises(EngineError, match="memory limit exceeded") as info:
        rc[eid].apply_async(hold_megabytes, 400).get(20)
    assert "limit 200 MB" in str(info.value)
    wait_until(lambda: pid_of(rc, eid) not in (None, pid), "the engine back after its kill")
    assert rc[eid].apply_sync(sum, [1, 2]) == 3


def test_an_engine_that_keeps_dying_is_let_go(
    cluster_factory: Callable[..., tuple[Cluster, Client]], processes: Processes, wait_until: Callable[..., Any]
) -> None:
    cluster, rc = cluster_factory(1)
    peer, eid = add_engine(cluster, rc, processes, wait_until, "--restart", "2")
    pids: list[int] = []
    for _ in range(3):  # the first death and two restarts

        def new_pid() -> int | None:
            pid = pid_of(rc, eid)
            return pid if pid not in pids else None

        pid = wait_until(new_pid, f"engine {eid} serving")
        pids.append(pid)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: eid not in rc.ids, f"engine {eid} gone after the kill")
    assert len(set(pids)) == 3
    assert peer.finish() == 128 + signal.SIGKILL  # the supervisor gave up and exited
    assert "not restarting it again" in peer.output()
    assert eid not in rc.ids
    assert rc.ids  # the rest of the cluster keeps serving
    assert rc[:].apply_sync(sum, [1, 2]) == [3] * len(rc.ids)


def test_a_cluster_s_local_engines_are_restarted_by_default(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any]
) -> None:
    cluster, rc = cluster_factory(2, engine_restarts=None)  # Cluster's own default
    assert cluster.engine_restarts == 3
    pid = rc[1].apply_sync(os.getpid)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: pid_of(rc, 1) not in (None, pid), "engine 1 serving again under its id")
    assert time.monotonic() - killed_at < BACK_WITHIN
    assert rc.ids == [0, 1]


def test_cluster_options_for_restarts_and_memory_are_checked() -> None:
    from corral.cluster import Cluster

    with pytest.raises(ValueError, match="engine_restarts"):
        Cluster(n=1, engine_restarts=-1)
    with pytest.raises(ValueError, match="engine_memory_limit"):
        Cluster(n=1, engine_memory_limit=0)


@interactive
def die_hard() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def test_a_task_that_kills_three_engines_fails_as_poisonous_and_the_cluster_recovers(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any]
) -> None:
    _, rc = cluster_factory(3, engine_restarts=3)
    lv = rc.load_balanced_view()
    with lv.temp_flags(retries=10):
        ar = lv.apply_async(die_hard)
    with pytest.raises(EngineError, match="poisonous") as info:
        ar.get(DEADLINE_S)
    assert "killed by SIGKILL" in str(info.value)
    assert "3 engines have died running it" in str(info.value)
    # three engines died under it, their supervisors brought them back: all three serve again
    wait_until(lambda: len([e for e in rc.ids if pid_of(rc, e) is not None]) == 3, "the cluster back to 3 engines")
    assert rc[:].apply_sync(sum, [1, 2]) == [3, 3, 3]
