"""Faults: an engine killed mid-request, and a user's script interrupted or killed.

Each test breaks what it uses, so each starts its own cluster (``cluster_factory``) or lets a
script start one; teardown kills whatever is left, and the session fails on any survivor.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import CorralError, EngineError, RemoteError, interactive

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Peer, Processes

    from corral.client import Client
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(90)

PEERS = Path(__file__).resolve().parent / "peers"

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0

#: How soon a dead engine's direct requests must fail (issue 3).
ENGINE_ERROR_WITHIN = 3.0

#: How soon a script's cluster must be gone after the script is interrupted or killed.
GONE_WITHIN = 10.0


@interactive
def announce_and_sleep(seconds: float) -> None:
    """Print a line (so the client knows the request runs), then sleep."""
    import time

    print("running", flush=True)
    time.sleep(seconds)


@interactive
def engine_pid_of(_: Any) -> int:
    """The pid of the engine running this (for load-balanced maps)."""
    import os

    return os.getpid()


def test_sigkill_of_an_engine_fails_its_requests_and_the_rest_keeps_serving(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any]
) -> None:
    _, rc = cluster_factory(3)  # no restarts: the dead engine stays gone (test_restart.py: back)
    victim = rc[1]
    pid = victim.apply_sync(os.getpid)
    running = victim.apply_async(announce_and_sleep, 30)
    queued = victim.apply_async(os.getpid)
    elsewhere = rc[2].apply_async(announce_and_sleep, 0.5)
    wait_until(lambda: "running" in running.stdout, "the request runs on engine 1")

    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(EngineError) as info:
        running.get(ENGINE_ERROR_WITHIN)
    assert time.monotonic() - killed < ENGINE_ERROR_WITHIN
    message = str(info.value)
    assert "engine 1" in message, message
    assert "killed by SIGKILL" in message, message
    assert info.value.engine_id == 1
    assert isinstance(info.value, RemoteError)
    with pytest.raises(EngineError, match="SIGKILL"):
        queued.get(ENGINE_ERROR_WITHIN)

    wait_until(lambda: 1 not in rc.ids, "engine 1 leaves rc.ids", ENGINE_ERROR_WITHIN)
    assert rc.ids == [0, 2]
    assert elsewhere.get(DEADLINE) is None, "requests on other engines are not lost"
    assert len(set(rc[:].apply_sync(os.getpid))) == 2
    assert rc.direct_view().apply_sync(lambda: 7) == [7, 7]
    with pytest.raises(IndexError):
        rc[1]
    with pytest.raises(IndexError, match=r"engine 1 is not registered .*\[0, 2\]"):
        victim.apply_sync(os.getpid)  # a view fixed on the dead engine says so


@dataclass
class ScriptCluster:
    """peers/cluster_script.py, blocked in its long apply inside ``with Cluster(n=2) as rc:``."""

    script: Peer
    facts: dict[str, Any]
    marker: str

    @property
    def pids(self) -> list[int]:
        """The controller, the engine supervisors and the engines."""
        return [self.facts["controller_pid"], *self.facts["supervisor_pids"], *self.facts["engine_pids"]]


@pytest.fixture
def script_cluster(processes: Processes, alive: Callable[[int], bool]) -> ScriptCluster:
    """Start the script (its environment marked with a unique value); wait until it blocks."""
    marker = uuid.uuid4().hex
    script = processes.spawn("cluster-script", str(PEERS / "cluster_script.py"), env={"CORRAL_TEST_MARKER": marker})
    facts = script.wait_for_event("cluster")
    script.wait_for_event("running")
    started = ScriptCluster(script, facts, marker)
    assert len(started.pids) == 5, facts
    assert all(alive(p) for p in started.pids), facts
    return started


def test_ctrl_c_in_a_script_leaves_no_process_behind(
    script_cluster: ScriptCluster,
    alive: Callable[[int], bool],
    wait_until: Callable[..., Any],
    processes_with_env: Callable[[str, str], list[int]],
) -> None:
    script, pids = script_cluster.script, script_cluster.pids
    os.killpg(script.proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
    script.finish(GONE_WITHIN)
    assert "KeyboardInterrupt" in script.output()
    assert '"finished"' not in script.output()
    wait_until(lambda: not any(alive(p) for p in pids), f"the cluster's processes {pids} exit", GONE_WITHIN)
    assert processes_with_env("CORRAL_TEST_MARKER", script_cluster.marker) == [], "nothing the script started survives"
    assert not Path(script_cluster.facts["record"]).exists(), "the cluster record was removed"
    assert not Path(script_cluster.facts["connection_file"]).exists(), "the connection file was removed"


def test_sigkill_of_a_script_leaves_no_orphans(
    script_cluster: ScriptCluster,
    alive: Callable[[int], bool],
    wait_until: Callable[..., Any],
    processes_with_env: Callable[[str, str], list[int]],
) -> None:
    script, pids = script_cluster.script, script_cluster.pids
    os.killpg(script.proc.pid, signal.SIGKILL)
    script.finish(GONE_WITHIN)
    wait_until(lambda: not any(alive(p) for p in pids), f"the cluster's processes {pids} exit", GONE_WITHIN)
    assert processes_with_env("CORRAL_TEST_MARKER", script_cluster.marker) == [], "nothing the script started survives"


def test_a_killed_controller_makes_waits_raise_controller_lost_instead_of_hanging(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
) -> None:
    from corral.client import ControllerLost

    cluster, rc = cluster_factory(1)
    assert cluster.controller is not None
    running = rc[0].apply_async(announce_and_sleep, 30)
    os.kill(cluster.controller.pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(ControllerLost, match="lost the connection to the controller"):
        running.get(DEADLINE)
    assert time.monotonic() - t0 < 5.0, "a lost controller must be noticed within 5 s"
    assert not running.ready()  # still pending: a controller that comes back may answer it
    # new work fails at once instead of waiting for a connection
    t1 = time.monotonic()
    with pytest.raises(ControllerLost):
        rc[0].apply_sync(os.getpid)
    with pytest.raises(ControllerLost):
        rc.wait(timeout=DEADLINE)
    assert time.monotonic() - t1 < 2.0


def test_a_client_finds_a_controller_restarted_at_the_same_address(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any]
) -> None:
    import subprocess
    import sys

    from corral.client import ControllerLost

    cluster, rc = cluster_factory(1)
    assert cluster.controller is not None
    pid = cluster.controller.pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    assert b"--reuse" in argv  # the same ports and key, from the connection file
    running = rc[0].apply_async(announce_and_sleep, 30)
    wait_until(lambda: "running" in running.stdout, "the request runs")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: rc._store.lost is not None, "the client noticed the lost controller")
    with pytest.raises(ControllerLost):
        rc.queue_status()
    again = subprocess.Popen(
        [sys.executable, *[a.decode() for a in argv[1:]]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: rc._store.lost is None, "the client reconnected")
        assert isinstance(rc.queue_status(), dict)  # the hub answers the same client again
        # the in-memory store died with the old controller: the pending result fails, clearly
        with pytest.raises(ControllerLost, match="without a record of"):
            running.get(DEADLINE)
    finally:
        os.killpg(again.pid, signal.SIGKILL)
        again.wait(DEADLINE)


def test_engines_rejoin_a_controller_restarted_at_the_same_address(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any]
) -> None:
    import subprocess
    import sys

    cluster, rc = cluster_factory(2)
    assert cluster.controller is not None
    pids = rc[:].apply_sync(os.getpid)
    pid = cluster.controller.pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: rc._store.lost is not None, "the client noticed the lost controller")
    again = subprocess.Popen(
        [sys.executable, *[a.decode() for a in argv[1:]]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    restarted = time.monotonic()
    try:
        wait_until(lambda: rc._store.lost is None, "the client reconnected")

        def rejoined() -> bool:
            try:
                engines = {str(k) for k in rc.queue_status() if k != "unassigned"}
            except Exception:  # the hub may not answer yet
                return False
            return engines == {"0", "1"}

        wait_until(rejoined, "both engines registered again with the restarted controller")
        # the same engines, under the same ids, serve direct and load-balanced work again
        assert rc[:].apply_sync(os.getpid) == pids
        lv = rc.load_balanced_view()
        assert set(lv.map_sync(engine_pid_of, range(20))) <= set(pids)
        assert time.monotonic() - restarted < DEADLINE
    finally:
        os.killpg(again.pid, signal.SIGKILL)
        again.wait(DEADLINE)


# -- issue 7's bounds: engine deaths, silent hosts, a controller that never returns ---------------

#: How soon a dead engine process must be noticed and named (issue 7).
DEATH_NOTICED_WITHIN = 1.0

#: How soon a silent host must be noticed (issue 7).
SILENCE_NOTICED_WITHIN = 6.0


@interactive
def die_after(seconds: float, how: str, stamp: str) -> None:
    """Sleep, write the time of death to ``stamp``, then die by a segfault or ``os._exit(3)``."""
    import os
    import signal
    import time

    time.sleep(seconds)
    with open(stamp, "w") as out:
        out.write(repr(time.time()))
    if how == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    os._exit(3)


@pytest.mark.parametrize(("how", "named"), [("segfault", "killed by SIGSEGV"), ("exit", "exited with code 3")])
def test_an_engine_death_is_noticed_within_a_second_and_named(
    how: str, named: str, cluster_factory: Callable[..., tuple[Cluster, Client]], tmp_path: Path
) -> None:
    _, rc = cluster_factory(2)
    stamp = tmp_path / "died-at"
    dying = rc[1].apply_async(die_after, 0.5, how, str(stamp))
    queued = rc[1].apply_async(os.getpid)
    with pytest.raises(EngineError) as info:
        dying.get(DEADLINE)
    noticed = time.time()
    died = float(stamp.read_text())
    assert noticed - died < DEATH_NOTICED_WITHIN, f"noticed {noticed - died:.2f} s after the engine died"
    message = str(info.value)
    assert "engine 1" in message, message
    assert named in message, message
    with pytest.raises(EngineError, match=named):
        queued.get(DEADLINE)
    assert rc[0].apply_sync(lambda: "still serving") == "still serving"
    print(f"engine death ({how}) noticed {noticed - died:.3f} s after it happened")


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _stop_host_and_wait(rc: Client, eid: int) -> tuple[float, str]:
    """SIGSTOP engine ``eid`` and its supervisor (a host gone silent); return when and how it failed."""
    pid = rc[eid].apply_sync(os.getpid)
    supervisor = _parent_of(pid)
    running = rc[eid].apply_async(announce_and_sleep, 60)
    deadline = time.monotonic() + DEADLINE
    while "running" not in running.stdout:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.02)
    try:
        os.kill(supervisor, signal.SIGSTOP)
        os.kill(pid, signal.SIGSTOP)
        silent = time.monotonic()
        with pytest.raises(EngineError) as info:
            running.get(DEADLINE)
        return time.monotonic() - silent, str(info.value)
    finally:
        for gone in (pid, supervisor):  # a stopped process takes SIGKILL; nothing is left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(gone, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_silent_host_is_noticed_within_6_s(cluster_factory: Callable[..., tuple[Cluster, Client]]) -> None:
    _, rc = cluster_factory(2)  # heartbeats every 0.5 s, 4 misses: the defaults
    took, message = _stop_host_and_wait(rc, 1)
    assert took < SILENCE_NOTICED_WITHIN, f"a silent engine was noticed only after {took:.1f} s"
    assert "stopped answering heartbeats" in message, message
    assert rc[0].apply_sync(lambda: "still serving") == "still serving"
    print(f"silent host (defaults) noticed after {took:.2f} s")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_heartbeat_period_and_misses_are_configurable(processes: Processes) -> None:
    from corral.client import Client
    from corral.wire.paths import connection_file_path

    cluster_id = f"heartbeat-{uuid.uuid4().hex[:8]}"
    controller = processes.spawn(
        "controller", "-m", "corral.cli", "controller", "--cluster-id", cluster_id,
        "--heartbeat-period", "1", "--heartbeat-misses", "5",
    )  # fmt: skip
    path = connection_file_path(cluster_id)
    deadline = time.monotonic() + DEADLINE
    while "corral controller ready" not in controller.output():
        assert controller.proc.poll() is None, controller.output()
        assert time.monotonic() < deadline, controller.output()
        time.sleep(0.05)
    for name in ("engine-0", "engine-1"):
        processes.spawn(name, "-m", "corral.engine", "--connection-file", str(path))
    with Client(path, timeout=DEADLINE) as rc:
        rc.wait_for_engines(2, timeout=DEADLINE)
        took, message = _stop_host_and_wait(rc, 1)
        found = re.search(r"stopped answering heartbeats for ([\d.]+) s", message)
        assert found, message
        assert float(found[1]) >= 5.0, "5 missed periods of 1 s, not the defaults (2 s)"
        assert took < SILENCE_NOTICED_WITHIN, f"noticed only after {took:.1f} s"
        assert rc[0].apply_sync(lambda: "still serving") == "still serving"
    print(f"silent host (period 1 s, 5 misses) noticed after {took:.2f} s")


@pytest.mark.timeout(120)
def test_engines_exit_cleanly_when_the_controller_never_returns(
    cluster_factory: Callable[..., tuple[Cluster, Client]], processes: Processes
) -> None:
    cluster, rc = cluster_factory(0)
    assert cluster.controller is not None
    engine = processes.spawn(
        "engine", "-m", "corral.engine", "--connection-file", str(cluster.connection_file), "--controller-timeout", "3"
    )
    rc.wait_for_engines(1, timeout=DEADLINE)
    os.kill(cluster.controller.pid, signal.SIGKILL)
    killed = time.monotonic()
    assert engine.finish(DEADLINE) == 0, engine.output()
    took = time.monotonic() - killed
    output = engine.output()
    assert "Traceback" not in output, output
    assert re.search(r"exiting: .*controller", output), output
    assert took < 3 + 5, f"the engine waited {took:.1f} s for a controller it was told to wait 3 s for"
    print(f"engine exited {took:.2f} s after its controller died (--controller-timeout 3)")


@pytest.mark.timeout(120)
def test_an_old_client_s_pending_results_complete_after_a_restore(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any]
) -> None:
    from corral.client import ControllerLost

    cluster, rc = cluster_factory(1, store="sqlite")
    assert cluster.controller is not None
    finished = rc[0].apply_async(lambda: "finished before")
    assert finished.get(DEADLINE) == "finished before"
    # still running when the controller dies; done a few seconds later, when the engine is free
    running = rc[0].apply_async(announce_and_sleep, 5)
    wait_until(lambda: "running" in running.stdout, "the request runs")
    os.kill(cluster.controller.pid, signal.SIGKILL)
    with pytest.raises(ControllerLost):
        running.get(DEADLINE)
    cluster.restart_controller_sync()
    wait_until(lambda: rc._store.lost is None, "the old client reconnected")
    # its pending result completes: the restored store says the request's reply never arrived
    with pytest.raises(EngineError, match="controller stopped while"):
        running.get(DEADLINE)
    # and the engine rejoined under its id: the old client carries on
    wait_until(lambda: _serves(rc), "the engine serves the old client again")
    assert rc[0].apply_sync(lambda: "after") == "after"
    assert rc.get_result(finished.msg_ids[0]).get(DEADLINE) == "finished before"


def _serves(rc: Client) -> bool:
    """Whether engine 0 answers a trivial request within 5 s."""
    try:
        return bool(rc[0].apply_async(lambda: True).get(5))
    except (IndexError, CorralError, TimeoutError):  # not registered (yet), or still busy
        return False
