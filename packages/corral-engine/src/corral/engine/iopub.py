"""The IOPub thread: the one owner of the engine's PUB socket on ``iopub_engine``.

Other threads hand it messages (:meth:`IOPub.publish`) and stream text (:meth:`IOPub.stream`);
it signs and sends them in the order they were handed over. Stream text is coalesced: what a
request writes within 50 ms goes out as one ``stream`` message, and any other message flushes
the pending text first, so a client sees output before the ``execute_result``, ``error`` or
``status: idle`` that follows it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

import zmq

from corral.engine.signals import block_in_this_thread
from corral.wire import Session, harden
from corral.wire.gate import admit

__all__ = ["COALESCE_SECONDS", "IOPub"]

log = logging.getLogger(__name__)

#: Stream text is sent at most this long after it was written.
COALESCE_SECONDS: Final = 0.05

_WAKE: Final = object()
_STOP: Final = object()


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
        Seconds stream text may wait to be sent with what follows it.
    """

    def __init__(
        self,
        session: Session,
        url: str,
        context: zmq.Context[Any],
        metadata: Mapping[str, Any],
        coalesce: float = COALESCE_SECONDS,
    ) -> None:
        self._session = session
        self._url = url
        self._context = context
        self._metadata = dict(metadata)
        self._coalesce = coalesce
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # (parent_header, stream name, [texts]) in the order written; adjacent writes to the
        # same stream of the same request share one entry
        self._pending: list[tuple[Mapping[str, Any], str, list[str]]] = []
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="corral-engine-iopub", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

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
        """Queue a message for sending, after any stream text written before it."""
        with self._lock:
            self._seal()
            self._queue.put((msg_type, dict(content), dict(parent)))

    def stream(self, parent: Mapping[str, Any], name: str, text: str) -> None:
        """Queue stream text written by the request ``parent``; sent within the coalescing delay."""
        with self._lock:
            pending = self._pending
            if pending and pending[-1][1] == name and pending[-1][0] is parent:
                pending[-1][2].append(text)
            else:
                pending.append((parent, name, [text]))
            if self._deadline is not None:
                return
            self._deadline = time.monotonic() + self._coalesce
            self._queue.put(_WAKE)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over so far has been given to ZeroMQ.

        Returns
        -------
        bool
            False if the thread did not get there within ``timeout`` seconds (or is stopped).
        """
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        with self._lock:
            self._seal()
            self._queue.put(done)
        return done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is pending, close the socket and end the thread."""
        if self._thread.is_alive():
            with self._lock:
                self._seal()
                self._queue.put(_STOP)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the IOPub thread did not stop within %s s", timeout)

    def _seal(self) -> None:
        # with the lock held: pending stream text takes its place in the queue, so that it is
        # sent after everything queued before it and before everything queued after it
        if self._pending:
            self._queue.put(self._pending)
            self._pending = []
        self._deadline = None

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        block_in_this_thread()
        try:
            socket = admit(harden(self._context.socket(zmq.PUB)), self._session.key)
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

    def _loop(self, socket: zmq.Socket[Any]) -> None:
        while True:
            wait: float | None = None
            with self._lock:
                if self._deadline is not None:
                    wait = self._deadline - time.monotonic()
                    if wait <= 0:
                        self._seal()
                        wait = None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            if item is _WAKE:
                continue
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

    def _send(self, socket: zmq.Socket[Any], msg_type: str, content: dict[str, Any], parent: dict[str, Any]) -> None:
        try:
            self._session.send(socket, msg_type, content, parent=parent, metadata=self._metadata)
        except (TypeError, zmq.ZMQError) as err:
            log.warning("could not publish a %s message: %s", msg_type, err)
