"""Task dependencies against a real cluster: ``after`` and ``follow``, all/any, success/failure.

Every flavour is tried met (prerequisites already finished), unmet until later (the task waits
in the scheduler and runs once its prerequisites finish), timed out (``DependencyTimeout``) and
impossible (``ImpossibleDependency``, at once). Prerequisites that must stay unfinished wait for
a file the test creates (a gate), never for a fixed time.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corral.client import (
    Client,
    Dependency,
    DependencyTimeout,
    EngineError,
    ImpossibleDependency,
    RemoteError,
    TaskAborted,
    interactive,
)

if TYPE_CHECKING:
    from corral.client import AsyncResult, LoadBalancedView
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(60)

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0

#: How soon an impossible dependency must fail: "at once", with room for a loaded machine.
AT_ONCE = 3.0


@interactive
def engine_pid() -> int:
    """Return the engine's process id."""
    import os

    return os.getpid()


@interactive
def fail(message: str) -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


@interactive
def wait_gate(gate: str, value: Any = None, deadline: float = 30.0) -> Any:
    """Wait (at most ``deadline`` s) until the file ``gate`` exists; return ``value``, or raise if it is "fail"."""
    import time
    from pathlib import Path

    end = time.monotonic() + deadline
    while not Path(gate).exists() and time.monotonic() < end:
        time.sleep(0.01)
    if value == "fail":
        raise ValueError("failed after the gate")
    return value


class Gates:
    """Files that gated tasks wait for; all opened at teardown so no engine stays busy."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: list[Path] = []

    def new(self) -> Path:
        """A new gate, still closed."""
        gate = self.directory / f"gate{len(self.made)}"
        self.made.append(gate)
        return gate

    def open_all(self) -> None:
        """Open every gate."""
        for gate in self.made:
            gate.touch()


@pytest.fixture
def gates(tmp_path: Path) -> Any:
    """Make gates; every one is opened when the test ends."""
    made = Gates(tmp_path)
    yield made
    made.open_all()


def submit(view: LoadBalancedView, f: Callable[..., Any], *args: Any, **flags: Any) -> AsyncResult:
    """``view.apply_async(f, *args)`` with the view's flags set to ``flags`` for this one call."""
    with view.temp_flags(**flags):
        return view.apply_async(f, *args)


def _held(rc: Client, ar: AsyncResult, n: int = 1) -> None:
    """Check that ``ar`` waits in the scheduler, unanswered (``n`` tasks held there in all)."""
    deadline = time.monotonic() + DEADLINE
    while rc.queue_status()["unassigned"] < n:
        assert time.monotonic() < deadline, "the dependent task never reached the scheduler"
        time.sleep(0.02)
    assert not ar.done(), "a task whose dependencies are unmet must not run"


def _ran_after(task: AsyncResult, *prerequisites: AsyncResult) -> None:
    started = task.metadata["started"]
    for pre in prerequisites:
        assert started >= pre.metadata["completed"], (started, pre.metadata["completed"])


# -- after -------------------------------------------------------------------------------------


def test_after_met_runs_at_once(rc: Client) -> None:
    lbv = rc.load_balanced_view()
    a, b = submit(lbv, engine_pid), submit(lbv, engine_pid)
    a.get(DEADLINE), b.get(DEADLINE)
    # AsyncResults, msg_ids and Dependencies are all accepted
    for dep in ([a, b], a.msg_ids + b.msg_ids, Dependency([a, b]), Dependency([a, b], all=False)):
        ar = submit(lbv, engine_pid, after=dep)
        assert ar.get(DEADLINE) > 0
        _ran_after(ar, a, b)


def test_after_all_waits_until_every_prerequisite_finished(rc: Client, gates: Gates) -> None:
    lbv = rc.load_balanced_view()
    g1, g2 = gates.new(), gates.new()
    p1, p2 = submit(lbv, wait_gate, str(g1), 1), submit(lbv, wait_gate, str(g2), 2)
    task = submit(lbv, engine_pid, after=[p1, p2])
    _held(rc, task)
    g1.touch()
    assert p1.get(DEADLINE) == 1
    _held(rc, task)
    g2.touch()
    assert task.get(DEADLINE) > 0
    _ran_after(task, p1, p2)


def test_after_any_runs_once_one_prerequisite_finished(rc: Client, gates: Gates) -> None:
    lbv = rc.load_balanced_view()
    g1, g2 = gates.new(), gates.new()
    p1, p2 = submit(lbv, wait_gate, str(g1), 1), submit(lbv, wait_gate, str(g2), 2)
    task = submit(lbv, engine_pid, after=Dependency([p1, p2], all=False))
    _held(rc, task)
    g2.touch()
    assert task.get(DEADLINE) > 0
    _ran_after(task, p2)
    assert not p1.done()


def test_after_on_failure_runs_after_a_failed_prerequisite(rc: Client, gates: Gates) -> None:
    lbv = rc.load_balanced_view()
    gate = gates.new()
    pre = submit(lbv, wait_gate, str(gate), "fail")
    cleanup = submit(lbv, engine_pid, after=Dependency(pre, success=False, failure=True))
    either = submit(lbv, engine_pid, after=Dependency(pre, success=True, failure=True))
    _held(rc, cleanup, 2)
    gate.touch()
    with pytest.raises(RemoteError, match="failed after the gate"):
        pre.get(DEADLINE)
    assert cleanup.get(DEADLINE) > 0
    assert either.get(DEADLINE) > 0
    _ran_after(cleanup, pre)


def test_after_any_with_one_failed_waits_for_the_other(rc: Client, gates: Gates) -> None:
    lbv = rc.load_balanced_view()
    gate = gates.new()
    failed = submit(lbv, fail, "no")
    with pytest.raises(RemoteError):
        failed.get(DEADLINE)
    later = submit(lbv, wait_gate, str(gate), 5)
    task = submit(lbv, engine_pid, after=Dependency([failed, later], all=False))
    _held(rc, task)
    gate.touch()
    assert task.get(DEADLINE) > 0
    _ran_after(task, later)


def test_impossible_after_dependencies_fail_at_once(rc: Client, gates: Gates) -> None:
    lbv = rc.load_balanced_view()
    failed = submit(lbv, fail, "no")
    succeeded = submit(lbv, engine_pid)
    with pytest.raises(RemoteError):
        failed.get(DEADLINE)
    succeeded.get(DEADLINE)
    cases = [
        Dependency(failed),  # success=True, the prerequisite failed
        Dependency(succeeded, success=False, failure=True),  # only a failure would do
        Dependency([failed, succeeded], all=True),  # one of "all" failed
    ]
    for dep in cases:
        t0 = time.monotonic()
        with pytest.raises(ImpossibleDependency, match=r"depend|prerequisite|task"):
            submit(lbv, engine_pid, after=dep).get(DEADLINE)
        assert time.monotonic() - t0 < AT_ONCE
    # a prerequisite that fails later makes a waiting task impossible as soon as it fails
    gate = gates.new()
    pre = submit(lbv, wait_gate, str(gate), "fail")
    task = submit(lbv, engine_pid, after=pre)
    _held(rc, task)
    gate.touch()
    with pytest.raises(RemoteError):
        pre.get(DEADLINE)
    t0 = time.monotonic()
    with pytest.raises(ImpossibleDependency):
        task.get(DEADLINE)
    assert time.monotonic() - t0 < AT_ONCE
    # the chain goes on: a task after the impossible one is impossible too
    with pytest.raises(ImpossibleDependency):
        submit(lbv, engine_pid, after=task).get(DEADLINE)


def test_a_prerequisite_nobody_knows_fails_the_task(rc: Client) -> None:
    lbv = rc.load_balanced_view()
    with pytest.raises(ImpossibleDependency, match="no-such-task"):
        submit(lbv, engine_pid, after=["no-such-task"]).get(DEADLINE)


# -- timeout -----------------------------------------------------------------------------------


def test_timeout_fails_a_task_whose_dependencies_are_not_met_in_time(rc: Client, gates: Gates) -> None:
    lbv = rc.load_balanced_view()
    gate = gates.new()
    pre = submit(lbv, wait_gate, str(gate), 1)
    t0 = time.monotonic()
    late = submit(lbv, engine_pid, after=pre, timeout=0.3)
    follows = submit(lbv, engine_pid, follow=pre, timeout=0.3)
    with pytest.raises(DependencyTimeout, match=r"0\.3"):
        late.get(DEADLINE)
    with pytest.raises(DependencyTimeout):
        follows.get(DEADLINE)
    assert time.monotonic() - t0 >= 0.3
    assert late.metadata["status"] == "error"
    # timeout=0 means no timeout (as in ipyparallel): the task waits as long as it takes
    patient = submit(lbv, engine_pid, after=pre, timeout=0)
    unbounded = submit(lbv, engine_pid, after=pre, timeout=None)
    _held(rc, patient, 2)
    gate.touch()
    assert pre.get(DEADLINE) == 1
    assert patient.get(DEADLINE) > 0
    assert unbounded.get(DEADLINE) > 0
    # met before the timeout: runs
    assert submit(lbv, engine_pid, after=pre, timeout=5).get(DEADLINE) > 0


# -- follow ------------------------------------------------------------------------------------


def test_follow_runs_where_the_prerequisites_ran(rc: Client, gates: Gates) -> None:
    lbv = rc.load_balanced_view()
    pres = [submit(lbv, engine_pid) for _ in range(8)]
    pids = [p.get(DEADLINE) for p in pres]
    assert len(set(pids)) > 1, "the prerequisites spread over several engines"
    # all=True: the one engine of that prerequisite, every time
    for pre, pid in zip(pres[:4], pids[:4], strict=True):
        assert {submit(lbv, engine_pid, follow=pre).get(DEADLINE) for _ in range(3)} == {pid}
    # all=False: any engine where one of them ran
    two = [pres[0], next(p for p, pid in zip(pres, pids, strict=True) if pid != pids[0])]
    allowed = {two[0].get(), two[1].get()}
    found = {submit(lbv, engine_pid, follow=Dependency(two, all=False)).get(DEADLINE) for _ in range(8)}
    assert found <= allowed, (found, allowed)
    # all=True on prerequisites that ran on different engines can never be met
    with pytest.raises(ImpossibleDependency):
        submit(lbv, engine_pid, follow=two).get(DEADLINE)
    # unmet until later: follow implies after
    gate = gates.new()
    pre = submit(lbv, wait_gate, str(gate), "here")
    task = submit(lbv, engine_pid, follow=pre)
    _held(rc, task)
    gate.touch()
    assert pre.get(DEADLINE) == "here"
    assert task.get(DEADLINE) == rc[pre.metadata["engine_id"]].apply_sync(engine_pid)
    _ran_after(task, pre)
    # follow a failed prerequisite: on failure it runs there, on success it cannot
    failed = submit(lbv, fail, "no")
    with pytest.raises(RemoteError):
        failed.get(DEADLINE)
    where = rc[failed.metadata["engine_id"]].apply_sync(engine_pid)
    assert submit(lbv, engine_pid, follow=Dependency(failed, success=False, failure=True)).get(DEADLINE) == where
    with pytest.raises(ImpossibleDependency):
        submit(lbv, engine_pid, follow=failed).get(DEADLINE)
    # after and follow together
    both = submit(lbv, engine_pid, follow=pres[0], after=pres[1:3])
    assert both.get(DEADLINE) == pids[0]


def test_follow_on_engines_that_are_gone_is_impossible_at_once(
    cluster_factory: Callable[..., tuple[Cluster, Client]], wait_until: Callable[..., Any], gates: Gates
) -> None:
    _, rc = cluster_factory(3)
    lbv = rc.load_balanced_view()
    ran = {}
    while len(ran) < 3:
        ar = submit(lbv, engine_pid)
        ran[ar.get(DEADLINE)] = ar
    pid, pre = next(iter(ran.items()))
    other = next(ar for p, ar in ran.items() if p != pid)
    # a task that follows it is still waiting (after a gated task) when the engine dies
    gate = gates.new()
    blocker = submit(lbv, wait_gate, str(gate), 0, targets=[e for e in rc.ids if e != pre.metadata["engine_id"]])
    waiting = submit(lbv, engine_pid, follow=pre, after=blocker)
    anyof = submit(lbv, engine_pid, follow=Dependency([pre, other], all=False))
    assert anyof.get(DEADLINE) in {pid, other.get()}
    _held(rc, waiting)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(ImpossibleDependency):
        waiting.get(DEADLINE)
    assert time.monotonic() - killed < AT_ONCE + 2.0, "fails once the engine is declared dead"
    wait_until(lambda: len(rc.ids) == 2, "the dead engine leaves rc.ids")
    t0 = time.monotonic()
    with pytest.raises(ImpossibleDependency):
        submit(lbv, engine_pid, follow=pre).get(DEADLINE)
    assert time.monotonic() - t0 < AT_ONCE
    gate.touch()
    assert blocker.get(DEADLINE) == 0
    # any of a gone engine and a live one: runs on the live one
    assert submit(lbv, engine_pid, follow=Dependency([pre, other], all=False)).get(DEADLINE) == other.get()


# -- other clients -----------------------------------------------------------------------------


def test_dependencies_on_tasks_of_another_client(cluster: Cluster, rc: Client, gates: Gates) -> None:
    other = Client(cluster.connection_file)
    try:
        theirs = other.load_balanced_view()
        gate = gates.new()
        pre = submit(theirs, wait_gate, str(gate), "theirs")
        failed = submit(theirs, fail, "theirs failed")
        with pytest.raises(RemoteError):
            failed.get(DEADLINE)
        # a direct (mux) request of the other client
        direct = other[2].apply_async(wait_gate, str(gate), "direct")
        lbv = rc.load_balanced_view()
        after = submit(lbv, engine_pid, after=list(pre.msg_ids))
        follow = submit(lbv, engine_pid, follow=list(pre.msg_ids))
        after_direct = submit(lbv, engine_pid, after=list(direct.msg_ids))
        _held(rc, after, 3)
        with pytest.raises(ImpossibleDependency):
            submit(lbv, engine_pid, after=list(failed.msg_ids)).get(DEADLINE)
        # (this one could land behind the direct request: the scheduler sees no mux load)
        on_failure = submit(lbv, engine_pid, after=Dependency(list(failed.msg_ids), success=False, failure=True))
        gate.touch()
        assert on_failure.get(DEADLINE) > 0
        assert pre.get(DEADLINE) == "theirs"
        assert direct.get(DEADLINE) == "direct"
        assert after.get(DEADLINE) > 0
        assert after_direct.get(DEADLINE) > 0
        assert follow.get(DEADLINE) == rc[pre.metadata["engine_id"]].apply_sync(engine_pid)
        _ran_after(after, pre)
        _ran_after(after_direct, direct)
    finally:
        other.close()


# -- abort -------------------------------------------------------------------------------------


def test_abort_fails_tasks_waiting_on_dependencies(rc: Client, gates: Gates) -> None:
    lbv = rc.load_balanced_view()
    gate = gates.new()
    pre = submit(lbv, wait_gate, str(gate), 1)
    waiting = submit(lbv, engine_pid, after=pre)
    never = submit(lbv, engine_pid, after=pre, follow=pre)
    _held(rc, waiting, 2)
    t0 = time.monotonic()
    lbv.abort([waiting, never])
    with pytest.raises(TaskAborted):
        waiting.get(DEADLINE)
    with pytest.raises(TaskAborted):
        never.get(DEADLINE)
    assert time.monotonic() - t0 < AT_ONCE, "aborted at once, not when the prerequisite finishes"
    assert waiting.metadata["status"] == "aborted"
    assert rc.queue_status()["unassigned"] == 0
    gate.touch()
    assert pre.get(DEADLINE) == 1
    # a task after an aborted one: aborted counts as a failure
    with pytest.raises(ImpossibleDependency):
        submit(lbv, engine_pid, after=waiting).get(DEADLINE)
    assert submit(lbv, engine_pid, after=Dependency(waiting, success=False, failure=True)).get(DEADLINE) > 0


def test_a_prerequisite_whose_engine_died_counts_as_failed(
    cluster_factory: Callable[..., tuple[Cluster, Client]], gates: Gates, wait_until: Callable[..., Any]
) -> None:
    _, rc = cluster_factory(2)
    pid0, pid1 = rc[:].apply_sync(engine_pid)
    lbv = rc.load_balanced_view()
    gate = gates.new()
    pre = submit(lbv, wait_gate, str(gate), 1, targets=1)
    wait_until(lambda: rc.queue_status(1)["tasks"] == 1, "the prerequisite runs on engine 1")
    task = submit(lbv, engine_pid, after=pre)
    cleanup = submit(lbv, engine_pid, after=Dependency(pre, success=False, failure=True))
    _held(rc, task, 2)
    os.kill(pid1, signal.SIGKILL)
    with pytest.raises(EngineError):
        pre.get(DEADLINE)
    with pytest.raises(ImpossibleDependency):
        task.get(DEADLINE)
    assert cleanup.get(DEADLINE) == pid0
