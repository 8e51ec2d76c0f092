"""The execution loop: take requests one at a time, in arrival order, run them, answer them.

It runs in the engine's execution thread, which is the main thread of an engine process (so that
SIGINT can interrupt user code) or a thread of the embedding application. It receives requests
and sends replies on the request sockets itself (:mod:`corral.engine.shell`), with no hand-off
to another thread on the hot path; output goes to the IOPub thread. For every request it publishes ``status: busy``, streams what the request
writes, publishes ``execute_result`` or ``error``, makes sure all of that has reached ZeroMQ
before the reply does, and ends with ``status: idle``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Final

import zmq

from corral.engine import capture, display
from corral.engine.capture import RequestOutput
from corral.engine.handlers import HANDLERS, Outcome
from corral.engine.inbox import Inbox, Pending
from corral.engine.iopub import IOPub
from corral.engine.shell import Shell
from corral.engine.signals import UserCodeGuard
from corral.wire import Message, Session, wrap_exception
from corral.wire.errors import EngineError, EngineInfo, TaskAborted, WrappedException

__all__ = ["Executor", "utcnow"]

log = logging.getLogger(__name__)

_ENGINE_DIR: Final = os.path.dirname(os.path.abspath(__file__))
# seconds to wait for output to reach ZeroMQ before a reply, and for a big reply to leave
_FLUSH_TIMEOUT: Final = 10.0
_IN_FLIGHT_TIMEOUT: Final = 60.0


def utcnow() -> str:
    """Return the current time as ISO 8601 UTC, as reply metadata carries it."""
    return datetime.now(timezone.utc).isoformat()


def _in_engine(tb: TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(_ENGINE_DIR)


def _user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """Drop the engine's own frames from both ends of a traceback: users see their code.

    At the start they are the request's dispatch; at the end, the SIGINT handler that raised
    ``KeyboardInterrupt`` in the user's code.
    """
    while tb is not None and _in_engine(tb):
        tb = tb.tb_next
    last_user, cur = tb, tb
    while cur is not None:
        if not _in_engine(cur):
            last_user = cur
        cur = cur.tb_next
    if last_user is not None:
        last_user.tb_next = None  # what follows it is engine code only
    return tb


class Executor:
    """Run queued requests and send their replies.

    Parameters
    ----------
    session
        Signs replies.
    namespace
        The engine's user namespace.
    inbox
        The queue of requests taken from the sockets.
    iopub
        Publishes output.
    shell
        The request sockets: requests come from them, replies go out on them.
    engine_id, engine_uuid
        Put in reply metadata and error info.
    guard
        Marks when user code runs (for SIGINT).
    capture_output
        Route this thread's ``sys.stdout``/``sys.stderr`` to the running request.
    """

    def __init__(
        self,
        *,
        session: Session,
        namespace: dict[str, Any],
        inbox: Inbox,
        iopub: IOPub,
        shell: Shell,
        engine_id: int,
        engine_uuid: str,
        guard: UserCodeGuard,
        capture_output: bool = True,
    ) -> None:
        self.session = session
        self.namespace = namespace
        self.inbox = inbox
        self.iopub = iopub
        self.shell = shell
        self.engine_id = engine_id
        self.engine_uuid = engine_uuid
        self.guard = guard
        self.capture_output = capture_output
        self.execution_count = 0
        self._output: RequestOutput | None = None
        self._parent: Mapping[str, Any] | None = None
        self._in_flight: zmq.MessageTracker | None = None

    # -- the loop --------------------------------------------------------------------------

    def serve(self, stopping: Callable[[], bool], poll: float = 0.25) -> None:
        """Run requests until ``stopping()`` is true (checked at least every ``poll`` seconds)."""
        ident = threading.get_ident()
        if self.capture_output:
            capture.route_thread(ident, self._write)
        display.route_display(ident, self._display)
        shell = self.shell
        inbox = self.inbox
        try:
            while not stopping():
                if not len(inbox):
                    with shell.lock:
                        if not shell.wanted:
                            shell.wait(inbox, poll)
                if shell.wanted:  # the IO thread needs the sockets (an abort): let it have them
                    shell.step_aside(poll * 40)
                    continue
                pending = inbox.pop()
                if pending is None:
                    continue
                if stopping():  # it stays queued, to be refused
                    inbox.put_back(pending)
                    break
                self.handle(pending)
        finally:
            display.unroute_display(ident)
            if self.capture_output:
                capture.unroute_thread(ident)

    def refuse_queued(self, reason: str) -> int:
        """Answer every request still queued with an ``EngineError`` (the engine is stopping).

        Returns
        -------
        int
            How many requests were answered.
        """
        left = self.inbox.take_all()
        for pending in left:
            err = EngineError("EngineError", f"engine {self.engine_id} stopped before running this request: {reason}")
            self._reply(pending, "error", {}, [], self._wrap(err, pending.msg), utcnow())
        return len(left)

    def _write(self, name: str, text: str) -> None:
        output = self._output
        if output is not None:
            output.write(name, text)
            return
        stream = sys.__stdout__ if name == "stdout" else sys.__stderr__
        if stream is not None:
            stream.write(text)

    def _display(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        # display() called by the running request: publish it on iopub, keep it for the reply
        output, parent = self._output, self._parent
        if output is None or parent is None:
            print(data.get("text/plain", ""), file=sys.__stdout__)
            return
        content = {"data": data, "metadata": metadata}
        output.outputs.append(content)
        output.wrote = True
        self.iopub.publish("display_data", content, parent)

    # -- one request -----------------------------------------------------------------------

    def handle(self, pending: Pending) -> None:
        """Run one request (or answer it as aborted) and send its reply."""
        msg = pending.msg
        started = utcnow()
        if pending.aborted:
            err = TaskAborted("TaskAborted", f"request {msg.msg_id} was aborted before it ran")
            self._reply(pending, "aborted", {}, [], self._wrap(err, msg), started)
            return
        if self.capture_output:
            capture.ensure_installed()
        self._wait_in_flight()
        parent = msg.header
        handler = HANDLERS.get(msg.msg_type)
        is_execute = msg.msg_type == "execute_request"
        silent = bool(msg.content.get("silent", False)) if is_execute else False
        if is_execute and not silent:
            self.execution_count += 1
        count = self.execution_count
        self._output = output = RequestOutput(lambda name, text: self.iopub.stream(parent, name, text))
        self._parent = parent
        self.iopub.publish("status", {"execution_state": "busy"}, parent)
        outcome: Outcome | None = None
        error: WrappedException | None = None
        try:
            if handler is None:
                raise ValueError(
                    f"unknown request type {msg.msg_type!r}; an engine serves {', '.join(sorted(HANDLERS))}"
                )
            with self.guard.user_code():
                outcome = handler(msg, self.namespace, count)
        except BaseException as exc:  # user code may raise anything, KeyboardInterrupt included
            error = self._wrap(exc, msg)
        finally:
            self._output = None
            self._parent = None
        published = False
        if outcome is not None and outcome.result_data is not None and not silent:
            self.iopub.publish("execute_result", {"data": outcome.result_data, "execution_count": count}, parent)
            published = True
        if error is not None:
            self.iopub.publish("error", error, parent)
            published = True
        if (published or output.wrote) and not self.iopub.flush(_FLUSH_TIMEOUT):
            log.warning("output of %s did not reach ZeroMQ within %s s", msg.msg_id, _FLUSH_TIMEOUT)
        if outcome is not None:
            self._reply(pending, "ok", outcome.content, outcome.buffers, None, started, output)
        else:
            extra = {"execution_count": count} if is_execute else {}
            # a task's own dependency (@depend, @require) not met here: the task scheduler tries
            # another engine (docs/scheduling.md); matched by name, the class lives in corral.wire
            status = "unmet" if error is not None and error["ename"] == "UnmetDependency" else "error"
            self._reply(pending, status, extra, [], error, started, output)
        # after the reply: nothing the client waits for competes with it for the GIL
        self.iopub.publish("status", {"execution_state": "idle"}, parent)

    def _wrap(self, exc: BaseException, msg: Message) -> WrappedException:
        exc.__traceback__ = _user_traceback(exc.__traceback__)
        info: EngineInfo = {
            "engine_id": self.engine_id,
            "engine_uuid": self.engine_uuid,
            "method": msg.msg_type.removesuffix("_request"),
        }
        return wrap_exception(exc, engine_info=info)

    def _reply(
        self,
        pending: Pending,
        status: str,
        fields: dict[str, Any],
        buffers: list[Any],
        error: WrappedException | None,
        started: str,
        output: RequestOutput | None = None,
    ) -> None:
        msg = pending.msg
        content: dict[str, Any] = {"status": status, **fields}
        if error is not None:
            content.update(error)
            content["status"] = status
        metadata = {
            "started": started,
            "completed": utcnow(),
            "engine_id": self.engine_id,
            "engine_uuid": self.engine_uuid,
            "status": status,
            "stdout": output.text("stdout") if output is not None else "",
            "stderr": output.text("stderr") if output is not None else "",
            "outputs": output.outputs if output is not None else [],
            "msg_id": msg.msg_id,
            "error": error,
        }
        reply_type = msg.msg_type.removesuffix("_request") + "_reply"
        reply = self.session.msg(reply_type, content, parent=msg, metadata=metadata)
        # schedulers read a reply's outcome from its header alone (docs/scheduling.md)
        reply.header["status"] = status  # type: ignore[typeddict-unknown-key]
        frames = self.session.serialize(reply, buffers, msg.idents)
        if len(buffers) > 1:
            # out-of-band buffers share memory with namespace objects: track them, so the next
            # request does not change an array ZeroMQ is still sending (see _wait_in_flight)
            head = len(msg.idents) + 6
            tracked = [zmq.Frame(b, track=True, copy=False) for b in frames[head:]]
            frames = frames[:head] + tracked
            self._in_flight = zmq.MessageTracker(*tracked)
        with self.shell.lock:
            self.shell.send(pending.channel, frames)

    def _wait_in_flight(self) -> None:
        tracker, self._in_flight = self._in_flight, None
        if tracker is None or tracker.done:
            return
        try:
            tracker.wait(_IN_FLIGHT_TIMEOUT)
        except zmq.NotDone:
            log.warning(
                "a reply's buffers were still being sent after %s s; running the next request", _IN_FLIGHT_TIMEOUT
            )
