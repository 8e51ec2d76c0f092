"""The direct path: clients send direct-view requests to engines' own sockets, not through the
controller, and everything the controller does with them still works (docs/messages.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

import pytest

from corral.client import Client, interactive
from corral.wire.errors import EngineError

pytestmark = pytest.mark.timeout(120)


@interactive
def whoami() -> int:
    import os

    return os.getpid()


@interactive
def bump(n: int) -> int:
    global counter
    counter = counter * 10 + n if "counter" in globals() else n
    return counter


@interactive
def sleep_then(x: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return x


def _wait_direct(rc: Client, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(rc._io._direct_urls) < n:
        assert time.monotonic() < deadline, f"the client knows {len(rc._io._direct_urls)} engines' direct sockets"
        time.sleep(0.01)


def test_direct_requests_are_answered_while_the_controller_is_stopped(cluster_factory: Any) -> None:
    cluster, rc = cluster_factory(2)
    _wait_direct(rc, 2)
    dv = rc[:]
    dv.apply_sync(whoami)  # every engine connected directly and no relayed request outstanding
    os.kill(cluster.controller.pid, signal.SIGSTOP)
    try:
        ar = dv.apply_async(sleep_then, 7, 0.05)
        assert ar.get(timeout=10) == [7, 7]  # nothing went through the stopped controller
        rc[0].push({"x": 5}, block=True)
        assert rc[0].pull("x", block=True) == 5
    finally:
        os.kill(cluster.controller.pid, signal.SIGCONT)
    # the controller, running again, has the records: the results are stored and acknowledged
    assert ar.wait_for_ack(10)
    other = Client(cluster.connection_file, timeout=10)
    try:
        assert other.get_result(ar.msg_ids, owner=False).get(timeout=10) == [7, 7]
        status = other.queue_status()
        assert status[0]["queue"] == 0
        assert status[0]["completed"] >= 3
    finally:
        other.close()


def test_one_clients_requests_run_in_the_order_sent_across_the_switch_to_direct(cluster_factory: Any) -> None:
    # the first requests of a new client go through the controller (its direct connections are
    # still being made); later ones go directly: every engine must still run them in order
    cluster, _ = cluster_factory(2)
    for _ in range(3):
        rc = Client(cluster.connection_file, timeout=10)
        try:
            dv = rc[:]
            dv.execute("globals().pop('counter', None)", block=True)
            results = [dv.apply_async(bump, i % 9 + 1) for i in range(40)]
            values = [r.get(timeout=30) for r in results]
            expected = 0
            for i, got in enumerate(values):
                expected = expected * 10 + (i % 9 + 1)
                assert got == [expected, expected], f"request {i} ran out of order"
        finally:
            rc.close()


def test_a_client_without_the_direct_path_gets_the_same_results(cluster_factory: Any) -> None:
    cluster, rc = cluster_factory(2)
    relayed = Client(cluster.connection_file, timeout=10, direct=False)
    try:
        _wait_direct(rc, 2)
        assert relayed._io._direct_urls == {}
        a = rc[:].apply_sync(whoami)
        b = relayed[:].apply_sync(whoami)
        assert a == b
        assert len(set(a)) == 2
    finally:
        relayed.close()


def test_an_engine_killed_during_a_direct_request_fails_it_with_engine_error(cluster_factory: Any) -> None:
    _cluster, rc = cluster_factory(2)
    _wait_direct(rc, 2)
    pid = rc[1].apply_sync(whoami)
    ar = rc[1].apply_async(sleep_then, 1, 30)
    time.sleep(0.3)  # running on the engine
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EngineError) as info:
        ar.get(timeout=10)
    assert time.monotonic() - t0 < 3
    assert "SIGKILL" in str(info.value)
    assert rc[0].apply_sync(sleep_then, 3, 0) == 3  # the rest of the cluster serves on


def test_replies_nobody_waits_for_arrive_after_blocking_calls(cluster_factory: Any) -> None:
    # a thread waiting for direct replies receives them itself; afterwards the IO thread takes
    # the direct socket back, so a reply nobody waits for still completes its result
    _, rc = cluster_factory(1)
    _wait_direct(rc, 1)
    for _ in range(20):
        rc[0].apply_sync(whoami)
    done = threading.Event()
    ar = rc[0].apply_async(sleep_then, 5, 0.2)
    ar.add_done_callback(lambda _: done.set())
    assert done.wait(5), "the reply of a request nobody waited for was not handled"
    assert ar.get(0) == 5


def test_threads_waiting_on_one_client_each_get_their_own_results(cluster_factory: Any) -> None:
    _, rc = cluster_factory(2)
    _wait_direct(rc, 2)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(60):
                assert rc[i % 2].apply_sync(sleep_then, k * 1000 + i, 0) == k * 1000 + i
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_ctrl_c_while_waiting_for_a_direct_reply_interrupts_and_loses_nothing(cluster_factory: Any) -> None:
    _, rc = cluster_factory(1)
    _wait_direct(rc, 1)
    rc[0].apply_sync(whoami)
    ar = rc[0].apply_async(sleep_then, 11, 1.0)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ar.get(timeout=10)
    assert time.monotonic() - t0 < 1.0  # interrupted while waiting, not when the reply came
    assert ar.get(timeout=10) == 11  # the reply was not lost
    for i in range(50):  # Ctrl-C at random moments of short round trips: every reply arrives
        ar = rc[0].apply_async(sleep_then, i, 0)
        fire = threading.Timer(0.0005 * (i % 7), os.kill, (os.getpid(), signal.SIGINT))
        try:
            fire.start()
            ar.get(timeout=10)
        except KeyboardInterrupt:
            pass
        while fire.is_alive():  # the signal has been sent, and taken below if not above
            with contextlib.suppress(KeyboardInterrupt):
                fire.join(0.01)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(0.005)
        assert ar.get(timeout=10) == i
