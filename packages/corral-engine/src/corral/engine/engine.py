"""The :class:`Engine`: register with a controller, then serve requests in a namespace.

An engine is a handful of threads around one namespace:

- the **execution thread** receives requests and runs them one at a time, and sends their
  replies (:mod:`corral.engine.executor`, :mod:`corral.engine.shell`): the thread that calls
  :meth:`Engine.run`, or a thread of its own after :meth:`Engine.start`;
- the **IO thread** handles control requests and watches the controller's heartbeats
  (:mod:`corral.engine.dispatcher`);
- the **IOPub thread** publishes output (:mod:`corral.engine.iopub`);
- the **heart** echoes heartbeat pings in C (:mod:`corral.engine.heart`).

The same class is the engine process (``python -m corral.engine``) and the embeddable engine.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
import uuid as _uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast

import zmq

from corral.engine.control import Control
from corral.engine.direct import DirectSocket
from corral.engine.dispatcher import Dispatcher
from corral.engine.errors import RegistrationError
from corral.engine.executor import Executor
from corral.engine.heart import Heart
from corral.engine.inbox import Inbox
from corral.engine.iopub import IOPub
from corral.engine.namespace import new_namespace
from corral.engine.registration import Registration, register
from corral.engine.shell import Shell
from corral.engine.signals import SignalHandlers, UserCodeGuard
from corral.wire import ConnectionInfo, Session, channel_url, read_connection_file
from corral.wire.connection import buffer_frame_size, validate_connection_info
from corral.wire.errors import TimeoutError as CorralTimeoutError
from corral.wire.protocol import direct_enabled

__all__ = ["Engine"]

log = logging.getLogger(__name__)

_HEX: Final = frozenset("0123456789abcdef")


def _check_uuid(value: str) -> str:
    if not (isinstance(value, str) and len(value) == 32 and set(value) <= _HEX):
        raise ValueError(f"an engine uuid is 32 lowercase hex digits, not {value!r}")
    return value


class Engine:
    """A corral engine: registers with a controller and runs the requests sent to it.

    Parameters
    ----------
    connection
        A connection file path, or its contents as a mapping.
    namespace
        The dict requests run in (pushed values, executed code, globals of interactive
        functions). Default: a fresh namespace whose ``__name__`` is ``"__main__"`` (not
        installed as ``sys.modules["__main__"]``; the engine process does that itself).
    requested_id
        The engine id to ask the hub for (honoured when free), or None for the next one.
    context
        The ZeroMQ context for the engine's sockets. Default: a context of its own, terminated
        by :meth:`stop`. The heart always uses a context of its own.
    uuid
        The engine uuid (32 lowercase hex digits); a random one by default.
    registration_timeout
        Seconds to wait for the hub's registration reply.
    controller_timeout
        Seconds without a heartbeat ping from the controller after which the engine decides
        the controller is gone and stops.
    handle_signals
        Install SIGINT/SIGTERM handlers while serving, so that SIGINT (and ``signal_request``)
        interrupts running user code with ``KeyboardInterrupt`` and SIGTERM stops the engine.
        Only possible when :meth:`run` is called in the main thread; None (default) means "when
        run in the main thread". An engine that does not handle signals refuses
        ``signal_request``, since the signal would reach the host application instead.
    capture_output
        Capture what requests write to ``sys.stdout``/``sys.stderr`` (only the execution
        thread's writes; the rest of the application keeps its output).
    direct
        Listen for direct requests from clients on a socket of the engine's own, so that a
        client's direct round trip skips the controller (:mod:`corral.engine.direct`). None
        (default): yes, unless the environment variable ``CORRAL_DIRECT`` is ``0``.

    Raises
    ------
    corral.wire.ConnectionFileError
        If the connection file or mapping is missing, unreadable, unsafe or invalid.
    ValueError
        If ``uuid`` is malformed, a timeout is not positive, or ``CORRAL_DIRECT`` is neither
        0 nor 1.
    TypeError
        If ``namespace`` is not a dict.

    Examples
    --------
    >>> engine = Engine("~/.corral/security/corral-default.json", namespace={"app": app})  # doctest: +SKIP
    >>> engine.start()          # registered and serving in a background thread  # doctest: +SKIP
    >>> engine.id               # doctest: +SKIP
    0
    >>> engine.stop()           # doctest: +SKIP
    """

    def __init__(
        self,
        connection: str | os.PathLike[str] | Mapping[str, Any],
        *,
        namespace: dict[str, Any] | None = None,
        requested_id: int | None = None,
        context: zmq.Context[Any] | None = None,
        uuid: str | None = None,
        registration_timeout: float = 30.0,
        controller_timeout: float = 30.0,
        handle_signals: bool | None = None,
        capture_output: bool = True,
        direct: bool | None = None,
    ) -> None:
        if isinstance(connection, Mapping):
            self._info: ConnectionInfo = validate_connection_info(dict(connection))
            self._source = "the given connection info"
        else:
            path = Path(os.fspath(connection)).expanduser()
            self._info = read_connection_file(path)
            self._source = str(path)
        # as given: each registration reply may name another broadcast port than the file's
        self._file_info = self._info
        if namespace is None:
            namespace = new_namespace()
        elif not isinstance(namespace, dict):
            raise TypeError(f"namespace must be a dict (code runs with it as globals), not {type(namespace).__name__}")
        if registration_timeout <= 0 or controller_timeout <= 0:
            raise ValueError("registration_timeout and controller_timeout must be positive")
        if requested_id is not None and (not isinstance(requested_id, int) or requested_id < 0):
            raise ValueError(f"requested_id must be a non-negative int or None, not {requested_id!r}")
        self._uuid = _check_uuid(uuid) if uuid is not None else _uuid.uuid4().hex
        self._namespace = namespace
        self._requested_id = requested_id
        self._own_context = context is None
        self._given_context = context
        self._context: zmq.Context[Any] | None = None  # made when the engine starts
        self.registration_timeout = float(registration_timeout)
        self.controller_timeout = float(controller_timeout)
        self._handle_signals = handle_signals
        self._capture_output = capture_output
        self._direct = direct_enabled() if direct is None else bool(direct)
        self._direct_url: str | None = None
        self._session = Session(
            self._info["key"], scheme=self._info["signature_scheme"], buffer_frame_size=buffer_frame_size(self._info)
        )
        # large reply buffers go back to clients on this host through shared memory, in kept
        # segments: the hub's record of the result owns them, for other clients to fetch too
        if self._session.enable_shm() and self._session.shm is not None:
            self._session.shm.keep_replies = True
        self._inbox = Inbox()
        self._guard = UserCodeGuard()
        self._id: int | None = None
        self._state = "new"  # new -> starting -> serving -> stopped
        self._state_lock = threading.Lock()
        self._stop_requested = False
        self._stop_reason: str | None = None
        self._signals_active = False
        self._signal_lock = threading.Lock()
        self._registered = threading.Event()
        self._rejoining = threading.Event()
        self._finished = threading.Event()
        self._teardown_lock = threading.Lock()
        self._torn_down = False
        self._exec_thread: threading.Thread | None = None
        self._iopub: IOPub | None = None
        self._dispatcher: Dispatcher | None = None
        self._heart: Heart | None = None
        self._shell: Shell | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def id(self) -> int | None:
        """The engine's id in the cluster, or None before registration."""
        return self._id

    @property
    def uuid(self) -> str:
        """The engine's uuid (32 hex digits): its identity on every channel."""
        return self._uuid

    @property
    def namespace(self) -> dict[str, Any]:
        """The namespace requests run in."""
        return self._namespace

    @property
    def stop_reason(self) -> str | None:
        """Why the engine stopped (or is stopping), or None while it serves."""
        return self._stop_reason

    @property
    def connection_info(self) -> ConnectionInfo:
        """The connection info the engine uses."""
        return self._info

    # -- serving ---------------------------------------------------------------------------

    def run(self) -> None:
        """Register, then serve requests in the calling thread until the engine stops.

        It stops on :meth:`stop`, a ``shutdown_request``, SIGTERM (when handling signals), or
        when the controller has been silent for ``controller_timeout`` seconds; it then
        returns normally, with the reason in :attr:`stop_reason`.

        Raises
        ------
        RegistrationError
            If the hub refuses the engine or cannot be reached (``RegistrationTimeout``).
        RuntimeError
            If the engine was started before, or ``handle_signals=True`` outside the main thread.
        """
        signals = self._decide_signals()
        self._begin()
        handlers = SignalHandlers(self._guard, self._stop_from_signal) if signals else None
        try:
            if handlers is not None:
                handlers.install()
                self._signals_active = True
            self._setup()
            self._serve()
        finally:
            if handlers is not None:
                with self._signal_lock:  # no interrupt may be sent once our handler is gone
                    self._signals_active = False
                    handlers.restore()
            self._teardown()

    def start(self) -> None:
        """Register, then serve requests in a background thread; return once registered.

        Raises
        ------
        RegistrationError
            If the hub refuses the engine or cannot be reached (``RegistrationTimeout``); the
            engine is then stopped and its sockets closed.
        RuntimeError
            If the engine was started before, or ``handle_signals=True`` was given (a
            background thread cannot receive signals).
        """
        if self._handle_signals:
            raise RuntimeError("handle_signals=True needs run() in the main thread; start() serves in a thread")
        self._begin()
        try:
            self._setup()
        except BaseException:
            self._teardown()
            raise
        self._exec_thread = threading.Thread(target=self._serve_thread, name="corral-engine-exec", daemon=True)
        self._exec_thread.start()

    async def run_async(self) -> None:
        """Serve while the running asyncio loop goes on; return when the engine stops.

        The engine runs in a thread of its own (the loop is never blocked); awaiting this
        coroutine waits for it to stop. Cancelling the coroutine stops the engine.

        Raises
        ------
        RegistrationError
            If the hub refuses the engine or cannot be reached.
        RuntimeError
            If the engine was started before, or ``handle_signals=True`` was given.
        """
        if self._handle_signals:
            raise RuntimeError("handle_signals=True needs run() in the main thread; run_async() serves in a thread")
        import asyncio  # only embedded engines need it; the engine program starts faster without

        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        # an outcome nobody awaits any more (after cancellation) must not be reported as lost
        done.add_done_callback(lambda f: None if f.cancelled() else f.exception())

        def settle(exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        def target() -> None:
            outcome: BaseException | None = None
            try:
                self.run()
            except BaseException as exc:
                outcome = exc
            try:
                loop.call_soon_threadsafe(settle, outcome)
            except RuntimeError:  # the loop was closed meanwhile
                log.debug("engine stopped after its asyncio loop closed")

        thread = threading.Thread(target=target, name="corral-engine-exec", daemon=True)
        thread.start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.to_thread(self._stop_quietly)
            raise

    def wait_registered(self, timeout: float | None = None) -> bool:
        """Wait until the engine has registered.

        Returns
        -------
        bool
            True once registered; False on timeout, or if the engine stopped without
            registering (then :meth:`run`, :meth:`start` or :meth:`run_async` raised why).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._registered.is_set():
            if self._finished.is_set():
                return False
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return False
            self._registered.wait(left)
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the engine has stopped (by :meth:`stop`, a shutdown request, ...).

        Returns
        -------
        bool
            True if it has stopped, False if ``timeout`` ran out first.
        """
        return self._finished.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: close every socket, end every thread, and return.

        The request running at that moment (if any) is interrupted when the engine handles
        signals; otherwise the engine waits up to ``timeout`` seconds for it to return.
        Requests still queued are answered with an ``EngineError``. Safe to call from any
        thread, more than once, and from a request running on this engine (which then stops
        when that request returns).

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the running request did not return within ``timeout`` seconds; the sockets and
            helper threads are closed anyway, and the execution thread ends when the call
            returns.
        """
        self._request_stop("stop() called")
        with self._state_lock:
            if self._state == "new":
                self._state = "stopped"
                self._teardown()
                return
        if threading.current_thread() is self._serving_thread:
            return  # a request stopping its own engine: the loop ends after it
        if self._finished.wait(timeout):
            if self._exec_thread is not None:
                self._exec_thread.join(timeout)
            return
        self._teardown()
        raise CorralTimeoutError(
            f"engine {self._id} did not finish its running request within {timeout:g} s; its sockets "
            "are closed, and its execution thread ends when that request returns"
        )

    # -- internals -------------------------------------------------------------------------

    _serving_thread: threading.Thread | None = None

    def _decide_signals(self) -> bool:
        in_main = threading.current_thread() is threading.main_thread()
        if self._handle_signals and not in_main:
            raise RuntimeError("handle_signals=True needs run() to be called in the main thread")
        return in_main if self._handle_signals is None else self._handle_signals

    def _begin(self) -> None:
        with self._state_lock:
            if self._state != "new":
                raise RuntimeError(f"this engine was already started (it is {self._state}); make a new Engine")
            self._state = "starting"
            self._context = zmq.Context() if self._given_context is None else self._given_context

    def _setup(self) -> None:
        """Register, then start the IOPub thread, the IO thread and the heart."""
        context = self._context
        assert context is not None
        url = channel_url(self._info, "registration")
        log.info("registering with the controller at %s (connection %s)", url, self._source)
        direct = DirectSocket(self._info, self._session.key, self._uuid) if self._direct else None
        try:
            self._direct_url = direct.url if direct is not None else None
            reg = register(
                self._session,
                context,
                url,
                uuid=self._uuid,
                requested_id=self._requested_id,
                timeout=self.registration_timeout,
                cancelled=lambda: self._stop_requested,
                curve_server_key=self._info.get("curve_public_key"),
                direct_url=self._direct_url,
            )
        except BaseException:
            if direct is not None:
                direct.close()
            raise
        self._id = reg.id
        self._info = _with_broadcast_leaf(self._file_info, reg)
        engine_info = {"engine_id": reg.id, "engine_uuid": self._uuid}
        self._iopub = IOPub(
            self._session,
            channel_url(self._info, "iopub_engine"),
            context,
            engine_info,
            curve_server_key=self._info.get("curve_public_key"),
        )
        self._iopub.start()
        try:
            self._shell = Shell(self._session, context, self._info, self._uuid, direct=direct)
        except BaseException:
            if direct is not None:
                direct.close()
            raise
        self._iopub.on_tick = functools.partial(self._shell.tick, self._inbox)
        control = Control(
            inbox=self._inbox,
            shell=self._shell,
            namespace=self._namespace,
            request_stop=self._request_stop,
            signals_allowed=self._signals_active,
            engine_info=engine_info,
        )
        self._dispatcher = Dispatcher(
            session=self._session,
            context=context,
            info=self._info,
            uuid=self._uuid,
            control=control,
            controller_timeout=self.controller_timeout,
            on_controller_lost=self._request_stop,
            on_controller_restarted=self._on_controller_restarted,
        )
        self._dispatcher.start()
        self._heart = Heart(
            channel_url(self._info, "heartbeat_ping"),
            channel_url(self._info, "heartbeat_pong"),
            self._uuid.encode("ascii"),
            self._session.key,
            curve_server_key=self._info.get("curve_public_key"),
        )
        self._heart.start()
        with self._state_lock:
            self._state = "serving"
        self._registered.set()
        log.info("engine %d (uuid %s) registered and serving", reg.id, self._uuid)

    def _on_controller_restarted(self) -> None:
        """The controller came back at the same address: register again, under the same id."""
        if self._rejoining.is_set() or self._stop_requested:
            return
        self._rejoining.set()
        threading.Thread(target=self._rejoin, name="corral-engine-rejoin", daemon=True).start()

    def _rejoin(self) -> None:
        try:
            context = self._context
            assert context is not None
            try:
                reg = register(
                    self._session,
                    context,
                    channel_url(self._info, "registration"),
                    uuid=self._uuid,
                    requested_id=self._id,
                    timeout=self.registration_timeout,
                    cancelled=lambda: self._stop_requested,
                    curve_server_key=self._info.get("curve_public_key"),
                    direct_url=self._direct_url,
                )
            except RegistrationError as err:
                self._request_stop(f"the restarted controller refused this engine: {err}")
                return
            if reg.id != self._id:  # pragma: no cover - the hub grants a requested id or refuses
                self._request_stop(f"the restarted controller gave this engine id {reg.id}, not {self._id}")
                return
            # the new controller's schedulers learn of the request sockets from their hellos
            info = _with_broadcast_leaf(self._file_info, reg)
            moved = info["ports"].get("broadcast_engine") != self._info["ports"].get("broadcast_engine")
            self._info = info
            if self._shell is not None:
                with self._shell.borrow() as got:
                    if got:
                        if moved:  # the new controller's broadcast leaf for this engine is elsewhere
                            self._shell.reconnect("broadcast", channel_url(info, "broadcast_engine"))
                        self._shell.say_hello()
            if self._dispatcher is not None:
                self._dispatcher.say_hello()
            log.info("engine %d registered again with the restarted controller", reg.id)
        finally:
            self._rejoining.clear()

    def _serve(self) -> None:
        assert self._iopub is not None
        assert self._shell is not None
        assert self._id is not None
        self._serving_thread = threading.current_thread()
        executor = Executor(
            session=self._session,
            namespace=self._namespace,
            inbox=self._inbox,
            iopub=self._iopub,
            shell=self._shell,
            engine_id=self._id,
            engine_uuid=self._uuid,
            guard=self._guard,
            capture_output=self._capture_output,
        )
        executor.serve(lambda: self._stop_requested)
        with self._shell.lock:
            self._shell.drain(self._inbox)
        refused = executor.refuse_queued(self._stop_reason or "stopping")
        if refused:
            log.info("answered %d queued request(s) with EngineError", refused)
        with self._shell.lock:
            self._shell.close()

    def _serve_thread(self) -> None:
        try:
            self._serve()
        except Exception:
            log.exception("engine %s failed", self._id)
            self._request_stop("internal error (see the log)")
        finally:
            self._teardown()

    def _request_stop(self, reason: str) -> None:
        """Stop the engine (from any thread but a signal handler)."""
        self._stop_from_signal(reason)
        if self._shell is not None:
            self._shell.wake()
        if threading.current_thread() is threading.main_thread():
            return
        with self._signal_lock:
            if self._signals_active and self._guard.running:
                # the running request is user code in the main thread, where our SIGTERM handler
                # is installed (the lock keeps it so until the signal is delivered): interrupt it
                os.kill(os.getpid(), signal.SIGTERM)

    def _stop_from_signal(self, reason: str) -> None:
        # runs inside signal handlers: set flags only, take no lock (the loop polls them)
        if self._stop_reason is None:
            self._stop_reason = reason
            log.info("engine %s stopping: %s", self._id, reason)
        self._stop_requested = True

    def _stop_quietly(self) -> None:
        try:
            self.stop()
        except CorralTimeoutError as err:
            log.warning("%s", err)

    def _teardown(self) -> None:
        """Close every socket and end every helper thread; idempotent."""
        with self._teardown_lock:
            if self._torn_down:
                return
            self._torn_down = True
            self._stop_requested = True
            clean = True
            if self._shell is not None:
                # the execution thread holds this lock only briefly (or is stuck in user code,
                # which does not hold it)
                if self._shell.lock.acquire(timeout=5.0):
                    try:
                        self._shell.close()
                    finally:
                        self._shell.lock.release()
                else:
                    clean = False
                    log.warning("could not close the request sockets: the execution thread holds them")
            if self._dispatcher is not None:
                self._dispatcher.stop()
                clean = clean and not self._dispatcher.alive
            if self._iopub is not None:
                self._iopub.stop()
            if self._heart is not None:
                self._heart.stop()
            if self._own_context and self._context is not None:
                if clean:
                    self._context.term()
                else:
                    log.warning("not terminating the ZeroMQ context: a socket thread is still running")
            with self._state_lock:
                self._state = "stopped"
            self._finished.set()
            log.info("engine %s stopped: %s", self._id, self._stop_reason or "stopped")


def _with_broadcast_leaf(info: ConnectionInfo, reg: Registration) -> ConnectionInfo:
    """Return ``info`` with the broadcast port the registration reply names, if it names one.

    Without one (a controller with no broadcast tree) ``info`` itself is returned, so an engine
    that re-registers with such a controller goes back to the connection file's port.

    A controller with a broadcast tree (docs/decisions.md, "The broadcast tree") tells each
    engine the port of the leaf that serves it, on the controller's address; the connection
    file keeps the root's port, which clients and older engines use.
    """
    port = reg.content.get("broadcast_engine_port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return info
    new = cast(ConnectionInfo, dict(info))
    new["ports"] = {**info["ports"], "broadcast_engine": port}
    return new
