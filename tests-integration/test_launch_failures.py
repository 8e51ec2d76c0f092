"""The local launcher's failures: an engine that cannot start is reported with its command and output.

(The mpi and ssh launchers' failures are in test_launchers_mpi.py and test_launchers_ssh.py.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from corral.cluster import Cluster
from corral.launchers import LaunchError

pytestmark = pytest.mark.timeout(120)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_local_engines_that_cannot_start_are_reported_and_nothing_is_left() -> None:
    cluster = Cluster(n=2, engine_timeout=60)
    try:
        cluster.start_cluster_sync(0)  # the controller alone, listening
        assert cluster.controller is not None
        controller_pid = cluster.controller.pid
        cluster.wait_for_engines_sync(0)  # connects the cluster's client while the file is private
        Path(cluster.connection_file).chmod(0o644)  # engines refuse a file others can read
        cluster.start_engines_sync(2)
        engines = list(cluster.engines)
        t0 = time.monotonic()
        with pytest.raises(LaunchError) as caught:
            cluster.wait_for_engines_sync(timeout=60)
        assert time.monotonic() - t0 < 60
    finally:
        cluster.stop_cluster_sync()
    text = str(caught.value)
    assert "an engine of cluster" in text
    assert "exited with code 1" in text
    assert f"-m corral.engine --connection-file {cluster.connection_file}" in text
    assert "is accessible to group or others (mode 0644)" in text
    deadline = time.monotonic() + 30
    pids = [controller_pid, *(e.pid for e in engines)]
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
