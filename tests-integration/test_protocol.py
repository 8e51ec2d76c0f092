"""The pieces against each other: protocol versions, and code from a user's ``__main__``.

Package versions are checked in test_distributions.py (each installed distribution, and
``corral --version`` listing them all); here, the wire protocol version that ``corral
--version`` names, a real engine process speaking an incompatible protocol major (refused at
registration with a message naming both versions, while the cluster keeps serving), and a
function defined in a client script's ``__main__`` running against the engine's globals.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

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
