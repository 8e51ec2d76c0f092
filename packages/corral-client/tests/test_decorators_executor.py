"""@remote, @parallel, RemoteFunction, ParallelFunction on both views, and rc.executor()."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest

from corral.client import (
    AsyncMapResult,
    AsyncResult,
    Client,
    CompositeError,
    ParallelFunction,
    RemoteError,
    RemoteFunction,
    TaskAborted,
    ViewExecutor,
    parallel,
    remote,
)

pytestmark = pytest.mark.timeout(30)


def engine_of() -> int:
    return int(__import__("threading").current_thread().name.rsplit("-", 1)[1])


def test_remote_on_both_views(rc: Client, cluster) -> None:
    @remote(rc[:], block=True)
    def where() -> int:
        import threading

        return int(threading.current_thread().name.rsplit("-", 1)[1])

    assert isinstance(where, RemoteFunction)
    assert where.__name__ == "where"
    assert where() == [0, 1, 2]

    lv = rc.load_balanced_view()

    @lv.remote(targets=[2])
    def lb_where(x: int) -> tuple[int, int]:
        import threading

        return x, int(threading.current_thread().name.rsplit("-", 1)[1])

    ar = lb_where(5)
    assert isinstance(ar, AsyncResult)
    assert ar.get(10) == (5, 2)
    assert lv.targets is None  # the function's flags apply to its calls only
    assert cluster.tasks.received[-1].header["sched"] == {"targets": [2]}

    @remote(lv, block=True, retries=1)
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(RemoteError, match="KeyError"):
        boom()
    with pytest.raises(TypeError, match="no flag"):
        remote(lv, chunky=1)(abs)
    with pytest.raises(TypeError):
        RemoteFunction(lv, 3)  # type: ignore[arg-type]


def test_a_remote_function_wrapping_another_keeps_its_own_view_and_flags(rc: Client) -> None:
    lv = rc.load_balanced_view()
    inner = RemoteFunction(rc[:], engine_of, block=True)
    outer = RemoteFunction(lv, inner, block=False, targets=[1])
    assert outer.view is lv
    assert outer.func is inner
    assert outer.flags == {"targets": [1]}
    assert outer.block is False
    assert outer.__name__ == "engine_of"
    assert inner.func is engine_of


def test_parallel_calls_with_blocks_and_maps_elementwise(rc: Client, cluster) -> None:
    @parallel(rc[:], block=True)
    def total(block: list[int]) -> list[int]:
        return [sum(block)]

    assert isinstance(total, ParallelFunction)
    assert total(list(range(10))) == [6, 15, 24]  # blocks [0..3], [4..6], [7..9]
    lv = rc.load_balanced_view()

    @lv.parallel(block=True, chunksize=2)
    def lengths(block: list[int]) -> list[int]:
        return [len(block)]

    assert lengths(list(range(5))) == [2, 2, 1]

    @lv.parallel(block=False)
    def double(block: list[int]) -> list[int]:
        return [2 * x for x in block]

    amr = double(list(range(7)))
    assert isinstance(amr, AsyncMapResult)
    assert amr.get(10) == [2 * x for x in range(7)]
    assert len(amr) == 3  # one block per engine by default

    @parallel(lv, block=True)
    def square(x: int) -> int:
        return x * x

    assert square.map(range(5)) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="dist"):
        parallel(lv, dist="r")
    with pytest.raises(ValueError, match="differ"):
        square(range(2), range(3))

    @parallel(lv, block=True)
    def bad(block: list[int]) -> list[int]:
        return [1 // x for x in block]

    with pytest.raises(CompositeError):
        bad([1, 0, 1])


def test_parallel_map_is_elementwise(rc: Client) -> None:
    @parallel(rc[:], block=True)
    def inc(x: int) -> int:
        return x + 1

    assert inc.map([1, 2, 3, 4]) == [2, 3, 4, 5]
    lv = rc.load_balanced_view()

    @lv.parallel(block=True, chunksize=3, ordered=False)
    def neg(x: int) -> int:
        return -x

    assert neg.map(range(7)) == [-x for x in range(7)]


def test_executor_submit_map_wait_as_completed(rc: Client) -> None:
    ex = rc.executor()
    assert isinstance(ex, ViewExecutor)
    assert isinstance(ex, concurrent.futures.Executor)
    futures = [ex.submit(pow, i, 2) for i in range(6)]
    done, not_done = concurrent.futures.wait(futures, timeout=10)
    assert not not_done
    assert sorted(f.result() for f in done) == [i * i for i in range(6)]
    got = [f.result() for f in concurrent.futures.as_completed([ex.submit(abs, -i) for i in range(4)], timeout=10)]
    assert sorted(got) == [0, 1, 2, 3]
    assert list(ex.map(pow, range(5), [3] * 5)) == [i**3 for i in range(5)]
    assert list(ex.map(abs, [-1, -2, -3], chunksize=2, timeout=10)) == [1, 2, 3]
    it = ex.map(lambda x: 1 // x, [1, 0])
    assert next(it) == 1
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        next(it)
    failing = ex.submit(lambda: 1 // 0)
    assert isinstance(failing.exception(10), RemoteError)

    async def gather() -> list[int]:
        return list(await asyncio.gather(ex.submit(abs, -7), ex.submit(abs, -8)))

    assert asyncio.run(gather()) == [7, 8]
    ex.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.submit(abs, 1)
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.map(abs, [1])


def test_executor_context_manager_waits_and_cancels(rc: Client, cluster) -> None:
    cluster.engines[1].delay = 0.3
    with rc.executor(targets=[1]) as ex:
        futures = [ex.submit(engine_of) for _ in range(2)]
    assert all(f.done() for f in futures)  # shutdown(wait=True) on exit
    assert [f.result() for f in futures] == [1, 1]
    ex2 = rc.executor(targets=[1])
    first = ex2.submit(engine_of)
    queued = ex2.submit(engine_of)
    ex2.shutdown(wait=True, cancel_futures=True)
    assert first.done()
    assert queued.done()
    with pytest.raises(TaskAborted):  # waiting behind the slow first one when aborted
        queued.result()


def test_executor_map_timeout(rc: Client, cluster) -> None:
    for engine in cluster.engines.values():
        engine.delay = 0.5
    ex = rc.executor()
    it = ex.map(abs, [-1, -2], timeout=0.05)
    with pytest.raises(TimeoutError):
        next(it)
    # the timeout counts from the call to map, not from the first next()
    it = ex.map(abs, [-1, -2], timeout=0.3)
    time.sleep(0.3)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        next(it)
    assert time.monotonic() - t0 < 0.2
    ex.shutdown(wait=True)
    assert not rc.outstanding
