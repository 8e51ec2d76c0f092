"""BroadcastView at scale: 16 engines, one message per call, the same results as a DirectView.

This is the suite's scale test, so it starts its own cluster of 16 engines (``scale=True``);
everything else stays at 4 or fewer. The broadcasts go through a tree of scheduler processes
two levels deep (2 inner nodes, 4 leaves of 4 engines each).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from corral.client import BroadcastView, CompositeError, EngineError, RemoteError, interactive

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.client import Client
    from corral.cluster import Cluster

ENGINES = 16

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0


def broadcast_nodes(controller_pid: int) -> list[int]:
    """The pids of the broadcast scheduler processes the controller ``controller_pid`` started."""
    children: list[int] = []
    for task in Path(f"/proc/{controller_pid}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    found = []
    for pid in children:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"corral.scheduler.broadcast_node" in cmdline:
            found.append(pid)
    return found


@interactive
def describe(x: int) -> tuple[int, int]:
    """Return (this engine's pid, x + the engine's ``offset``)."""
    import os

    return os.getpid(), x + offset  # type: ignore[name-defined]  # noqa: F821


@interactive
def fail_on(pid: int) -> int:
    """Raise on the engine whose pid is ``pid``; return the pid elsewhere."""
    import os

    if os.getpid() == pid:
        raise ValueError(f"engine {pid} refuses")
    return os.getpid()


@pytest.mark.timeout(150)
def test_broadcast_on_16_engines_gives_a_direct_view_s_results(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
) -> None:
    cluster, rc = cluster_factory(ENGINES, scale=True, engine_timeout=90.0, broadcast_depth=2)
    assert len(rc.ids) == ENGINES
    assert cluster.controller is not None
    nodes = broadcast_nodes(cluster.controller.pid)
    assert len(nodes) == 2 + 4
    bv = rc.broadcast_view()
    dv = rc.direct_view()
    assert isinstance(bv, BroadcastView)
    pids = dv.apply_sync(os.getpid)
    assert len(set(pids)) == ENGINES

    # push through the broadcast, read back both ways; each engine's own value
    bv.push({"offset": 100}, block=True)
    dv.scatter("mine", list(range(ENGINES)), flatten=True, block=True)
    assert bv.pull("offset", block=True) == dv.pull("offset", block=True) == [100] * ENGINES
    assert bv.pull("mine", block=True) == dv.pull("mine", block=True) == list(range(ENGINES))

    # apply: same results, in the same (target) order, as the direct view
    ar = bv.apply_async(describe, 5)
    assert ar.get(DEADLINE) == dv.apply_sync(describe, 5) == [(pid, 105) for pid in pids]
    assert len(ar) == ENGINES
    assert [md["engine_id"] for md in ar.metadata] == rc.ids
    # execute with a result per engine
    assert bv.execute("mine * 2", block=True).get(DEADLINE) == [2 * i for i in range(ENGINES)]

    # a subset of targets, and a single one
    half = rc.broadcast_view(targets=rc.ids[::2])
    assert half.apply_sync(os.getpid) == pids[::2]
    assert rc.broadcast_view(targets=3).apply_sync(os.getpid) == pids[3]

    # one engine failing: a CompositeError like the direct view's, naming that engine only
    with pytest.raises(CompositeError) as from_bv:
        bv.apply_sync(fail_on, pids[7])
    with pytest.raises(CompositeError) as from_dv:
        dv.apply_sync(fail_on, pids[7])
    assert len(from_bv.value.elist) == len(from_dv.value.elist) == 1
    err = from_bv.value.elist[0]
    assert isinstance(err, RemoteError)
    assert not isinstance(err, EngineError)
    assert err.engine_info["engine_id"] == 7
    assert "refuses" in str(from_bv.value)

    # many calls in flight at once all come back right
    many: list[Any] = [bv.apply_async(describe, i) for i in range(20)]
    for i, pending in enumerate(many):
        assert [v for _, v in pending.get(DEADLINE)] == [100 + i] * ENGINES
    assert np.array_equal(
        np.array(bv.apply_sync(lambda: 3)),
        np.full(ENGINES, 3),
    )
    assert sorted(broadcast_nodes(cluster.controller.pid)) == sorted(nodes)  # none died on the way
