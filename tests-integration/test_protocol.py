"""The pieces against each other: protocol versions, and code from a user's ``__main__``.

Package versions are checked in test_distributions.py (each installed distribution, and
``corral --version`` listing them all); here, the wire protocol version that ``corral
--version`` names, a real engine process speaking an incompatible protocol major (refused at
registration with a message naming both versions, while the cluster keeps serving), and a
function defined in a client script's ``__main__`` running against the engine's globals.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.wire import PROTOCOL_VERSION

if TYPE_CHECKING:
    from conftest import CLI, Processes

    from corral.client import Client
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(60)

PEERS = Path(__file__).resolve().parent / "peers"


def test_version_names_the_protocol(cli: CLI) -> None:
    out = cli("--version")
    assert out.returncode == 0, out.stderr
    assert f"(protocol {PROTOCOL_VERSION})" in out.stdout.splitlines()[0]


@pytest.mark.parametrize("mode", ["header", "engine"])
def test_engine_with_another_protocol_major_is_refused(
    mode: str, cluster: Cluster, rc: Client, processes: Processes
) -> None:
    other = f"{int(PROTOCOL_VERSION.split('.')[0]) + 8}.0"
    engine = processes.spawn(
        "other-protocol-engine", str(PEERS / "other_protocol_engine.py"), str(cluster.connection_file), other, mode
    )
    code = engine.finish()
    output = engine.output()
    assert code != 0, output
    assert other in output, f"the message names both versions: {output}"
    assert PROTOCOL_VERSION in output, f"the message names both versions: {output}"
    assert "protocol" in output
    assert "Traceback" not in output, "a clear message, not a crash"
    assert rc.ids == [0, 1, 2, 3], "the refused engine never joined"
    assert len(rc[:].apply_sync(os.getpid)) == 4, "the cluster keeps serving"


def test_function_from_main_sees_engine_globals(cluster: Cluster, rc: Client, processes: Processes) -> None:
    script = processes.spawn("main-function", str(PEERS / "main_function.py"), str(cluster.connection_file))
    result = script.wait_for_event("result")
    assert result["value"] == 42, "the engine's a (21), not the script's"
    assert script.finish() == 0


def test_junk_on_the_controllers_sockets_is_counted_where_a_client_can_see_it(
    cluster: Cluster, rc: Client, wait_until: Any, cli: CLI
) -> None:
    import zmq

    from corral.wire import Session, read_connection_file
    from corral.wire.gate import admit

    info = read_connection_file(cluster.connection_file)
    key = Session(info["key"]).key
    before = rc.drop_counts()["controller"].get("mux", {})
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        # a peer that passes the connection gate (it knows the key) but sends junk, and a
        # message signed with another key: both dropped and counted, neither executed
        admit(sock, key)
        sock.connect(f"tcp://{info['ip']}:{info['ports']['mux']}")
        for _ in range(5):
            sock.send_multipart([b"<IDS|MSG>", b"not an envelope", b"{}", b"{}", b"{}", b"{}"])
        Session(b"another key entirely, 32 bytes!").send(sock, "apply_request", {})
    finally:
        sock.close(linger=1000)
        ctx.term()

    def counted() -> bool:
        mux = rc.drop_counts()["controller"].get("mux", {})
        return (
            mux.get("malformed", 0) >= before.get("malformed", 0) + 5
            and mux.get("bad_signature", 0) >= before.get("bad_signature", 0) + 1
        )

    wait_until(counted, "the controller counted 5 malformed and 1 badly signed message on mux")
    # and so does the CLI
    out = cli("drops", "--cluster-id", cluster.cluster_id, "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["mux"]["malformed"] >= before.get("malformed", 0) + 5
    table = cli("drops", "--cluster-id", cluster.cluster_id)
    assert table.returncode == 0, table.stderr
    assert "none of them was executed" in table.stdout
    assert re.search(r"mux\s+bad_signature\s+[\d,]+", table.stdout), table.stdout
    missing = cli("drops", "--cluster-id", "no-such-cluster")
    assert missing.returncode == 1
    assert "corral start" in missing.stderr or "no-such-cluster" in missing.stderr
    assert rc[:].apply_sync(sum, [1, 2]) == [3] * len(rc.ids)  # still serving
