"""Broadcasts through a tree of scheduler processes: engine loss below a leaf, and clean stops.

The 16-engine behaviour (same results as a DirectView, targets, failures) is in
test_broadcast_scale.py, through a tree two levels deep; here a 4-engine cluster with one level
(two leaves of two engines each) covers what breaks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from corral.client import CompositeError, EngineError, interactive

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.client import Client
    from corral.cluster import Cluster

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0


def broadcast_nodes(controller_pid: int) -> list[int]:
    """The pids of the broadcast scheduler processes the controller ``controller_pid`` started."""
    children: list[int] = []
    for task in Path(f"/proc/{controller_pid}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    return [p for p in children if b"corral.scheduler.broadcast_node" in _cmdline(p)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@interactive
def wait_for_file(path: str) -> int:
    """Wait (at most a minute) until ``path`` exists; return this engine's pid."""
    import os
    import time

    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


@pytest.mark.timeout(120)
def test_an_engine_killed_mid_broadcast_below_a_leaf_fails_for_that_engine_only(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
    alive: Callable[[int], bool],
    wait_until: Callable[..., object],
    tmp_path: Path,
) -> None:
    cluster, rc = cluster_factory(4, broadcast_depth=1)
    assert cluster.controller is not None
    nodes = broadcast_nodes(cluster.controller.pid)
    assert len(nodes) == 2
    bv = rc.broadcast_view()
    pids = rc.direct_view().apply_sync(os.getpid)
    assert bv.apply_sync(os.getpid) == pids

    gate = tmp_path / "go"
    ar = bv.apply_async(wait_for_file, str(gate))
    time.sleep(1.0)  # the request reaches the engines (not required: it fails either way)
    victim = rc.ids[1]
    os.kill(pids[1], signal.SIGKILL)
    wait_until(lambda: victim not in rc.ids, "the controller noticing the killed engine")
    gate.touch()
    with pytest.raises(CompositeError) as raised:
        ar.get(DEADLINE)
    errors = raised.value.elist
    assert len(errors) == 1
    assert isinstance(errors[0], EngineError)
    assert errors[0].engine_info["engine_id"] == victim
    assert [md["status"] for md in ar.metadata] == ["ok", "error", "ok", "ok"]  # type: ignore[index]
    # the leaf forgot it: the next all-engine broadcast reaches the three left
    assert bv.apply_sync(os.getpid) == [pids[0], pids[2], pids[3]]

    cluster.stop_cluster_sync()
    wait_until(lambda: not any(alive(p) for p in nodes), "the broadcast node processes ending with the cluster")


@pytest.mark.timeout(120)
def test_engines_reach_the_new_leaves_of_a_controller_restarted_at_the_same_address(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., object]
) -> None:
    cluster, rc = cluster_factory(2, broadcast_depth=1)
    assert cluster.controller is not None
    pids = rc[:].apply_sync(os.getpid)
    assert rc.broadcast_view().apply_sync(os.getpid) == pids
    pid = cluster.controller.pid
    old_nodes = broadcast_nodes(pid)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: rc._store.lost is not None, "the client noticed the lost controller")
    # the old nodes end with their controller; the new one's leaves listen on other ports
    wait_until(lambda: not any(_cmdline(p) for p in old_nodes), "the old broadcast nodes ending")
    again = subprocess.Popen(
        [sys.executable, *[a.decode() for a in argv[1:]]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: rc._store.lost is None, "the client reconnected")

        def rejoined() -> bool:
            try:
                engines = {str(k) for k in rc.queue_status() if k != "unassigned"}
            except Exception:  # the hub may not answer yet
                return False
            return engines == {"0", "1"}

        wait_until(rejoined, "both engines registered again with the restarted controller")
        assert len(broadcast_nodes(again.pid)) == 2
        # each engine moved its broadcast socket to its new leaf
        assert rc.broadcast_view().apply_sync(os.getpid) == pids
    finally:
        os.killpg(again.pid, signal.SIGKILL)
        again.wait(DEADLINE)


def test_the_controller_command_refuses_a_bad_tree_naming_the_options(tmp_path: Path) -> None:
    for bad in (["--broadcast-depth", "-1"], ["--broadcast-fanout", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "corral.cluster", "--cluster-id", "badtree", *bad],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            env={**os.environ, "CORRAL_DIR": str(tmp_path)},
        )
        assert done.returncode == 2
        assert "--broadcast-depth must be 0 or more and --broadcast-fanout at least 2" in done.stderr
