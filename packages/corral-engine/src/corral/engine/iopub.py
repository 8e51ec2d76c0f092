"""The IOPub thread: the one owner of the engine's PUB socket on ``iopub_engine``.

Other threads hand it messages (:meth:`IOPub.publish`) and stream text (:meth:`IOPub.stream`);
it signs and sends them in the order they were handed over, in batches: whatever is handed over
goes out at most 50 ms later (``COALESCE_SECONDS``), and what a request writes to a stream within
that window goes out as one ``stream`` message. Handing something over never wakes the thread:
it wakes on its own every ``COALESCE_SECONDS`` and sends what is due, so a request never shares
the CPU or the GIL with the IOPub thread while it runs and replies (waking the thread for the
first item of each batch cost a short request ~30 us of its round trip on 2 cores; the ticks of
an idle engine cost nothing measurable). :meth:`IOPub.flush` sends everything at once, which the
executor does before a reply that follows output, an ``execute_result`` or an ``error``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import zmq

from corral.engine.signals import block_in_this_thread
from corral.wire import Session, harden
from corral.wire.gate import admit

__all__ = ["COALESCE_SECONDS", "IOPub"]

log = logging.getLogger(__name__)

#: Anything handed to the IOPub thread is sent at most this long afterwards.
COALESCE_SECONDS: Final = 0.05

_STOP: Final = object()

# a stream's pending text: (parent header, stream name, texts)
_Streams = list[tuple[Mapping[str, Any], str, list[str]]]


class IOPub:
    """Publish engine output on ``iopub_engine`` from a dedicated thread.

    Parameters
    ----------
    session
        Signs the messages.
    url
        The controller's ``iopub_engine`` address (a SUB socket there).
    context
        The ZeroMQ context for the PUB socket.
    metadata
        Put in every message's metadata (``engine_id``, ``engine_uuid``).
    coalesce
        Seconds anything handed over may wait to be sent with what follows it.
    curve_server_key
        The controller's CurveZMQ public key (the connection file's ``curve_public_key``), if on.

    Attributes
    ----------
    on_tick
        Called in the IOPub thread at every wake-up (at least every ``coalesce`` seconds), or
        None; the engine sends held-back direct-path records this way.
    """

    def __init__(
        self,
        session: Session,
        url: str,
        context: zmq.Context[Any],
        metadata: Mapping[str, Any],
        coalesce: float = COALESCE_SECONDS,
        curve_server_key: str | None = None,
    ) -> None:
        self._curve_server_key = curve_server_key
        self._session = session
        self._url = url
        self._context = context
        self._metadata = dict(metadata)
        self._coalesce = coalesce
        self._cond = threading.Condition(threading.Lock())
        # in hand-over order: (msg_type, content, parent), a list of streams, an Event, _STOP
        self._items: deque[Any] = deque()
        # stream text not yet placed in _items; adjacent writes to one stream of one request share
        # an entry
        self._pending: _Streams = []
        self._deadline: float | None = None
        self._urgent = False
        self._thread = threading.Thread(target=self._run, name="corral-engine-iopub", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.on_tick: Callable[[], object] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and wait until its socket is connected.

        Raises
        ------
        RuntimeError
            If the socket cannot be created or connected in ``timeout`` seconds.
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the IOPub thread did not connect to {self._url} in {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"the IOPub thread could not connect to {self._url}: {self._error}")

    def publish(self, msg_type: str, content: Mapping[str, Any], parent: Mapping[str, Any]) -> None:
        """Hand over a message, to be sent after any stream text written before it."""
        with self._cond:
            self._seal()
            self._items.append((msg_type, dict(content), dict(parent)))
            self._schedule()

    def stream(self, parent: Mapping[str, Any], name: str, text: str) -> None:
        """Hand over stream text written by the request ``parent``."""
        with self._cond:
            pending = self._pending
            if pending and pending[-1][1] == name and pending[-1][0] is parent:
                pending[-1][2].append(text)
            else:
                pending.append((parent, name, [text]))
            self._schedule()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything handed over so far now, and wait until ZeroMQ has it.

        Returns
        -------
        bool
            False if the thread did not get there within ``timeout`` seconds (or is stopped).
        """
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        with self._cond:
            self._seal()
            self._items.append(done)
            self._urgent = True
            self._cond.notify()
        return done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is pending, close the socket and end the thread."""
        if self._thread.is_alive():
            with self._cond:
                self._seal()
                self._items.append(_STOP)
                self._urgent = True
                self._cond.notify()
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the IOPub thread did not stop within %s s", timeout)

    def _schedule(self) -> None:
        # with the lock held: the first item of a batch sets its deadline; nobody is woken (the
        # thread's next tick, at most one coalesce period away, finds it and sleeps until then)
        if self._deadline is None:
            self._deadline = time.monotonic() + self._coalesce

    def _seal(self) -> None:
        # with the lock held: pending stream text takes its place among the items, after
        # everything handed over before it and before everything handed over after it
        if self._pending:
            self._items.append(self._pending)
            self._pending = []

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        block_in_this_thread()
        try:
            socket = admit(harden(self._context.socket(zmq.PUB)), self._session.key, self._curve_server_key)
            socket.connect(self._url)
        except Exception as err:
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop(socket)
        except Exception:
            log.exception("the IOPub thread failed; engine output is no longer published")
        finally:
            # give the last messages (e.g. after a shutdown request) a moment to leave
            socket.close(linger=1000)

    def _take_batch(self) -> list[Any]:
        with self._cond:
            while True:
                if self._urgent:
                    break
                if self._deadline is not None:
                    left = self._deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                else:
                    self._cond.wait(self._coalesce)  # the tick: nothing wakes this thread for a batch
                    if self._deadline is None and not self._urgent and self.on_tick is not None:
                        return []  # nothing to send: back to _loop, which runs on_tick
            self._seal()
            batch = list(self._items)
            self._items.clear()
            self._deadline = None
            self._urgent = False
            return batch

    def _loop(self, socket: zmq.Socket[Any]) -> None:
        while True:
            batch = self._take_batch()
            on_tick = self.on_tick
            if on_tick is not None:
                try:
                    on_tick()
                except Exception:  # pragma: no cover - a failing hook must not end output
                    log.exception("the IOPub thread's tick hook failed")
            for item in _elide_quiet_requests(batch):
                if item is _STOP:
                    return
                if isinstance(item, threading.Event):
                    item.set()
                elif isinstance(item, list):
                    for parent, name, texts in item:
                        self._send(socket, "stream", {"name": name, "text": "".join(texts)}, parent)
                else:
                    msg_type, content, parent = item
                    self._send(socket, msg_type, content, parent)

    def _send(self, socket: zmq.Socket[Any], msg_type: str, content: dict[str, Any], parent: Mapping[str, Any]) -> None:
        try:
            self._session.send(socket, msg_type, content, parent=parent, metadata=self._metadata)
        except (TypeError, zmq.ZMQError) as err:
            log.warning("could not publish a %s message: %s", msg_type, err)


def _is_status(item: Any, state: str) -> bool:
    return isinstance(item, tuple) and item[0] == "status" and item[1].get("execution_state") == state


def _elide_quiet_requests(batch: list[Any]) -> list[Any]:
    """Drop each ``busy`` status directly followed by the same request's ``idle`` in one batch.

    Such a pair says only that a request ran, quietly and within the batch window, which its
    reply says too; dropping it keeps short requests off the IOPub path entirely (no signing
    here, no relaying in the controller, no decoding in clients). A request that runs longer
    than the window, or writes anything, keeps both (docs/messages.md).
    """
    out: list[Any] = []
    for item in batch:
        if (
            out
            and _is_status(item, "idle")
            and _is_status(out[-1], "busy")
            and out[-1][2].get("msg_id") == item[2].get("msg_id")
        ):
            out.pop()
            continue
        out.append(item)
    return out
