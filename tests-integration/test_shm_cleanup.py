"""Shared-memory segments never outlive their use, even when client and engine die by SIGKILL.

Between a client and an engine on one host a large buffer travels through a segment in
``/dev/shm`` (``corral.wire.shm``) that its receiver removes once mapped. Here two segments are
stranded on purpose: a push to an engine stopped with SIGSTOP (it cannot take it), and a reply
to a client stopped the same way; then both receivers are killed with SIGKILL. The controller
must remove both segments (when it loses the engine, and by its periodic sweep for the client),
keep serving, and leave nothing behind when the cluster stops.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
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
        """In flight or in use; with ``free``, also the pool's free segments."""
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix) and (free or "-free-" not in n))

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
        wait_until(lambda: addressed_to(client.proc.pid), "the reply's segment for the stopped client", timeout=30)
    finally:
        os.kill(engine0, signal.SIGKILL)
        os.kill(client.proc.pid, signal.SIGKILL)
    client.proc.wait(30)

    # the hub removes what was addressed to the dead engine (when it loses it) and to the dead
    # client (its periodic sweep), within seconds
    wait_until(lambda: not segments(), "the controller to remove the stranded segments", timeout=30)
    assert rc[1].apply_sync(os.getpid) == engine1  # and the cluster keeps serving
    cluster.stop_cluster_sync()
    assert segments(free=True) == []  # a stopped cluster leaves nothing, free segments included


def test_a_result_that_went_through_shared_memory_is_not_served_by_the_hub(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
) -> None:
    from corral.client import Client, RemoteError

    cluster, rc = cluster_factory(1)
    if not rc.session.shm_routes:
        pytest.skip("this host cannot share memory between processes")
    ar = rc[0].apply_async(np.ones, 1_000_000)
    assert ar.get(60).sum() == 1_000_000  # the owner got it, through shared memory
    with Client(cluster.connection_file, timeout=60) as other:
        late = other.get_result(ar.msg_ids[0], owner=False)
        with pytest.raises(RemoteError, match="through shared memory") as err:
            late.get(60)
    assert err.value.ename == "ResultUnavailable"
    assert "CORRAL_SHM=0" in str(err.value)
