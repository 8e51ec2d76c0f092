"""``corral.cluster.Cluster`` with ipyparallel's method names: start, connect, stop, no leftovers."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import CorralError
from corral.cluster import Cluster
from corral.wire.paths import cluster_record_path

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.timeout(60)

#: How soon every process of a stopped cluster must be gone, in seconds.
GONE_WITHIN = 10.0


def _pids(cluster: Cluster, engine_pids: list[int]) -> list[int]:
    assert cluster.controller is not None
    return [cluster.controller.pid, *(e.pid for e in cluster.engines), *engine_pids]


def test_with_cluster_starts_serves_and_stops(alive: Callable[[int], bool], wait_until: Callable[..., Any]) -> None:
    cluster = Cluster(n=2, cluster_id="with-sync", log_level="INFO")
    with cluster as rc:
        assert rc.ids == [0, 1], "engines answer when the with block starts"
        engine_pids = rc[:].apply_sync(os.getpid)
        pids = _pids(cluster, engine_pids)
        assert cluster.connection_file.exists()
        assert cluster_record_path("with-sync").exists()
        assert "running" in repr(cluster)
    assert not any(alive(p) for p in pids), "stop_cluster waited for its processes"
    assert not cluster.connection_file.exists()
    assert not cluster_record_path("with-sync").exists()
    assert "stopped" in repr(cluster)
    with pytest.raises(CorralError, match="closed"):
        rc[0].apply_sync(os.getpid)


def _client_io_threads() -> int:
    return sum(t.name == "corral-client-io" for t in threading.enumerate())


@pytest.mark.parametrize("n", [0, 1])
def test_start_and_connect_waits_with_the_client_it_returns(n: int) -> None:
    """One client, one IO thread (docs/client.md): the client returned is the one that waited.

    A Client with no engines yet is falsy (``len(rc) == 0``), and ``wait_for_engines`` used to
    take that for "no client" and connect a second one to wait with; the client returned could
    then miss an engine that went live before its notification socket was connected, so
    ``with Cluster(n=2) as rc`` now and then gave ``rc.ids == [1]``.
    """
    before = _client_io_threads()
    cluster = Cluster(n=n, log_level="INFO")
    try:
        rc = cluster.start_and_connect_sync()
        assert len(rc.ids) == n
        assert _client_io_threads() == before + 1, "start_and_connect connected more than one client"
    finally:
        cluster.stop_cluster_sync()


def test_explicit_sync_methods(alive: Callable[[int], bool]) -> None:
    cluster = Cluster(n=1, cluster_id="explicit", log_level="INFO", engine_timeout=30)
    try:
        cluster.start_cluster_sync()
        rc = cluster.connect_client_sync()
        cluster.wait_for_engines_sync(1, timeout=30)
        rc.wait_for_engines(1, timeout=30)
        assert rc.ids == [0]
        cluster.start_engines_sync(1)
        cluster.wait_for_engines_sync(2, timeout=30)
        rc.wait_for_engines(2, timeout=30)
        pids = _pids(cluster, rc[:].apply_sync(os.getpid))
        assert len(set(pids)) == 5
        with pytest.raises(RuntimeError, match="already running"):
            cluster.start_controller_sync()
    finally:
        cluster.stop_cluster_sync()
    assert not any(alive(p) for p in pids)


def test_async_with_and_async_methods(alive: Callable[[int], bool]) -> None:
    async def main() -> list[int]:
        cluster = Cluster(n=1, log_level="INFO")
        async with cluster as rc:
            assert rc.ids == [0]
            value = await rc[0].apply_async(os.getpid)
            pids = _pids(cluster, [value])
        other = Cluster(n=1, log_level="INFO")
        rc2 = await other.start_and_connect()
        try:
            assert await rc2[0].apply_async(lambda: 5) == 5
            pids += _pids(other, rc2[:].apply_sync(os.getpid))
        finally:
            await other.stop_cluster()
        return pids

    pids = asyncio.run(asyncio.wait_for(main(), 45))
    assert len(pids) == 6
    assert not any(alive(p) for p in pids)


def test_cluster_in_a_running_event_loop_sync_twins_still_work(alive: Callable[[int], bool]) -> None:
    """As in Jupyter: the ``_sync`` methods called from code running inside an event loop."""

    async def main() -> list[int]:
        cluster = Cluster(n=1, log_level="INFO")
        rc = cluster.start_and_connect_sync()
        try:
            return _pids(cluster, [rc[0].apply_sync(os.getpid)])
        finally:
            cluster.stop_cluster_sync()

    pids = asyncio.run(asyncio.wait_for(main(), 45))
    assert not any(alive(p) for p in pids)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Cluster(n=-1)
    with pytest.raises(ValueError, match="invalid cluster id"):
        Cluster(n=1, cluster_id="no/slashes")
    with pytest.raises(ValueError, match="no launcher named 'nonesuch'"):
        Cluster(n=1, engines="nonesuch")


def test_cluster_logs_go_to_corral_dir(corral_dir: Path) -> None:
    cluster = Cluster(n=1, cluster_id="logs-here")
    assert cluster.log_dir == corral_dir / "logs" / "logs-here"
    assert cluster.connection_file == corral_dir / "security" / "corral-logs-here.json"
