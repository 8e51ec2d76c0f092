"""The Reactor: sockets, timers, cross-thread calls, and surviving a failing handler."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import zmq

from corral.wire.loop import Reactor
from corral.wire.testing import socket_pair

pytestmark = pytest.mark.timeout(30)


def test_socket_handlers_and_timers() -> None:
    r = Reactor()
    got: list[bytes] = []
    with socket_pair(zmq.PUSH, zmq.PULL) as (push, pull):

        def on_pull(sock: Any) -> None:
            while True:
                try:
                    got.append(sock.recv(zmq.NOBLOCK))
                except zmq.Again:
                    return
                if len(got) == 3:
                    r.stop()

        r.add_socket(pull, on_pull)
        r.call_later(0.05, lambda: [push.send(b"%d" % i) for i in range(3)])
        assert r.run(timeout=10) is True
        r.remove_socket(pull)
    assert got == [b"0", b"1", b"2"]
    r.close()


def test_periodic_timer_and_cancel() -> None:
    r = Reactor()
    ticks: list[float] = []
    timer = r.call_every(0.02, lambda: ticks.append(time.monotonic()))
    r.call_later(0.25, r.stop)
    r.run(timeout=10)
    assert 5 <= len(ticks) <= 14
    timer.cancel()
    n = len(ticks)
    r.call_later(0.1, r.stop)
    r.run(timeout=10)
    assert len(ticks) == n
    with pytest.raises(ValueError, match="positive"):
        r.call_every(0, print)
    r.close()


def test_call_soon_threadsafe_and_stop_from_another_thread() -> None:
    r = Reactor()
    seen: list[str] = []

    def worker() -> None:
        r.call_soon_threadsafe(seen.append, "from thread")
        time.sleep(0.05)
        r.stop()

    t = threading.Thread(target=worker)
    t.start()
    assert r.run(timeout=10) is True
    t.join()
    assert seen == ["from thread"]
    r.close()


def test_timeout_returns_false() -> None:
    r = Reactor()
    t0 = time.monotonic()
    assert r.run(timeout=0.1) is False
    assert time.monotonic() - t0 < 5
    r.close()


def test_a_failing_handler_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    r = Reactor()
    r.call_later(0.0, lambda: 1 / 0)
    r.call_later(0.02, r.stop)
    assert r.run(timeout=10) is True
    assert any("ZeroDivisionError" in (rec.exc_text or "") for rec in caplog.records)
    r.close()
