"""Control requests: abort, clear, shutdown and signals, handled beside the request queue.

They arrive on the engine's ``control_engine`` socket and are handled at once in the IO thread,
whatever the execution thread is doing: ``abort_request`` marks queued requests,
``clear_request`` empties the namespace, ``shutdown_request`` replies and stops the engine, and
``signal_request`` replies and sends a signal to the engine process (SIGINT interrupts running
user code with ``KeyboardInterrupt``; the engine keeps serving), and ``drops_request`` answers
with the messages this engine dropped, by channel and reason (``drops`` in the reply): the
controller's relays check signatures but not buffers, so a tampered buffer is caught and
counted here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corral.engine.inbox import Inbox
from corral.engine.namespace import clear_namespace
from corral.engine.shell import Shell
from corral.engine.signals import parse_signal
from corral.wire import Message, wrap_exception
from corral.wire.errors import EngineInfo

__all__ = ["Control", "ControlReply"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ControlReply:
    """The answer to a control request, and what to do once it is sent.

    Attributes
    ----------
    msg_type
        ``<type>_reply``.
    content
        ``status`` and, for errors, the wrapped exception.
    after
        Called after the reply is handed to ZeroMQ (stop the engine, send the signal), or None.
    """

    msg_type: str
    content: dict[str, Any]
    after: Callable[[], None] | None = None


class Control:
    """Handle control requests for one engine.

    Parameters
    ----------
    inbox
        The request queue (for aborts).
    shell
        The request sockets: an abort of everything first takes in what has arrived.
    namespace
        The user namespace (for clear).
    request_stop
        ``request_stop(reason)`` stops the engine (for shutdown).
    signals_allowed
        Whether ``signal_request`` may signal this process: true for an engine process (its
        requests run in the main thread), false for an engine embedded in a thread of another
        application, where a signal would hit the application instead.
    engine_info
        ``engine_id`` and ``engine_uuid``, for error info.
    """

    def __init__(
        self,
        *,
        inbox: Inbox,
        shell: Shell,
        namespace: dict[str, Any],
        request_stop: Callable[[str], None],
        signals_allowed: bool,
        engine_info: dict[str, Any],
    ) -> None:
        self.inbox = inbox
        self.shell = shell
        self.namespace = namespace
        self.request_stop = request_stop
        self.signals_allowed = signals_allowed
        self.engine_info = dict(engine_info)

    def handle(self, msg: Message) -> ControlReply:
        """Act on a control request and return the reply to send."""
        method = msg.msg_type.removesuffix("_request")
        reply_type = method + "_reply"
        if msg.msg_type == "drops_request":
            return ControlReply(reply_type, {"status": "ok", "drops": self.drops()})
        try:
            after = self._act(msg)
        except Exception as exc:
            exc.__traceback__ = None  # the engine's own frames say nothing useful to a client
            info: EngineInfo = {
                "engine_id": self.engine_info["engine_id"],
                "engine_uuid": self.engine_info["engine_uuid"],
                "method": method,
            }
            wrapped = wrap_exception(exc, engine_info=info)
            return ControlReply(reply_type, dict(wrapped))
        return ControlReply(reply_type, {"status": "ok"}, after)

    def drops(self) -> dict[str, dict[str, int]]:
        """The messages this engine's session dropped: ``{channel: {reason: n}}``."""
        counts: dict[str, dict[str, int]] = {}
        for (channel, reason), n in sorted(dict(self.shell.session.rejections).items()):
            counts.setdefault(channel, {})[reason] = n
        return counts

    def _act(self, msg: Message) -> Callable[[], None] | None:
        kind = msg.msg_type
        content = msg.content
        if kind == "abort_request":
            msg_ids = content.get("msg_ids")
            if isinstance(msg_ids, str):
                msg_ids = [msg_ids]
            if msg_ids is not None and not (isinstance(msg_ids, list) and all(isinstance(m, str) for m in msg_ids)):
                raise TypeError(f"abort_request needs msg_ids as a list of str or null, not {msg_ids!r}")
            if msg_ids is None:
                # "every queued request": every one that has reached the engine, including those
                # still in the sockets while user code runs
                with self.shell.borrow() as got:
                    if got:
                        self.shell.drain(self.inbox)
                    else:
                        log.warning("abort: could not take in newly arrived requests; aborting those queued")
            marked = self.inbox.abort(msg_ids)
            log.info("abort: %d queued request(s) marked (%s)", marked, "all" if msg_ids is None else len(msg_ids))
            return None
        if kind == "clear_request":
            clear_namespace(self.namespace)
            log.info("namespace cleared")
            return None
        if kind == "shutdown_request":
            log.info("shutdown requested by a client")
            return lambda: self.request_stop("shutdown requested by a client")
        if kind == "signal_request":
            sig = parse_signal(content.get("signal"))
            if not self.signals_allowed:
                raise RuntimeError(
                    "this engine runs inside another application, outside its main thread, so "
                    f"it does not send signals ({sig.name}) to its process; interrupting user code "
                    "needs an engine process (python -m corral.engine)"
                )
            log.info("signal request: sending %s to process %d", sig.name, os.getpid())
            return lambda: os.kill(os.getpid(), sig)
        raise ValueError(
            f"unknown control request {kind!r}; an engine handles abort_request, clear_request, "
            "shutdown_request, signal_request and drops_request"
        )
