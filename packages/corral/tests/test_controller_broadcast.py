"""A controller with a broadcast tree: real node processes, embedded engines, a real client."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.client import Client, CompositeError, EngineError
from corral.cluster.controller import Controller
from corral.engine import Engine

pytestmark = pytest.mark.timeout(90)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait(condition: Callable[[], Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


class Rig:
    def __init__(self, tmp_path: Path, n: int = 4, **options: Any) -> None:
        self.ctl = Controller(cluster_id="bcast", connection_file=tmp_path / "c.json", heartbeat_period=0.2, **options)
        self.info = self.ctl.start_in_thread()
        assert self.ctl.broadcast_tree is not None
        self.pids = self.ctl.broadcast_tree.pids
        self.engines = [Engine(self.info, capture_output=False) for _ in range(n)]
        for e in self.engines:
            e.start()
        self.rc = Client(tmp_path / "c.json")
        self.rc.wait_for_engines(n, timeout=30)

    def close(self) -> None:
        self.rc.close()
        for e in self.engines:
            e.stop()
        self.ctl.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, broadcast_depth=1)
    try:
        yield r
    finally:
        r.close()


def test_a_broadcast_goes_through_the_node_processes_and_they_end_with_the_controller(rig: Rig) -> None:
    assert len(rig.pids) == 2
    for pid in rig.pids:
        assert b"corral.scheduler.broadcast_node" in Path(f"/proc/{pid}/cmdline").read_bytes()
    bv, dv = rig.rc.broadcast_view(), rig.rc.direct_view()
    assert bv.apply_sync(lambda x: x * 2, 21) == dv.apply_sync(lambda x: x * 2, 21) == [42] * 4
    bv.push({"a": 5}, block=True)
    assert dv.pull("a", block=True) == [5] * 4
    assert rig.rc.broadcast_view(targets=[2, 1]).apply_sync(lambda: 7) == [7, 7]
    # the root sent each all-engine request to its 2 children, never to the 4 engines
    counts = rig.ctl.broadcast.counts  # type: ignore[union-attr]
    assert counts["requests"] == 3
    assert counts["copies"] == 2 + 2 + 2
    assert counts["replies"] == 4 + 4 + 2
    rig.close()
    wait(lambda: not any(alive(p) for p in rig.pids), "the node processes ending")


def nap(seconds: float) -> int:
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


def test_a_killed_node_process_fails_its_engines_share_and_is_started_again(rig: Rig) -> None:
    bv = rig.rc.broadcast_view()
    assert bv.apply_sync(lambda: 1) == [1] * 4
    tree = rig.ctl.broadcast_tree
    assert tree is not None
    old = tree.processes[(1, 1)].pid
    ar = bv.apply_async(nap, 2.0)
    time.sleep(0.5)
    os.kill(old, signal.SIGKILL)
    with pytest.raises(CompositeError) as raised:
        ar.get(30)
    errors = raised.value.elist
    assert sorted(e.engine_info["engine_id"] for e in errors) == [1, 3]  # the engines of leaf 1
    assert all(isinstance(e, EngineError) and "node 1-1" in str(e) for e in errors)
    assert [md["status"] for md in ar.metadata] == ["ok", "error", "ok", "error"]  # type: ignore[index]
    # started again on its port: the engines reconnect by themselves and are served again
    wait(lambda: tree.processes[(1, 1)].pid != old and alive(tree.processes[(1, 1)].pid), "the node's restart")
    assert bv.apply_sync(lambda: 2) == [2] * 4
    assert rig.ctl.broadcast.dead_nodes == {}  # type: ignore[union-attr]


def test_a_node_that_keeps_dying_is_let_go_and_its_engines_fail_at_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.cluster import _broadcast_tree

    monkeypatch.setattr(_broadcast_tree, "MAX_RESTARTS", 0)
    bv = rig.rc.broadcast_view()
    tree = rig.ctl.broadcast_tree
    assert tree is not None
    os.kill(tree.processes[(1, 0)].pid, signal.SIGKILL)
    wait(lambda: (1, 0) in rig.ctl.broadcast.dead_nodes, "the controller noticing the dead node")  # type: ignore[union-attr]
    ar = bv.apply_async(lambda: 3)
    with pytest.raises(CompositeError) as raised:
        ar.get(30)
    assert sorted(e.engine_info["engine_id"] for e in raised.value.elist) == [0, 2]
    assert rig.rc.broadcast_view(targets=[1, 3]).apply_sync(lambda: 3) == [3, 3]


def test_curve_reaches_the_leaves_with_the_controller_s_keys(tmp_path: Path) -> None:
    rig = Rig(tmp_path, n=2, curve=True, broadcast_depth=2)
    try:
        assert len(rig.pids) == 6
        assert rig.rc.broadcast_view().apply_sync(lambda: "sealed") == ["sealed", "sealed"]
        # engines 0 and 1 are served by leaves 0 and 1, both below the root's first child
        assert rig.ctl.broadcast.counts["copies"] == 1  # type: ignore[union-attr]
    finally:
        rig.close()
    wait(lambda: not any(alive(p) for p in rig.pids), "the node processes ending")


def test_bad_tree_settings_are_refused_with_a_message_naming_them() -> None:
    with pytest.raises(ValueError, match="broadcast depth must be 0"):
        Controller(broadcast_depth=-1)
    with pytest.raises(ValueError, match="fanout must be an integer of at least 2"):
        Controller(broadcast_depth=1, broadcast_fanout=1)
