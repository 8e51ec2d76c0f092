"""The request sockets, owned by the execution thread and lent to the IO thread on demand.

Requests arrive on the ``mux_engine``, ``task_engine`` and ``broadcast_engine`` DEALERs and
their replies leave on them; direct requests from clients that reach the engine itself arrive
on its own ROUTER (:mod:`corral.engine.direct`), and their replies leave there. The controller
gets a record of each such request and reply on ``mux_engine``, sent off the critical path:
when the execution thread is about to wait for work (right after a reply, while the client is
busy with it), or by the IOPub thread's tick while user code runs (:meth:`Shell.tick`, which
also takes in direct requests that arrive meanwhile), so the hub hears of a long-running
direct request, and of those queued behind it, within ~50 ms.

The execution thread receives and sends on them itself: no hand-off between threads on the way
in or out, which is what keeps a round trip short. ZeroMQ sockets
must not be used by two threads at once, so every use happens under :attr:`Shell.lock`; a lock
is also the memory barrier ZeroMQ asks for when a socket changes threads.

While user code runs, the execution thread does not hold the lock, so the IO thread can
:meth:`~Shell.borrow` the sockets to take in requests that arrived meanwhile (that is how
``abort_request`` with ``msg_ids: null`` finds every request that has reached the engine). While
the execution thread waits for work it polls with the lock held; :meth:`~Shell.borrow` wakes it
and it steps aside until the IO thread is done.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, cast

import zmq

from corral.engine.direct import DirectSocket
from corral.engine.inbox import Inbox
from corral.engine.refusal import answer_refused
from corral.wire import ConnectionInfo, MessageRejected, Session, channel_url, harden
from corral.wire.frames import recv_frames
from corral.wire.gate import admit
from corral.wire.protocol import DIRECT_REPLY_RECORD, DIRECT_REQUEST_RECORD

__all__ = ["REQUEST_CHANNELS", "Shell"]

log = logging.getLogger(__name__)

#: Channels that carry requests to run, by the name replies are routed under.
REQUEST_CHANNELS: Final = ("mux", "task", "broadcast")
_REQUIRED: Final = frozenset({"mux"})
# linger of the DEALERs at close: time for the last replies to leave
_CLOSE_LINGER_MS: Final = 1000
_instances = iter(range(1 << 62))
_POLLIN: Final = int(zmq.POLLIN)


def _readable(sock: zmq.Socket[Any]) -> bool:
    return bool(cast(int, sock.getsockopt(zmq.EVENTS)) & _POLLIN)


_NOBLOCK: Final = int(zmq.NOBLOCK)
_SNDMORE: Final = int(zmq.SNDMORE)
_COPY_BELOW: Final = zmq.COPY_THRESHOLD
#: Records of direct requests and replies held back at most; more are sent at once.
_RECORDS_MAX: Final = 64
#: Seconds a record is held back at most while the engine waits for work.
_RECORD_DELAY: Final = 0.02


def _send(sock: zmq.Socket[Any], frames: list[Any]) -> None:
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        flags = 0 if i == last else _SNDMORE
        if isinstance(frame, zmq.Frame):
            sock.send(frame, flags, copy=False)
        else:
            # small frames are cheaper copied than wrapped in a zero-copy zmq.Frame
            sock.send(frame, flags, copy=memoryview(frame).nbytes < _COPY_BELOW)


class Shell:
    """The engine's request DEALERs (identity: the engine uuid), and who may use them.

    Parameters
    ----------
    session
        Signs and checks messages.
    context
        The ZeroMQ context.
    info
        Connection info (addresses).
    uuid
        The engine uuid.
    direct
        The engine's bound socket for direct requests from clients (:mod:`corral.engine.direct`),
        or None; the shell owns it from now on and closes it.

    Attributes
    ----------
    direct_url
        Where direct requests are accepted, or None.

    Raises
    ------
    corral.wire.ConnectionFileError
        If the connection info lacks the ``mux_engine`` channel.
    zmq.ZMQError
        If a socket cannot connect.
    """

    def __init__(
        self,
        session: Session,
        context: zmq.Context[Any],
        info: ConnectionInfo,
        uuid: str,
        *,
        direct: DirectSocket | None = None,
    ) -> None:
        self.session = session
        self.lock = threading.Lock()
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        self._channels: dict[zmq.Socket[Any], str] = {}
        self._urls: dict[str, str] = {}
        self._poller = zmq.Poller()
        self._wanted = False
        self._returned = threading.Event()
        self._returned.set()
        self._closed = False
        self._uuid = uuid
        self._direct = direct
        self._direct_sock = direct.socket if direct is not None else None
        self.direct_url = direct.url if direct is not None else None
        # records for the controller not sent yet: (client, header frame) for a request,
        # (client, reply frames) for a reply
        self._records: list[tuple[bytes, Any]] = []
        self._records_since = 0.0  # when the oldest record was held back
        identity = uuid.encode("ascii")
        url = f"inproc://corral-engine-shell-wake-{uuid}-{next(_instances)}"
        self._wake_rx = context.socket(zmq.PULL)
        self._wake_rx.setsockopt(zmq.LINGER, 0)
        self._wake_rx.bind(url)
        self._wake_tx = context.socket(zmq.PUSH)
        self._wake_tx.setsockopt(zmq.LINGER, 0)
        self._wake_tx.connect(url)
        self._wake_lock = threading.Lock()
        self._poller.register(self._wake_rx, zmq.POLLIN)
        try:
            for channel in REQUEST_CHANNELS:
                name = f"{channel}_engine"
                if name not in info["ports"] and channel not in _REQUIRED:
                    log.debug("the connection file has no %s channel; not serving it", name)
                    continue
                # the engine only connects out, to the controller's gate (admit), so no stranger
                # can reach these sockets: no frame-size limit (pushing large arrays is legitimate)
                sock = admit(
                    harden(context.socket(zmq.DEALER), max_frame_size=None), session.key, info.get("curve_public_key")
                )
                sock.setsockopt(zmq.IDENTITY, identity)
                self.sockets[channel] = sock
                self._channels[sock] = channel
                self._urls[channel] = channel_url(info, name)
                sock.connect(self._urls[channel])
                self._poller.register(sock, zmq.POLLIN)
            for sock in self.sockets.values():
                session.send(sock, "engine_hello", {"uuid": uuid})
            if self._direct_sock is not None:
                self._poller.register(self._direct_sock, zmq.POLLIN)
        except BaseException:
            self.close()
            raise

    # -- used with the lock held -------------------------------------------------------------

    def drain(self, inbox: Inbox) -> int:
        """Move every request that has arrived into ``inbox`` (lock held); return how many."""
        return self.wait(inbox, 0.0)

    def wait(self, inbox: Inbox, timeout: float) -> int:
        """Wait (lock held) up to ``timeout`` seconds for requests or a wake-up; queue the requests.

        Returns
        -------
        int
            How many requests were moved into ``inbox``.
        """
        if self._closed:
            return 0
        if self._records and timeout > 0:
            # about to wait: the records go once the oldest is _RECORD_DELAY old, in one batch
            # (one wake-up of the controller for many round trips, none on their critical path)
            due = self._records_since + _RECORD_DELAY - time.monotonic()
            if due <= 0:
                self.flush_records()
            else:
                timeout = min(timeout, due)
        moved = 0
        for sock, _ in self._poller.poll(int(timeout * 1000)):
            if sock is self._wake_rx:
                while _readable(sock):
                    sock.recv()
                continue
            if sock in self._channels:
                moved += self._take(sock, inbox)
            elif self._direct_sock is not None:
                moved += self._take_direct(self._direct_sock, inbox)
        return moved

    def _take(self, sock: zmq.Socket[Any], inbox: Inbox) -> int:
        # ask ZeroMQ whether a message waits instead of catching zmq.Again: much cheaper
        channel = self._channels[sock]
        session = self.session
        moved = 0
        while _readable(sock):
            try:
                msg = session.recv(sock, _NOBLOCK, channel=channel)
            except MessageRejected as err:
                # counted and logged by the session; never executed, but answered when authentic
                answer_refused(session, sock, err, {"engine_uuid": self._uuid})
                continue
            except zmq.Again:
                break
            inbox.put(channel, msg)
            moved += 1
        return moved

    def _take_direct(self, sock: zmq.Socket[Any], inbox: Inbox) -> int:
        # a direct request is recorded with the hub (its header, re-signed by this engine) as
        # it is queued: the hub then knows it is queued or running here, as for relayed ones
        session = self.session
        moved = 0
        while _readable(sock):
            try:
                frames = recv_frames(sock, _NOBLOCK)
            except zmq.Again:
                break
            try:
                idents, rest = session.feed_identities(frames)
            except MessageRejected as err:
                session.reject("direct", err)
                continue
            if len(idents) != 1:
                session.reject("direct", MessageRejected("malformed", "a direct request needs one client identity"))
                continue
            try:
                msg = session.deserialize(rest, stream=sock, channel="direct", idents=idents)
            except MessageRejected as err:
                answer_refused(session, sock, err, {"engine_uuid": self._uuid})
                continue
            self._add_record(idents[0], rest[1])
            inbox.put("direct", msg)
            moved += 1
        return moved

    def send(self, channel: str, frames: list[Any]) -> None:
        """Send signed ``frames`` on ``channel`` (lock held); dropped once closed.

        A reply on ``direct`` goes to its client's direct connection and, as a record, to the
        controller; if that connection is gone, it goes the usual way, through the controller.
        """
        if channel == "direct":
            self._send_direct(frames)
            return
        sock = self.sockets.get(channel)
        if sock is None or self._closed:
            log.debug("a reply on %s is dropped: the engine's sockets are closed", channel)
            return
        try:
            _send(sock, frames)
        except zmq.ZMQError as err:
            log.warning("could not send a reply on %s: %s", channel, err)

    def _send_direct(self, frames: list[Any]) -> None:
        sock = self._direct_sock
        mux = self.sockets.get("mux")
        if sock is None or mux is None or self._closed:
            log.debug("a direct reply is dropped: the engine's sockets are closed")
            return
        try:
            _send(sock, frames)
        except zmq.ZMQError as err:
            # EHOSTUNREACH: the client's direct connection is gone (it may still be connected
            # to the controller, which relays the reply and stores it as any other)
            log.debug("a direct reply goes through the controller: %s", err)
            try:
                _send(mux, frames)
            except zmq.ZMQError as exc:
                log.warning("could not send a reply: %s", exc)
            return
        # the same signed frames, marked as a record: stored by the hub, not forwarded
        self._add_record(frames[0], frames[1:])
        if isinstance(frames[-1], zmq.Frame):
            # tracked buffers (the executor makes the trailing buffer frames zmq.Frames): it waits
            # until ZeroMQ has sent every copy of them, so the record goes now
            self.flush_records()

    def _add_record(self, client: bytes, what: Any) -> None:
        if not self._records:
            self._records_since = time.monotonic()
        self._records.append((client, what))
        if len(self._records) >= _RECORDS_MAX:
            self.flush_records()

    def flush_records(self) -> None:
        """Send the controller the records of direct requests and replies (lock held)."""
        records, self._records = self._records, []
        mux = self.sockets.get("mux")
        if mux is None or self._closed:
            return
        for client, what in records:
            try:
                if isinstance(what, list):  # a reply's frames (from the delimiter on)
                    _send(mux, [client, DIRECT_REPLY_RECORD, *what])
                else:  # a request's header frame, re-signed by this engine
                    self.session.forward_header(mux, what, [client, DIRECT_REQUEST_RECORD])
            except zmq.ZMQError as err:  # pragma: no cover - a DEALER queues while disconnected
                log.warning("could not send a direct-path record to the controller: %s", err)

    def tick(self, inbox: Inbox) -> None:
        """Take in direct requests and send pending records, if no other thread uses the sockets.

        The IOPub thread calls this on its tick (any thread may). While user code runs, the
        execution thread does not hold the lock: so within a tick a direct request queued behind
        a long-running one is in ``inbox`` and recorded with the hub (``queue_status`` counts
        it, as it counts a relayed one), and a long-running request's own record has gone.
        """
        if not self.lock.acquire(blocking=False):
            return  # the execution thread is receiving, sending or waiting for work itself
        try:
            if self._closed:
                return
            sock = self._direct_sock
            if sock is not None and _readable(sock):
                self._take_direct(sock, inbox)
            if self._records:
                self.flush_records()
        finally:
            self.lock.release()

    def reconnect(self, channel: str, url: str) -> None:
        """Connect ``channel``'s socket to ``url`` instead of where it was (lock held).

        A restarted controller with a broadcast tree may serve this engine's broadcasts from a
        leaf at another port; the registration reply says which.
        """
        sock = self.sockets.get(channel)
        if sock is None or self._closed:
            return
        old = self._urls.get(channel)
        if old == url:
            return
        if old is not None:
            with contextlib.suppress(zmq.ZMQError):
                sock.disconnect(old)
        sock.connect(url)
        self._urls[channel] = url

    def say_hello(self) -> None:
        """Send ``engine_hello`` on every request socket again (lock held), e.g. to a controller
        restarted at the same address, whose schedulers learn of the engine's sockets from it."""
        for sock in self.sockets.values():
            with contextlib.suppress(zmq.ZMQError):
                self.session.send(sock, "engine_hello", {"uuid": self._uuid})

    # -- from any thread -------------------------------------------------------------------

    @property
    def wanted(self) -> bool:
        """True while another thread waits to borrow the sockets."""
        return self._wanted

    def step_aside(self, timeout: float) -> None:
        """Wait (lock not held) until a borrowing thread is done, at most ``timeout`` seconds."""
        self._returned.wait(timeout)

    def wake(self) -> None:
        """Make a :meth:`wait` in progress return now (from any thread but a signal handler)."""
        with self._wake_lock:
            if self._closed:
                return
            with contextlib.suppress(zmq.ZMQError):  # full of wake-ups already: it will wake
                self._wake_tx.send(b"", zmq.NOBLOCK)

    @contextmanager
    def borrow(self, timeout: float = 10.0) -> Iterator[bool]:
        """Hold the sockets for a moment from another thread; yields False if that timed out."""
        self._returned.clear()
        self._wanted = True
        self.wake()
        got = self.lock.acquire(timeout=timeout)
        try:
            yield got
        finally:
            if got:
                self.lock.release()
            self._wanted = False
            self._returned.set()

    def close(self) -> None:
        """Close every socket (call with the lock held, or when no thread uses them)."""
        with self._wake_lock:
            if self._closed:
                return
            if self._records:
                self.flush_records()
            self._closed = True
            for sock in self.sockets.values():
                sock.close(linger=_CLOSE_LINGER_MS)
            if self._direct is not None:
                self._direct.close()
                self._direct_sock = None
            self._wake_tx.close(linger=0)
            self._wake_rx.close(linger=0)
