"""The rest of the load-balanced API against a real cluster: flags, decorators, the executor.

``set_flags``/``temp_flags``; ``@depend``, ``@require``, ``@remote``, ``@parallel``
(``ParallelFunction.map``), ``RemoteFunction``; ``rc.executor()`` used through
``concurrent.futures`` as any executor is.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from traitlets import TraitError

from corral.client import (
    ImpossibleDependency,
    ParallelFunction,
    RemoteError,
    RemoteFunction,
    TaskAborted,
    depend,
    interactive,
    parallel,
    remote,
    require,
)

if TYPE_CHECKING:
    from corral.client import Client

pytestmark = pytest.mark.timeout(60)

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0


@interactive
def engine_pid() -> int:
    """Return the engine's process id."""
    import os

    return os.getpid()


@interactive
def wait_gate(gate: str, value: Any = None, started: str = "", deadline: float = 30.0) -> Any:
    """Create ``started`` (if given), wait (at most ``deadline`` s) until ``gate`` exists; return ``value``."""
    import time
    from pathlib import Path

    if started:
        Path(started).touch()
    end = time.monotonic() + deadline
    while not Path(gate).exists() and time.monotonic() < end:
        time.sleep(0.01)
    return value


@interactive
def has_marker(name: str) -> bool:
    """Whether the engine's namespace defines ``name`` (checked on the engine by @depend)."""
    return name in globals()


def test_set_flags_and_temp_flags(rc: Client, tmp_path: Path) -> None:
    pids = dict(zip(rc[:].apply_sync(engine_pid), rc.ids, strict=True))
    lbv = rc.load_balanced_view()
    lbv.set_flags(targets=[2], retries=1, block=True)
    assert (lbv.targets, lbv.retries, lbv.block) == ([2], 1, True)
    assert pids[lbv.apply(engine_pid)] == 2, "block=True: apply returns the value"
    with lbv.temp_flags(targets=3, block=False):
        ar = lbv.apply(engine_pid)
        assert pids[ar.get(DEADLINE)] == 3
    assert (lbv.targets, lbv.block) == ([2], True), "temp_flags restores every flag"
    with pytest.raises(RuntimeError), lbv.temp_flags(targets=0):
        raise RuntimeError("inside")
    assert lbv.targets == [2], "restored also when the block raises"
    # bad values change nothing and say what is wrong
    with pytest.raises(TraitError, match="timeout"):
        lbv.set_flags(targets=1, timeout=-1)
    assert lbv.targets == [2]
    with pytest.raises(TypeError, match="flag"):
        lbv.set_flags(colour="blue")
    with pytest.raises(TraitError, match="retries"):
        lbv.set_flags(retries=-1)
    # flags given to the view's constructor
    view = rc.load_balanced_view(targets=[0, 1])
    assert {pids[view.apply_sync(engine_pid)] for _ in range(6)} <= {0, 1}
    # after/follow as flags apply to every call while set
    lbv.set_flags(block=False, targets=None, retries=0)
    pre = lbv.apply_async(engine_pid)
    where = pre.get(DEADLINE)
    lbv.follow = pre
    assert {lbv.apply_async(engine_pid).get(DEADLINE) for _ in range(4)} == {where}
    lbv.follow = None
    gate = tmp_path / "gate"
    try:
        held = lbv.apply_async(wait_gate, str(gate), 1)
        with lbv.temp_flags(after=held, timeout=0.2):
            late = lbv.apply_async(engine_pid)
        with pytest.raises(RemoteError, match="not met"):
            late.get(DEADLINE)
    finally:
        gate.touch()
    assert held.get(DEADLINE) == 1


def test_depend_runs_only_where_the_check_passes(rc: Client) -> None:
    pids = dict(zip(rc[:].apply_sync(engine_pid), rc.ids, strict=True))
    rc[:].execute("_lb_marker = None; del _lb_marker", block=True)
    rc[2].push({"_lb_marker": True}, block=True)
    lbv = rc.load_balanced_view()

    @depend(has_marker, "_lb_marker")
    @interactive
    def where() -> int:
        import os

        return os.getpid()

    assert {pids[lbv.apply_async(where).get(DEADLINE)] for _ in range(6)} == {2}
    # met nowhere: impossible once every engine said so
    rc[2].execute("del _lb_marker", block=True)
    with pytest.raises(ImpossibleDependency, match="unmet"):
        lbv.apply_async(where).get(DEADLINE)


def test_require_imports_modules_and_defines_names_on_the_engine(rc: Client) -> None:
    lbv = rc.load_balanced_view()

    @require("json", "textwrap", answer=42)
    @interactive
    def use() -> tuple[str, str, int]:
        return json.dumps([1]), textwrap.dedent("  x"), answer  # type: ignore[name-defined]  # noqa: F821

    assert lbv.apply_sync(use) == ("[1]", "x", 42)

    @require("corral_no_such_module_anywhere")
    @interactive
    def impossible() -> int:
        return 1

    with pytest.raises(ImpossibleDependency):
        lbv.apply_async(impossible).get(DEADLINE)


def test_remote_and_parallel_on_a_load_balanced_view(rc: Client) -> None:
    lbv = rc.load_balanced_view()

    @remote(lbv, block=True)
    @interactive
    def triple(x: int) -> int:
        return 3 * x

    assert isinstance(triple, RemoteFunction)
    assert triple(5) == 15

    @lbv.remote(block=False, targets=1)
    @interactive
    def pid_of() -> int:
        import os

        return os.getpid()

    assert pid_of().get(DEADLINE) == rc[1].apply_sync(engine_pid)
    assert lbv.targets is None, "the function's flags apply only around its calls"

    @parallel(lbv, block=True)
    @interactive
    def sizes(block: list[int]) -> list[int]:
        return [len(block)] * len(block)

    assert isinstance(sizes, ParallelFunction)
    got = sizes(range(10))
    assert len(got) == 10
    assert sum(set(got)) <= 10
    assert len(set(got)) > 0

    @parallel(lbv, block=True, chunksize=3)
    @interactive
    def doubled(block: list[int]) -> list[int]:
        return [2 * x for x in block]

    assert doubled(range(10)) == [2 * x for x in range(10)]

    @lbv.parallel(block=True)
    @interactive
    def square(x: int) -> int:
        return x * x

    assert square.map(range(12)) == [x * x for x in range(12)], "map calls it element by element"
    # a RemoteFunction made directly
    rf = RemoteFunction(lbv, engine_pid, block=True, targets=[3])
    assert rf() == rc[3].apply_sync(engine_pid)


def test_executor_works_as_a_concurrent_futures_executor(rc: Client, tmp_path: Path) -> None:
    with rc.executor() as ex:
        assert isinstance(ex, concurrent.futures.Executor)
        fut = ex.submit(pow, 2, 10)
        assert isinstance(fut, concurrent.futures.Future)
        assert fut.result(DEADLINE) == 1024
        futures = [ex.submit(pow, x, 2) for x in range(20)]
        done = [f.result() for f in concurrent.futures.as_completed(futures, timeout=DEADLINE)]
        assert sorted(done) == [x * x for x in range(20)]
        assert list(ex.map(pow, range(10), [3] * 10)) == [x**3 for x in range(10)]
        assert list(ex.map(pow, range(10), [2] * 10, chunksize=4)) == [x * x for x in range(10)]
        failing = ex.submit(lambda: 1 / 0)
        assert isinstance(failing.exception(DEADLINE), RemoteError)
        waited = concurrent.futures.wait([fut, failing], timeout=DEADLINE)
        assert len(waited.done) == 2
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.submit(pow, 1, 1)

    # shutdown(cancel_futures=True) aborts what has not run, and waits for the rest
    gate = tmp_path / "gate"
    ex = rc.executor(targets=[0])
    started = tmp_path / "started"
    running = ex.submit(wait_gate, str(gate), "ran", str(started))
    queued = [ex.submit(engine_pid) for _ in range(3)]
    deadline = time.monotonic() + DEADLINE
    while not started.exists():
        assert time.monotonic() < deadline, "the first task never started"
        time.sleep(0.01)
    try:
        # the aborts are confirmed by the engines before shutdown returns
        ex.shutdown(wait=False, cancel_futures=True)
    finally:
        gate.touch()
    ex.shutdown(wait=True)  # again: waits for what still runs
    assert running.done()
    assert running.result(0) == "ran"
    for f in queued:
        with pytest.raises(TaskAborted):
            f.result(DEADLINE)

    # map's timeout counts from the call to map, as concurrent.futures says
    ex = rc.executor()
    gate2 = tmp_path / "gate2"
    try:
        results = ex.map(wait_gate, [str(gate2)], timeout=1.0)
        time.sleep(1.0)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            next(results)
        assert time.monotonic() - t0 < 0.5, "the time was up already: no further waiting"
    finally:
        gate2.touch()
        ex.shutdown()
