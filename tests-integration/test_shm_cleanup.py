"""Shared-memory segments never outlive their use, even when client and engine die by SIGKILL,
and large results that went through them stay fetchable from the hub.

Between a client and an engine on one host a large buffer travels through a segment in
``/dev/shm`` (``corral.wire.shm``) that its receiver removes once mapped. Here two segments are
stranded on purpose: a push to an engine stopped with SIGSTOP (it cannot take it), and a reply
to a client stopped the same way; then both receivers are killed with SIGKILL. The controller
must remove the push's segment when it loses the engine, keep the reply's (its record owns it),
keep serving, and leave nothing behind when the cluster stops.

A reply's segment belongs to the hub's record of the result: another client fetches it, the
sweeps leave it while the record lives, a purge removes it, and with the SQLite store a
controller killed and restored still serves it.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest

from corral.wire.shm import domain, segment_tag

if TYPE_CHECKING:
    from collections.abc import Callable

    from corral.client import Client
    from corral.cluster import Cluster

np = pytest.importorskip("numpy")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sys.platform.startswith("linux") or domain() is None, reason="needs /dev/shm"),
]

CLIENT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from corral.client import Client

    rc = Client(sys.argv[1], timeout=60)
    rc.wait_for_engines(2, timeout=60)
    print("routes", len(rc.session.shm_routes), flush=True)
    # from engine 1: a 32 MB reply, produced after the test has stopped this client
    def late_array():
        import time
        import numpy as np
        time.sleep(5)
        return np.ones(4_000_000)
    rc[1].apply_async(late_array)
    print("sent", flush=True)
    time.sleep(120)
    """
)


BIG = 1_000_000  # float64: an 8 MB result, well above the shared-memory threshold


def mapped_by(pid: int, names: list[str]) -> list[str]:
    """Which of ``names`` process ``pid`` maps."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    return [n for n in names if n in maps]


def kept_segments(client: Client) -> list[str]:
    """This cluster's kept segments (replies', owned by the hub's records) now in /dev/shm."""
    prefix = f"corral-{segment_tag(client.session.key)}-"
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix) and "-kept-" in n)


def test_segments_of_receivers_killed_with_sigkill_are_removed(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
    processes: Any,
    wait_until: Callable[..., Any],
    tmp_path: Any,
) -> None:
    cluster, rc = cluster_factory(2)
    if not rc.session.shm_routes:
        pytest.skip("this host cannot share memory between processes")
    prefix = f"corral-{segment_tag(rc.session.key)}-"

    def segments(free: bool = False) -> list[str]:
        """In flight or in use, but not kept; with ``free``, also the pool's free segments and kept ones."""
        return sorted(
            n
            for n in os.listdir("/dev/shm")
            if n.startswith(prefix) and (free or ("-free-" not in n and "-kept-" not in n))
        )

    def addressed_to(pid: int) -> list[str]:
        return [n for n in segments() if n.split("-")[3] == str(pid)]

    engine0, engine1 = rc[:].apply_sync(os.getpid)
    script = tmp_path / "pushing_client.py"
    script.write_text(CLIENT)
    client = processes.spawn("client", str(script), str(cluster.connection_file))
    wait_until(lambda: "sent" in client.output(), "the client to send", timeout=60)
    os.kill(client.proc.pid, signal.SIGSTOP)  # before engine 1 answers, 5 s after the request
    assert "routes 2" in client.output()

    os.kill(engine0, signal.SIGSTOP)
    try:
        # a stopped engine cannot take the segment: it waits in /dev/shm for a reader
        rc[0].push({"big": np.ones(4_000_000)}, block=False)
        wait_until(lambda: addressed_to(engine0), "a segment addressed to the stopped engine", timeout=30)
        wait_until(lambda: kept_segments(rc), "the reply's segment for the stopped client", timeout=30)
    finally:
        os.kill(engine0, signal.SIGKILL)
        os.kill(client.proc.pid, signal.SIGKILL)
    client.proc.wait(30)

    # the hub removes what was addressed to the dead engine when it loses it, within seconds;
    # the reply's segment belongs to the hub's record of the result, for any client to fetch
    wait_until(lambda: not segments(), "the controller to remove the stranded segments", timeout=30)
    assert rc[1].apply_sync(os.getpid) == engine1  # and the cluster keeps serving
    assert len(kept_segments(rc)) == 1
    cluster.stop_cluster_sync()
    assert segments(free=True) == []  # a stopped cluster leaves nothing, free segments included


def test_a_large_result_is_fetched_by_another_client_and_purge_removes_its_segment(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
    wait_until: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from corral.client import Client
    from corral.wire.shm import KEPT_GRACE_SECONDS

    cluster, rc = cluster_factory(1)
    if not rc.session.shm_routes:
        pytest.skip("this host cannot share memory between processes")
    ar = rc[0].apply_async(np.arange, BIG, dtype=float)
    mine = ar.get(60)
    assert mine.sum() == BIG * (BIG - 1) / 2  # the owner got it, through shared memory
    assert len(kept_segments(rc)) == 1  # owned by the hub's record, not by its receiver
    with Client(cluster.connection_file, timeout=60) as other:
        theirs = other.get_result(ar.msg_ids[0], owner=False).get(60)
        assert np.array_equal(theirs, mine)
    again = rc.get_result(ar.msg_ids[0], owner=False)
    assert np.array_equal(again.get(60), mine)
    del again
    monkeypatch.setenv("CORRAL_SHM", "0")  # a client that cannot share memory gets frames
    with Client(cluster.connection_file, timeout=60) as remote:
        assert remote.session.shm is None
        assert np.array_equal(remote.get_result(ar.msg_ids[0], owner=False).get(60), mine)

    prefix = f"corral-{segment_tag(rc.session.key)}-"
    assert rc.purge_results(ar) == 1
    time.sleep(KEPT_GRACE_SECONDS + 6)
    assert len(kept_segments(rc)) == 1, "an array still maps it: its name stays (and out of the pool)"
    assert mine.sum() == BIG * (BIG - 1) / 2
    del mine, theirs, ar, other, remote  # the closed clients' records held arrays too
    gc.collect()
    assert not mapped_by(os.getpid(), kept_segments(rc)), "this process maps nothing now"
    # nobody maps it now: the sweep puts it in the pool, which gives it back after 10 s idle
    wait_until(lambda: not kept_segments(rc), "the purged result's segment to be let go", timeout=60)
    wait_until(
        lambda: not [n for n in os.listdir("/dev/shm") if n.startswith(prefix)],
        "the purged result's segment to leave /dev/shm",
        timeout=60,
    )
    cluster.stop_cluster_sync()
    assert [n for n in os.listdir("/dev/shm") if n.startswith(prefix)] == []


SENDER = textwrap.dedent(
    """
    import sys
    from corral.client import Client

    rc = Client(sys.argv[1], timeout=60)
    rc.wait_for_engines(1, timeout=60)
    def late_result(n):
        import time
        import numpy as np
        time.sleep(3)
        return np.arange(n, dtype=float)
    ar = rc[0].apply_async(late_result, int(sys.argv[2]))
    print("msg_id", ar.msg_ids[0], flush=True)
    ar.get(60)
    print("got it", flush=True)
    """
)


def test_a_result_survives_its_client_killed_before_reading_it(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
    processes: Any,
    wait_until: Callable[..., Any],
    tmp_path: Any,
) -> None:
    from corral.wire.shm import KEPT_GRACE_SECONDS

    cluster, rc = cluster_factory(1)
    if not rc.session.shm_routes:
        pytest.skip("this host cannot share memory between processes")
    script = tmp_path / "sender.py"
    script.write_text(SENDER)
    sender = processes.spawn("sender", str(script), str(cluster.connection_file), str(BIG))
    found = wait_until(lambda: re.search(r"msg_id (\S+)", sender.output()), "the client to send", timeout=60)
    os.kill(sender.proc.pid, signal.SIGKILL)  # 3 s before the engine answers
    sender.proc.wait(30)
    msg_id = found.group(1)
    assert "got it" not in sender.output()
    wait_until(lambda: msg_id in rc.result_status(msg_id, status_only=True)["completed"], "the reply", timeout=60)
    assert len(kept_segments(rc)) == 1
    # the sweeps that remove segments of dead receivers leave the segment of a live record
    time.sleep(KEPT_GRACE_SECONDS + 2 * 5.0)
    assert len(kept_segments(rc)) == 1
    assert np.array_equal(rc.get_result(msg_id, owner=False).get(60), np.arange(BIG, dtype=float))
    cluster.stop_cluster_sync()
    assert kept_segments(rc) == []


def test_a_large_result_survives_a_controller_killed_and_restored(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
    wait_until: Callable[..., Any],
) -> None:
    from corral.client import Client

    cluster, rc = cluster_factory(1, store="sqlite")
    if not rc.session.shm_routes:
        pytest.skip("this host cannot share memory between processes")
    with Client(cluster.connection_file, timeout=60) as maker:  # rc stays with the cluster object
        ar = maker[0].apply_async(np.arange, BIG, dtype=float)
        mine = ar.get(60).copy()
        msg_id = ar.msg_ids[0]
    del maker, ar  # they held the array, mapped from the segment
    gc.collect()
    assert not mapped_by(os.getpid(), kept_segments(rc))
    os.kill(cluster.controller.pid, signal.SIGKILL)
    cluster.restart_controller_sync()  # --restore on the same SQLite file
    with Client(cluster.connection_file, timeout=60) as fresh:
        assert np.array_equal(fresh.get_result(msg_id).get(60), mine)
        # the store holds a copy: the segment the dead controller left is swept
        wait_until(lambda: not kept_segments(fresh), "the restored controller's sweep", timeout=60)
        assert np.array_equal(fresh.get_result(msg_id, owner=False).get(60), mine)
