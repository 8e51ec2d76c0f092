"""The client's IO thread: it receives everything, and sends with the user threads.

ZeroMQ sockets are not thread-safe: every use of a socket that carries requests happens under
that socket's lock. User threads build, sign *and send* their messages themselves, under the
lock, so a request leaves without waking another thread (a hand-off through the IO thread cost
about as much CPU as the rest of a round trip). The IO thread waits on the sockets' file
descriptors (``zmq.FD``), which it may watch without the lock, and receives under the lock
when one signals. Replies are checked, unpickled and stored there, and each waiting result is
woken through its own condition variable (the ``concurrent.futures.Future`` it is): no
polling, no sleeps.

Direct requests go straight to engines that announced a socket of their own (``direct`` in
their registration), on the client's ``direct`` ROUTER, and their replies come back on it;
requests to other engines, and to an engine while requests relayed to it earlier are still
unanswered (so that an engine still runs one client's requests in the order they were sent),
go through the controller's ``mux`` relay.

A user thread that waits for results sent on the direct path receives that socket's replies
itself (:meth:`IOThread.receive_direct`) instead of being woken by the IO thread: one thread
hand-off less per round trip. While such waiters come and go, the IO thread does not watch the
direct socket; it takes it back once nobody has waited on it for ``DIRECT_RECLAIM`` seconds, and
handles what arrived meanwhile (a sender that finds a reply waiting hands it over at once).

``zmq.FD`` signals edges, not levels: any use of a socket may consume the signal of a message
that arrived meanwhile. So whoever used a socket checks ``zmq.EVENTS`` afterwards, and a sender
that finds a message waiting asks the IO thread to drain it.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from corral.client._connection import CHANNEL_KINDS, connect_socket, direct_socket
from corral.client._engines import EngineTable
from corral.client._store import Request, ResultStore
from corral.wire.connection import ConnectionInfo, channel_url
from corral.wire.errors import ControllerLost, CorralError, EngineError, MessageRejected
from corral.wire.frames import recv_frames, send_frames
from corral.wire.gate import curve_client_keys
from corral.wire.loop import Reactor
from corral.wire.message import Message
from corral.wire.protocol import valid_direct_url
from corral.wire.session import Session

__all__ = ["LOST_GRACE", "STRANDED_GRACE", "IOThread"]

log = logging.getLogger(__name__)

#: Seconds the connection to the controller may stay down before the client counts it lost.
LOST_GRACE: Final = 1.0

#: Seconds after an engine leaves before its unanswered requests fail here with EngineError.
#: The controller is expected to fail them first; this only stops a result from hanging
#: forever if that reply never comes.
STRANDED_GRACE: Final = 1.0

_REPLY_CHANNELS: Final = ("mux", "control", "task", "broadcast")
#: Channels user threads send on, each watched through its file descriptor.
_SHARED_CHANNELS: Final = ("registration", *_REPLY_CHANNELS)
_POLLIN: Final = int(zmq.POLLIN)
_NOBLOCK: Final = int(zmq.NOBLOCK)
#: Messages taken in under a socket's lock at a time.
_RECV_BATCH: Final = 64
#: Seconds without a waiting user thread after which the IO thread watches the direct socket again.
DIRECT_RECLAIM: Final = 0.05
#: Longest a waiting thread sleeps between checks of its result (a reply that comes another way,
#: e.g. an EngineError from the controller, completes it meanwhile).
_DIRECT_SLICE: Final = 0.02


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) in the main thread until the block is done, then deliver it.

    A user thread taking replies in must not be interrupted between receiving a message and
    completing its result: the message would be gone from the socket and its result would wait
    forever. Other threads never get KeyboardInterrupt, and a SIGINT handler that is not a
    Python callable (ignored, default) is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):
        yield
        return
    caught: list[tuple[int, Any]] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            previous(*caught[0])  # as if it arrived now: the default handler raises KeyboardInterrupt


class _Shared:
    """A socket that user threads send on and the IO thread receives on, and its lock."""

    __slots__ = ("channel", "fd", "handler", "lock", "socket")

    def __init__(self, channel: str, socket: zmq.Socket[Any], handler: Callable[[list[Message]], None]) -> None:
        self.channel = channel
        self.socket = socket
        self.handler = handler
        self.lock = threading.Lock()
        self.fd = int(socket.getsockopt(zmq.FD))

    def fileno(self) -> int:
        return self.fd

    def readable(self) -> bool:
        """Whether a message waits (lock held)."""
        return bool(int(self.socket.getsockopt(zmq.EVENTS)) & _POLLIN)

    def send(self, frames: Sequence[Sequence[Any]], grace: float) -> None:
        """Send ``frames`` without blocking (lock held); without a connection yet, wait for one.

        A DEALER queues nothing before its connection is complete (``ZMQ_IMMEDIATE``), so a
        request sent right after connecting would be refused; it waits up to ``grace`` seconds
        for the connection instead.

        Raises
        ------
        zmq.Again
            If there is still no connection after ``grace`` seconds.
        """
        sock = self.socket
        for parts in frames:
            try:
                send_frames(sock, parts, _NOBLOCK)
            except zmq.Again:
                if not sock.poll(int(grace * 1000), zmq.POLLOUT):
                    raise
                send_frames(sock, parts, _NOBLOCK)


class IOThread:
    """Own the client's sockets in one thread; send, receive, route replies and notifications.

    Parameters
    ----------
    context
        ZeroMQ context for the sockets.
    info
        The connection info naming the controller's ports.
    session
        The client's Session (signs what is sent, checks what is received).
    store
        Where replies and output go.
    engines
        The engine table that notifications update.
    connect_grace
        Seconds a send waits for its socket's connection to the controller to complete.
    direct
        Send direct requests straight to engines that accept them (the direct path).

    Raises
    ------
    zmq.ZMQError, ConnectionFileError
        If a socket cannot be opened or connected; nothing is left open.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        info: ConnectionInfo,
        session: Session,
        store: ResultStore,
        engines: EngineTable,
        connect_grace: float = 5.0,
        direct: bool = True,
    ) -> None:
        self.session = session
        self.connect_grace = connect_grace
        #: called in this thread when the controller answers again after being lost
        self.on_reconnect: Callable[[], None] | None = None
        self.store = store
        self.engines = engines
        self.reactor = Reactor(context)
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        self._queries: dict[str, Future[Message]] = {}
        # the key pair derived from the cluster key: the controller's gate admits only that one
        curve = curve_client_keys(session.key) if info.get("curve_public_key") else None
        # engines answer direct requests to this name, and the hub sends this client what it has
        # to say about them (acknowledgements, EngineError) to the same name on mux
        self.identity = session.session.encode("ascii")
        #: engine uuid (bytes) -> its direct address, for engines connected to directly
        self._direct_urls: dict[bytes, str] = {}
        #: engine uuid (bytes) -> mux requests relayed to it and not answered yet
        self._relayed: dict[bytes, int] = {}
        self._gone_direct: set[bytes] = set()
        self._route_lock = threading.Lock()
        try:
            for channel in CHANNEL_KINDS:
                ident = self.identity if channel == "mux" else None
                self.sockets[channel] = connect_socket(context, info, channel, curve, session.key, ident)
            if direct:
                self.sockets["direct"] = direct_socket(context, info, curve, session.key, self.identity)
        except BaseException:
            self._close_sockets()
            self.reactor.close()
            raise
        self._closed = False
        handlers = {"registration": self._on_registration, "mux": self._on_relayed_replies}
        self._shared = {
            channel: _Shared(channel, self.sockets[channel], handlers.get(channel, self._on_replies))
            for channel in _SHARED_CHANNELS
        }
        self._direct: _Shared | None = None
        if direct:
            self._direct = self._shared["direct"] = _Shared("direct", self.sockets["direct"], self._on_replies)
        # user threads receiving the direct socket themselves (receive_direct)
        self._owner_lock = threading.Lock()
        self._waiters = 0
        self._owned = False  # waiters receive the direct socket; the IO thread leaves it alone
        self._watching = True  # the reactor watches the direct socket (IO thread only)
        self._last_wait = 0.0
        for shared in self._shared.values():
            self.reactor.add_socket(shared, self._on_signal)
        # only this thread uses the output sockets: the reactor polls them as sockets
        self.reactor.add_socket(self.sockets["iopub"], self._on_output)
        self.reactor.add_socket(self.sockets["notification"], self._on_notification)
        self._channel_of = {sock: name for name, sock in self.sockets.items()}
        # the registration connection's ups and downs: how the client notices a lost controller
        self._url = channel_url(info, "registration")
        self._down_since: float | None = None
        self._monitor = self.sockets["registration"].get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        )
        self.reactor.add_socket(self._monitor, self._on_monitor)
        self.thread = threading.Thread(target=self._run, name="corral-client-io", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def _run(self) -> None:
        try:
            # anything that arrived before the loop watched the descriptors has no edge left
            self.reactor.call_soon_threadsafe(self._drain_all)
            self.reactor.run()
        finally:
            self._close_sockets()
            self.reactor.close()
            for fut in list(self._queries.values()):
                if not fut.done():
                    fut.set_exception(RuntimeError("the client was closed"))

    def _close_sockets(self) -> None:
        monitor = getattr(self, "_monitor", None)
        if monitor is not None:
            with contextlib.suppress(zmq.ZMQError):
                self.sockets["registration"].disable_monitor()
            monitor.close(linger=0)
        shared = getattr(self, "_shared", {})
        for channel, sock in self.sockets.items():
            if channel in shared:
                with shared[channel].lock:
                    sock.close(linger=0)
            else:
                sock.close(linger=0)
        self._closed = True

    @property
    def in_io_thread(self) -> bool:
        """True when called from this IO thread (where waiting for a result would deadlock)."""
        return threading.get_ident() == self.thread.ident

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self.thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for the thread; sockets are closed in the thread itself."""
        if self.thread.ident is None:  # never started: nothing runs that could close them
            self._close_sockets()
            self.reactor.close()
            return
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and not self.in_io_thread:
            # repeated: a stop() that lands before run() has set itself running is overridden
            self.reactor.stop()
            self.thread.join(0.05)
            if time.monotonic() > deadline:
                log.warning("the client IO thread did not stop within %s s", timeout)
                return
        if self.in_io_thread:
            self.reactor.stop()

    # -- from user threads ---------------------------------------------------------------------

    def send(self, channel: str, frames: Sequence[Sequence[Any]], requests: Sequence[Request]) -> None:
        """Send signed multipart messages on ``channel`` now, in this thread, in order.

        If a send fails, ``requests`` fail with the error instead of waiting forever.
        """
        if channel == "mux" and self._direct_urls and len(frames) == len(requests):
            frames, requests = self._send_direct(frames, requests)
            if not frames:
                return
        shared = self._shared[channel]
        error: BaseException | None = self.store.lost
        with shared.lock:
            if self._closed:
                error = CorralError("the client was closed")
            elif error is not None:
                pass  # no connection to wait for: fail at once, below
            else:
                try:
                    # never block for long: a DEALER without a connection (e.g. refused by
                    # the controller's gate) would block a plain send forever
                    shared.send(frames, self.connect_grace)
                except zmq.Again:
                    error = CorralError(
                        f"cannot send on the {channel} channel: there is no connection to the controller "
                        "(it refused this client's key, or is not running)"
                    )
                    log.error("%s", error)
                except Exception as err:
                    log.error("sending on %s failed: %s", channel, err)
                    error = err
                waiting = shared.readable()
        if error is not None:
            for req in requests:
                self.store.complete(req, error=error)
        elif waiting:
            self.reactor.call_soon_threadsafe(self._on_signal, shared)

    def _send_direct(
        self, frames: Sequence[Sequence[Any]], requests: Sequence[Request]
    ) -> tuple[list[Sequence[Any]], list[Request]]:
        """Send what can go straight to engines; return the rest, for the controller's relay.

        A request goes directly when its engine is connected and no request relayed to it
        earlier waits for its reply (the engine runs one client's requests in the order they
        were sent); otherwise it is counted as relayed, and goes through the controller.
        """
        direct = self._direct
        assert direct is not None
        urls = self._direct_urls
        relayed = self._relayed
        rest: list[Sequence[Any]] = []
        rest_requests: list[Request] = []
        waiting = False
        with direct.lock, self._route_lock:
            closed = self._closed or self.store.lost is not None
            for parts, req in zip(frames, requests, strict=True):
                engine = parts[0]
                if not closed and engine in urls and not relayed.get(engine):
                    try:
                        send_frames(direct.socket, parts, _NOBLOCK)
                        req.direct = True
                        continue
                    except zmq.ZMQError:  # not connected (yet, or any more): via the controller
                        pass
                    except Exception:  # e.g. a bad frame: the relay's send reports it
                        pass
                rest.append(parts)
                rest_requests.append(req)
                if engine in urls:
                    relayed[engine] = relayed.get(engine, 0) + 1
            if not closed:
                waiting = direct.readable()
        if waiting:
            self.reactor.call_soon_threadsafe(self._on_signal, direct)
        return rest, rest_requests

    def can_receive_direct(self, requests: Sequence[Request]) -> bool:
        """Whether a user thread waiting for ``requests`` may receive their replies itself."""
        return self._direct is not None and not self.in_io_thread and all(r.direct for r in requests)

    def receive_direct(self, fut: Future[Any], until: float) -> bool:
        """Receive the direct socket's replies in this (user) thread until ``fut`` is done.

        Returns True once ``fut`` is done, False at ``until`` (a monotonic time). Replies for
        other requests are handled here too, as the IO thread would.
        """
        shared = self._direct
        if shared is None or self._closed:
            return fut.done()
        with self._owner_lock:
            self._waiters += 1
            claim = not self._owned
            self._owned = True
        if claim:  # the IO thread stops watching the socket: only one thread wakes per reply
            self.reactor.call_soon_threadsafe(self._release_direct)
        try:
            poller = select.poll()
            poller.register(shared.fd, select.POLLIN)
            while True:
                with _sigint_deferred():  # a reply taken in is handled, not lost to a Ctrl-C
                    self._on_signal(shared)  # also re-arms the descriptor's edge
                if fut.done():
                    return True
                if self._closed:
                    return False
                left = until - time.monotonic()
                if left <= 0:
                    return False
                poller.poll(max(1, int(min(left, _DIRECT_SLICE) * 1000)))
        finally:
            with self._owner_lock:
                self._waiters -= 1
                self._last_wait = time.monotonic()

    def _release_direct(self) -> None:
        # IO thread: a user thread receives the direct socket now
        if self._owned and self._watching and self._direct is not None:
            self.reactor.remove_socket(self._direct)
            self._watching = False
            self.reactor.call_later(DIRECT_RECLAIM, self._reclaim_direct)

    def _reclaim_direct(self) -> None:
        # IO thread: watch the direct socket again once no user thread has waited for a while
        with self._owner_lock:
            busy = self._waiters > 0 or time.monotonic() - self._last_wait < DIRECT_RECLAIM
            if not busy:
                self._owned = False
        if busy:
            self.reactor.call_later(DIRECT_RECLAIM, self._reclaim_direct)
            return
        direct = self._direct
        if direct is not None and not self._watching and not self._closed:
            self.reactor.add_socket(direct, self._on_signal)
            self._watching = True
            self._on_signal(direct)  # what arrived while only waiters watched it

    def add_direct_routes(self, routes: Mapping[str, Any]) -> None:
        """Connect to engines' direct sockets (``{uuid: url}``); any thread."""
        direct = self._direct
        if direct is None:
            return
        with direct.lock:
            if self._closed:
                return
            for uuid, url in routes.items():
                ident = str(uuid).encode("ascii", "replace")
                checked = valid_direct_url(url)
                if checked is None or self._direct_urls.get(ident) == checked or ident in self._gone_direct:
                    continue
                old = self._direct_urls.get(ident)
                if old is not None:
                    with contextlib.suppress(zmq.ZMQError):
                        direct.socket.disconnect(old)
                try:
                    direct.socket.connect(checked)
                except zmq.ZMQError as err:
                    log.warning(
                        "cannot connect to engine %s at %s (%s); its requests go through the controller",
                        uuid,
                        checked,
                        err,
                    )
                    continue
                with self._route_lock:
                    self._direct_urls[ident] = checked

    def remove_direct_route(self, uuid: str) -> None:
        """Stop sending directly to an engine that left (IO thread)."""
        direct = self._direct
        if direct is None:
            return
        ident = uuid.encode("ascii", "replace")
        with direct.lock:
            self._gone_direct.add(ident)
            with self._route_lock:
                url = self._direct_urls.pop(ident, None)
                self._relayed.pop(ident, None)
            if url is not None and not self._closed:
                with contextlib.suppress(zmq.ZMQError):
                    direct.socket.disconnect(url)

    def query(self, msg_type: str, content: dict[str, Any]) -> tuple[str, Future[Message]]:
        """Send a request to the hub (``registration`` channel); the future gets its reply.

        Returns the request's msg_id (for :meth:`forget`) and the future.
        """
        msg = self.session.msg(msg_type, content)
        frames = self.session.serialize(msg)
        fut: Future[Message] = Future()
        self._queries[msg.msg_id] = fut
        shared = self._shared["registration"]
        error: BaseException | None = self.store.lost
        with shared.lock:
            if self._closed:
                error = RuntimeError("the client was closed")
            elif error is not None:
                pass  # no connection to wait for: fail at once, below
            else:
                try:
                    shared.send([frames], self.connect_grace)
                except zmq.Again:
                    error = CorralError(
                        "cannot reach the controller's registration channel: no connection "
                        "(it refused this client's key, or is not running)"
                    )
                except Exception as err:
                    error = err
                waiting = shared.readable()
        if error is not None:
            self._queries.pop(msg.msg_id, None)
            fut.set_exception(error)
        elif waiting:
            self.reactor.call_soon_threadsafe(self._on_signal, shared)
        return msg.msg_id, fut

    def forget(self, msg_id: str) -> None:
        """Stop waiting for the reply to a query (it timed out); a late reply is dropped."""
        self._queries.pop(msg_id, None)

    def flush(self, timeout: float | None) -> bool:
        """Handle everything already received; False if the IO thread did not answer in time."""
        if self.in_io_thread:
            self._drain_all()
            return True
        done = threading.Event()
        self.reactor.call_soon_threadsafe(self._flush, done)
        return done.wait(timeout)

    # -- in the IO thread ----------------------------------------------------------------------

    def _flush(self, done: threading.Event) -> None:
        try:
            self._drain_all()
        finally:
            done.set()

    def _drain_all(self) -> None:
        for shared in self._shared.values():
            self._on_signal(shared)
        self._on_output(self.sockets["iopub"])
        self._on_notification(self.sockets["notification"])

    def _on_signal(self, shared: _Shared) -> None:
        # a descriptor signalled (or a sender found a message waiting): take in the frames of
        # what has arrived under the lock, a bounded batch at a time so that senders are not
        # kept waiting, and check, unpack and handle them with the lock released
        sock = shared.socket
        session = self.session
        channel = shared.channel
        while True:
            with shared.lock:
                if self._closed:
                    return
                batch: list[list[Any]] = []
                # asking ZeroMQ whether a message waits also re-arms the descriptor's edge
                while len(batch) < _RECV_BATCH and int(sock.getsockopt(zmq.EVENTS)) & _POLLIN:
                    try:
                        batch.append(recv_frames(sock, _NOBLOCK))
                    except zmq.Again:
                        break
            if not batch:
                return
            msgs = []
            for frames in batch:
                try:
                    idents, rest = session.feed_identities(frames)
                except MessageRejected as err:
                    session.reject(channel, err)
                    continue
                try:
                    msgs.append(session.deserialize(rest, stream=sock, channel=channel, idents=idents))
                except MessageRejected:
                    continue  # counted and logged by the Session
            shared.handler(msgs)
            if len(batch) < _RECV_BATCH:
                return

    def _recv_all(self, sock: zmq.Socket[Any]) -> list[Message]:
        channel = self._channel_of[sock]
        session = self.session
        out = []
        # ask ZeroMQ whether a message waits: this also re-arms the descriptor's edge
        while int(sock.getsockopt(zmq.EVENTS)) & _POLLIN:
            try:
                out.append(session.recv(sock, _NOBLOCK, channel=channel))
            except zmq.Again:
                break
            except MessageRejected:
                continue  # counted and logged by the Session
        return out

    def _on_relayed_replies(self, msgs: list[Message]) -> None:
        relayed = self._relayed
        if relayed:
            with self._route_lock:
                for msg in msgs:
                    if msg.idents and msg.msg_type != "submission_ack":
                        engine = msg.idents[0]
                        n = relayed.get(engine)
                        if n:
                            relayed[engine] = n - 1
        self._on_replies(msgs)

    def _on_replies(self, msgs: list[Message]) -> None:
        for msg in msgs:
            if msg.msg_type == "submission_ack":
                self.store.handle_ack(msg)
            else:
                self.store.handle_reply(msg)

    def _on_output(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv_all(sock):
            self.store.handle_output(msg)

    def _on_registration(self, msgs: list[Message]) -> None:
        for msg in msgs:
            fut = self._queries.pop(str(msg.parent_header.get("msg_id")), None)
            if fut is None:
                log.debug("unexpected %s on the registration channel", msg.msg_type)
            elif not fut.done():
                fut.set_result(msg)

    def _on_monitor(self, monitor: zmq.Socket[Any]) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    self.reactor.call_later(LOST_GRACE, self._check_lost)
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._down_since = None
                if self.store.lost is not None:
                    log.warning("the controller at %s answers again", self._url)
                    self.store.set_lost(None)
                    if self.on_reconnect is not None:
                        self.on_reconnect()

    def _check_lost(self) -> None:
        down = self._down_since
        if down is None or self.store.lost is not None:
            return
        err = ControllerLost(
            f"lost the connection to the controller at {self._url} {time.monotonic() - down:.1f} s ago "
            "(it stopped, crashed or became unreachable); results still pending cannot arrive until "
            "it is back (`corral list` shows whether the cluster runs)"
        )
        log.error("%s", err)
        self.store.set_lost(err)

    def _on_notification(self, sock: zmq.Socket[Any]) -> None:
        for msg in self._recv_all(sock):
            content = msg.content
            try:
                eid = int(content["id"])
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring a %s notification without an engine id", msg.msg_type)
                continue
            if msg.msg_type == "engine_registered":
                uuid = content.get("uuid")
                if not isinstance(uuid, str) or not uuid:
                    log.warning("ignoring engine_registered for engine %d without a uuid", eid)
                    continue
                self.engines.register(eid, uuid)
                self.session.add_shm_route(uuid.encode("ascii", "replace"), content.get("shm"))
                if content.get("direct"):
                    self.add_direct_routes({uuid: content["direct"]})
            elif msg.msg_type == "engine_unregistered":
                sent_uuid = content.get("uuid") if isinstance(content.get("uuid"), str) else None
                uuid = self.engines.unregister(eid, sent_uuid) or str(sent_uuid or "")
                reason = str(content.get("reason") or "unregistered")
                if uuid:
                    self.remove_direct_route(uuid)
                self.reactor.call_later(STRANDED_GRACE, self._fail_stranded, eid, uuid, reason)

    def _fail_stranded(self, eid: int, uuid: str, reason: str) -> None:
        def error(req: Request) -> EngineError:
            return EngineError(
                "EngineError",
                f"engine {eid} left the cluster ({reason}) before answering {req.msg_type} {req.msg_id}",
                "",
                {"engine_id": eid, "engine_uuid": uuid},
            )

        n = self.store.fail_pending(lambda r: r.engine_uuid == uuid, error)
        if n:
            log.warning("%d request(s) to engine %d failed: it left (%s) and no reply came", n, eid, reason)
