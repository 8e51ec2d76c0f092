"""What schedulers tell the hub: every request routed, every reply and output relayed.

The controller runs the hub and the schedulers in one process, so the monitor channel is a
method call, not a socket: each relay holds a :class:`Monitor` and calls it once per message,
with the message's routing facts and its undecoded frames (nothing is copied).
"""

from __future__ import annotations

from typing import Protocol

from corral.wire import RawMessage

__all__ = ["Monitor", "NullMonitor"]


class Monitor(Protocol):
    """The hub's side of the monitor channel."""

    def request(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> None:
        """A request from ``client`` was routed to ``engine`` (uuid bytes)."""

    def reply(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> bool:
        """``engine`` replied to ``client``; return False to drop the reply instead of forwarding
        it (it answers a request the hub already failed, e.g. after the engine was declared dead).
        """

    def delivered(self, channel: str, raw: RawMessage, client: bytes, ok: bool) -> None:
        """A reply was handed to ``client``'s connection (``ok``) or the client was gone."""

    def hello(self, channel: str, engine: bytes) -> None:
        """``engine`` connected its socket for ``channel``."""

    def output(self, raw: RawMessage) -> None:
        """An engine published output (relayed to clients on iopub)."""


class NullMonitor:
    """A monitor that records nothing (for relays used without a hub, e.g. in tests)."""

    def request(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> None:
        return None

    def reply(self, channel: str, raw: RawMessage, client: bytes, engine: bytes) -> bool:
        return True

    def delivered(self, channel: str, raw: RawMessage, client: bytes, ok: bool) -> None:
        return None

    def hello(self, channel: str, engine: bytes) -> None:
        return None

    def output(self, raw: RawMessage) -> None:
        return None
