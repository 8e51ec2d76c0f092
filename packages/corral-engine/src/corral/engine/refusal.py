"""Answering requests that were altered on the way, without running them.

A request whose buffer does not match the digest its sender signed is dropped and counted
(``tampered_buffer``) like any bad message, and never unpickled. Its header, though, is
authentic (the MAC over it checked out), so the engine answers it with an error reply instead of
leaving it unanswered: the scheduler frees the engine's slot and the client learns what happened,
rather than both waiting forever for a reply that cannot come.
"""

from __future__ import annotations

import logging
from typing import Any

import zmq

from corral.wire import MessageRejected, Session
from corral.wire.errors import EngineInfo, RemoteError, error_reply

__all__ = ["answer_refused"]

log = logging.getLogger(__name__)


def answer_refused(session: Session, sock: zmq.Socket[Any], err: MessageRejected, engine_info: EngineInfo) -> None:
    """Send an error reply to a dropped request whose header is known to be authentic.

    Does nothing for other drops (no header, or one that could not be authenticated).
    """
    if err.reason != "tampered_buffer" or err.header is None:
        return
    msg_id = err.header.get("msg_id")
    refused = RemoteError(
        "MessageRejected",
        f"request {msg_id} was not run: {err}; it was altered between its sender and this engine",
        engine_info=engine_info,
    )
    msg_type, content, metadata = error_reply(refused, err.header, engine_info)
    reply = session.msg(msg_type, content, parent=err.header, metadata=metadata)
    reply.header["status"] = "error"  # type: ignore[typeddict-unknown-key]
    try:
        session.send(sock, reply, ident=err.idents)
    except zmq.ZMQError as exc:
        log.warning("could not answer the altered request %s: %s", msg_id, exc)
