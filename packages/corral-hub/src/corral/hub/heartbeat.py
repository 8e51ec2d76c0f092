"""Heartbeats: the hub publishes numbered pings; each engine's heart echoes them back.

Engines echo pings in a ZeroMQ device thread that never needs Python's GIL, so an engine busy
in long-running code still answers. The hub hears who answered; :class:`~corral.hub.Hub`
declares an engine dead after ``misses`` periods without an answer.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

import zmq

from corral.wire.loop import Reactor, Timer

__all__ = ["HeartMonitor"]

log = logging.getLogger(__name__)


class HeartMonitor:
    """Send pings every ``period`` seconds and report each engine's answers.

    Parameters
    ----------
    ping_socket
        Bound PUB socket (``heartbeat_ping``).
    pong_socket
        Bound ROUTER socket (``heartbeat_pong``); engines' hearts connect with their uuid.
    period
        Seconds between pings.
    on_pong
        Called with the engine uuid (str) for every answer to a recent ping.
    on_beat
        Called after every ping is sent (the hub checks for silent engines then).
    misses
        Answers to pings older than this many rounds are ignored.
    on_junk
        Called with a description for every message on the pong socket that is no pong at all
        (pongs are raw echoes, not signed messages): the hub counts them as dropped.
    """

    def __init__(
        self,
        ping_socket: zmq.Socket[Any],
        pong_socket: zmq.Socket[Any],
        period: float,
        on_pong: Callable[[str], None],
        on_beat: Callable[[], None],
        misses: int = 4,
        on_junk: Callable[[str], None] | None = None,
    ) -> None:
        self.ping_socket = ping_socket
        self.pong_socket = pong_socket
        self.period = period
        self.misses = misses
        self.on_pong = on_pong
        self.on_beat = on_beat
        self.on_junk = on_junk
        self.round = 0
        #: this hub's run: sent with every ping, so that engines notice a restarted controller
        self.incarnation = secrets.token_hex(4).encode("ascii")
        self._timer: Timer | None = None

    def register(self, reactor: Reactor) -> None:
        """Start pinging and listening on ``reactor``."""
        reactor.add_socket(self.pong_socket, self._pongs)
        self._timer = reactor.call_every(self.period, self._beat)
        reactor.call_later(0, self._beat)

    def ping_now(self) -> None:
        """Send the current round's ping again, e.g. so a newly registering engine can answer
        without waiting a whole period."""
        try:
            self.ping_socket.send(self._ping(), zmq.NOBLOCK)
        except zmq.ZMQError as err:
            log.debug("heartbeat ping not sent: %s", err)

    def _ping(self) -> bytes:
        return b"%d:%s" % (self.round, self.incarnation)

    def stop(self) -> None:
        """Stop pinging."""
        if self._timer is not None:
            self._timer.cancel()

    def _beat(self) -> None:
        self.round += 1
        try:
            self.ping_socket.send(self._ping(), zmq.NOBLOCK)
        except zmq.ZMQError as err:  # nothing subscribes yet, or shutting down
            log.debug("heartbeat ping not sent: %s", err)
        self.on_beat()

    def _junk(self, what: str) -> None:
        if self.on_junk is not None:
            self.on_junk(what)

    def _pongs(self, socket: zmq.Socket[Any]) -> None:
        oldest = self.round - self.misses
        for _ in range(1024):
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2 or len(frames[1]) > 40:
                self._junk(f"{len(frames) - 1} frames where a pong has one of at most 40 bytes")
                continue
            beat, _, incarnation = frames[1].partition(b":")
            if incarnation != self.incarnation:
                continue  # an answer to another run's ping
            try:
                answered = int(beat)
            except ValueError:
                self._junk("a pong that does not echo a ping")
                continue
            if answered >= oldest:
                self.on_pong(frames[0].decode(errors="replace"))
