"""The ``corral`` command: start, list, stop, controller, engine, demo, and its error messages.

Every command runs as ``python -m corral.cli`` in its own process group, with a deadline.
Clusters made by ``corral start`` outlive the command by design (no lifeline), so teardown
kills whatever a test's records still name, before the session's leftover check would.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import Client, ConnectionFileError
from corral.wire.paths import cluster_record_path, connection_file_path

if TYPE_CHECKING:
    from conftest import CLI, Processes

pytestmark = pytest.mark.timeout(90)

#: How soon `corral stop` must have stopped every process, in seconds.
GONE_WITHIN = 10.0


@pytest.fixture
def started_ids() -> Iterator[list[str]]:
    """Cluster ids a test starts with `corral start`; whatever their records name is killed after."""
    ids: list[str] = []
    yield ids
    for cluster_id in ids:
        path = cluster_record_path(cluster_id)
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        pids = [e["pid"] for e in record.get("engines", [])]
        if record.get("controller"):
            pids.append(record["controller"]["pid"])
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        path.unlink(missing_ok=True)
        Path(record.get("connection_file", "")).unlink(missing_ok=True)


def test_start_list_connect_stop(
    cli: CLI, started_ids: list[str], alive: Callable[[int], bool], wait_until: Callable[..., Any]
) -> None:
    started_ids.append("cli-x")
    out = cli("start", "-n", "2", "--cluster-id", "cli-x", timeout=60)
    assert out.returncode == 0, out.stderr
    assert "controller and 2 engines ready" in out.stdout
    assert "Client(cluster_id='cli-x')" in out.stdout

    with Client(cluster_id="cli-x") as rc:
        assert rc.ids == [0, 1], "`corral start` returned once the engines answer"
        engine_pids = rc[:].apply_sync(os.getpid)
    record = json.loads(cluster_record_path("cli-x").read_text())
    controller = record["controller"]["pid"]
    pids = [controller, *(e["pid"] for e in record["engines"]), *engine_pids]
    assert len(pids) == 5
    assert all(alive(p) for p in pids)

    listing = cli("list")
    assert listing.returncode == 0, listing.stderr
    (line,) = [row for row in listing.stdout.splitlines() if row.startswith("cli-x ")]
    assert f"pid {controller}" in line
    assert line.split()[3] == "2", f"two engines running: {line}"

    duplicate = cli("start", "-n", "1", "--cluster-id", "cli-x")
    assert duplicate.returncode == 1
    assert "'cli-x' is already running" in duplicate.stderr
    with Client(cluster_id="cli-x") as rc:
        assert rc[:].apply_sync(os.getpid) == engine_pids, "the running cluster was not touched"

    stopped = cli("stop", "--cluster-id", "cli-x")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped cluster 'cli-x'" in stopped.stdout
    wait_until(lambda: not any(alive(p) for p in pids), f"every process of cli-x ({pids}) exits", GONE_WITHIN)
    assert not connection_file_path("cli-x").exists()
    assert "cli-x" not in cli("list").stdout
    with pytest.raises(ConnectionFileError, match=r"corral-cli-x\.json"):
        Client(cluster_id="cli-x")


def test_unknown_cluster_id_is_a_clear_error(cli: CLI) -> None:
    stop = cli("stop", "--cluster-id", "nope")
    assert stop.returncode == 1
    assert "no cluster named 'nope'" in stop.stderr
    assert "corral list" in stop.stderr
    engine = cli("engine", "--cluster-id", "nope")
    assert engine.returncode == 1
    assert "corral-nope.json" in engine.stderr
    assert "corral start" in engine.stderr
    with pytest.raises(ConnectionFileError, match=r"corral-nope\.json"):
        Client(cluster_id="nope")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "-n", "0"], "0 is not a positive number of engines"),
        (["start", "-n", "two"], "'two' is not a whole number"),
        (["start", "--cluster-id", "bad/id"], "invalid cluster id 'bad/id'"),
        (["stop", "--cluster-id", "../up"], "invalid cluster id '../up'"),
        (["start", "--bogus"], "unrecognized arguments: --bogus"),
        (["controller", "--port", "70000"], "--port must be between 1 and"),
        (["demo", "-n", "-2"], "-2 is not a positive number of engines"),
    ],
)
def test_bad_arguments_are_clear_errors(cli: CLI, args: list[str], message: str) -> None:
    out = cli(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_controller_on_a_port_in_use_names_the_port(cli: CLI) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = cli("controller", "--port", str(port), "--cluster-id", "port-busy")
    assert out.returncode != 0
    assert f"127.0.0.1:{port}" in out.stderr, out.stderr
    assert "in use" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not connection_file_path("port-busy").exists(), "no connection file for a controller that never ran"


def test_foreground_controller_and_engines(
    processes: Processes, wait_until: Callable[..., Any], corral_dir: Path
) -> None:
    controller = processes.spawn("controller", "-m", "corral.cli", "controller", "--cluster-id", "fg")
    wait_until(lambda: "corral controller ready" in controller.output() or controller.proc.poll() is not None, "ready")
    assert controller.proc.poll() is None, controller.output()
    engines = [processes.spawn(f"engine-{i}", "-m", "corral.cli", "engine", "--cluster-id", "fg") for i in range(2)]
    with Client(cluster_id="fg") as rc:
        rc.wait_for_engines(2, timeout=30)
        assert sorted(rc[:].apply_sync(lambda: 3)) == [3, 3]
        rc.shutdown(hub=True)
    for peer in [*engines, controller]:
        assert peer.finish() == 0, peer.output()
    assert not (corral_dir / "security" / "corral-fg.json").exists()


def test_demo_prints_a_pi_estimate(cli: CLI, processes_with_env: Callable[[str, str], list[int]]) -> None:
    marker = uuid.uuid4().hex
    out = cli("demo", "-n", "2", timeout=80, env={"CORRAL_TEST_MARKER": marker})
    assert out.returncode == 0, out.stderr
    assert "cluster of 2 engines ready" in out.stdout
    estimates = re.findall(r"pi ~ (\d\.\d+)", out.stdout)
    assert len(estimates) >= 2, "progress lines, then the result"
    assert abs(float(estimates[-1]) - math.pi) < 0.01
    assert "on engines [0, 1]" in out.stdout
    assert processes_with_env("CORRAL_TEST_MARKER", marker) == [], "the demo's cluster stopped"
