"""Submission acknowledgements: the hub tells each client which of its requests it has stored.

A request the hub has stored survives its client: it runs, and any client can fetch its result
by msg_id (with the SQLite store, across a controller restart too). A client that must not lose
work waits for that acknowledgement before it may go away (``AsyncResult.wait_for_ack``).

Acknowledging costs nothing per message on the hot path: the hub notes each stored msg_id
(one dict insert), and at most every ``delay`` seconds sends each client one
``submission_ack`` message listing its msg_ids, on the channel they came in on. A request
answered before then is not listed: its reply already tells the client it was stored. So a
stream of quick requests (the latency benchmark) causes no acknowledgement traffic at all, and a
10,000-task map a handful of messages.
"""

from __future__ import annotations

import logging
from typing import Any

import zmq

from corral.wire import Session
from corral.wire.loop import Reactor, Timer

__all__ = ["ACK_DELAY", "Acknowledger"]

log = logging.getLogger(__name__)

#: Longest a stored request waits for its acknowledgement, in seconds.
ACK_DELAY = 0.02


class Acknowledger:
    """Collect stored msg_ids and acknowledge them to their clients in batches.

    Parameters
    ----------
    session
        The controller's session (acknowledgements are signed messages).
    delay
        Seconds to collect msg_ids before sending (:data:`ACK_DELAY`).

    Attributes
    ----------
    sockets
        Per channel (``"mux"``, ``"task"``, ``"control"``), the controller socket its clients
        are connected to; requests on other channels are not acknowledged.
    """

    def __init__(self, session: Session, delay: float = ACK_DELAY) -> None:
        self.session = session
        self.delay = delay
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        self._waiting: dict[str, tuple[str, bytes]] = {}
        self._reactor: Reactor | None = None
        self._timer: Timer | None = None

    def register(self, reactor: Reactor) -> None:
        """Send acknowledgements from ``reactor``'s thread."""
        self._reactor = reactor

    def stored(self, channel: str, client: bytes, msg_id: str) -> None:
        """Note that ``client``'s request ``msg_id``, received on ``channel``, is stored."""
        if channel not in self.sockets or not client:
            return
        self._waiting[msg_id] = (channel, client)
        if self._timer is None and self._reactor is not None:
            self._timer = self._reactor.call_later(self.delay, self.flush)

    def answered(self, msg_id: str) -> None:
        """``msg_id`` has its reply: the reply acknowledges it."""
        self._waiting.pop(msg_id, None)

    def flush(self) -> None:
        """Send every client one ``submission_ack`` per channel, listing its stored msg_ids."""
        self._timer = None
        waiting, self._waiting = self._waiting, {}
        batches: dict[tuple[str, bytes], list[str]] = {}
        for msg_id, where in waiting.items():
            batches.setdefault(where, []).append(msg_id)
        for (channel, client), msg_ids in batches.items():
            try:
                self.session.send(self.sockets[channel], "submission_ack", {"msg_ids": msg_ids}, ident=[client])
            except zmq.ZMQError as err:  # the client left: its requests stay stored all the same
                log.debug("acknowledgement of %d request(s) not sent: %s", len(msg_ids), err)
