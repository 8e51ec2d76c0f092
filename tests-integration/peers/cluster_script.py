"""A user's script: ``with Cluster(n=2) as rc:`` and a long apply, for tests-integration/test_faults.py.

It prints one JSON object a line: ``cluster`` (the controller, engine supervisor and engine
pids, the cluster id and its files) once the engines answer, then ``running`` just before it
blocks in a 60-second apply. The test then interrupts it (SIGINT, as Ctrl-C does) or kills it.
"""

from __future__ import annotations

import json
import os
import sys
import time

from corral.cluster import Cluster
from corral.wire.paths import cluster_record_path


def report(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), **fields}), flush=True)


def main() -> int:
    cluster = Cluster(n=2, log_level="INFO")
    with cluster as rc:
        assert cluster.controller is not None
        report(
            "cluster",
            cluster_id=cluster.cluster_id,
            connection_file=str(cluster.connection_file),
            record=str(cluster_record_path(cluster.cluster_id)),
            controller_pid=cluster.controller.pid,
            supervisor_pids=[e.pid for e in cluster.engines],
            ids=rc.ids,
            engine_pids=rc[:].apply_sync(os.getpid),
        )
        report("running")
        rc[0].apply_sync(time.sleep, 60)
        report("finished")  # not reached when interrupted
    return 0


if __name__ == "__main__":
    sys.exit(main())
