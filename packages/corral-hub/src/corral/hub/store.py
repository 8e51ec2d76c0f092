"""The hub's result store: what every request became, for any client to fetch.

Records go through three states: ``pending`` (routed, no reply yet), ``completed`` and not yet
collected (the reply could not be handed to its client, or nobody has fetched it), and
``collected`` (handed to a client). Uncollected results are never dropped to cap a count: the
store only trims collected ones, the earliest collected first, beyond ``max_collected`` records or
``max_collected_bytes`` of buffers, and drops anything only when :meth:`purge` says so.

Buffers are kept as the ZeroMQ frames they arrived in: storing a result copies nothing.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["MemoryStore", "Record", "ResultStore"]


def _decode(frame: Any) -> dict[str, Any]:
    data = frame.bytes if hasattr(frame, "bytes") else bytes(frame)
    obj = json.loads(data)
    return obj if isinstance(obj, dict) else {}


@dataclass(slots=True, eq=False)
class Record:
    """One request and, once it finished, its reply."""

    msg_id: str
    channel: str
    client: bytes
    engine: str
    request_header: dict[str, Any]
    submitted: float = field(default_factory=time.time)
    #: the reply's header, parent, metadata and content frames, then its buffers (undecoded)
    reply_frames: list[Any] | None = None
    #: a reply the controller made itself (engine died): header-less JSON parts
    reply_parts: tuple[str, dict[str, Any], dict[str, Any]] | None = None
    completed: float | None = None
    collected: bool = False

    @property
    def done(self) -> bool:
        """True once a reply exists."""
        return self.reply_frames is not None or self.reply_parts is not None

    def nbytes(self) -> int:
        """Bytes of reply buffers held."""
        if self.reply_frames is None:
            return 0
        return sum(len(f) for f in self.reply_frames[4:])

    def reply(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[Any]]:
        """Decode the reply's (header, metadata, content, buffers)."""
        if self.reply_frames is not None:
            f = self.reply_frames
            return _decode(f[0]), _decode(f[2]), _decode(f[3]), list(f[4:])
        assert self.reply_parts is not None
        msg_type, content, metadata = self.reply_parts
        return {"msg_type": msg_type}, metadata, content, []


class ResultStore(Protocol):
    """What the hub needs from a store (in memory, or SQLite)."""

    def add_request(self, record: Record) -> None:
        """Remember a routed request; a pending one with the same msg_id moves to this engine."""

    def get(self, msg_id: str) -> Record | None:
        """Return the record of ``msg_id``, or None."""

    def complete(self, msg_id: str, reply_frames: list[Any] | None, reply_parts: Any = None) -> Record | None:
        """Attach a reply; return the record, or None for an unknown msg_id."""

    def mark_collected(self, msg_id: str) -> None:
        """The reply reached a client."""

    def pending_on(self, engine: str) -> list[Record]:
        """Records routed to ``engine`` without a reply yet."""

    def purge(self, msg_ids: Iterable[str] | None = None, engines: Iterable[str] | None = None) -> int:
        """Forget finished records (all of them when both arguments are None); return how many."""

    def stats(self) -> dict[str, int]:
        """Counts of records by state."""


class MemoryStore:
    """Keep records in memory; bounded on collected results only (see module docstring).

    Parameters
    ----------
    max_collected
        Collected results kept for other clients to fetch, at most.
    max_collected_bytes
        Buffer bytes of collected results kept, at most.
    """

    def __init__(self, max_collected: int = 10_000, max_collected_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_collected = max_collected
        self.max_collected_bytes = max_collected_bytes
        self._records: dict[str, Record] = {}
        self._pending_by_engine: dict[str, dict[str, Record]] = {}
        self._collected: OrderedDict[str, int] = OrderedDict()
        self._collected_bytes = 0

    def add_request(self, record: Record) -> None:
        old = self._records.get(record.msg_id)
        if old is not None and not old.done:
            # resubmitted elsewhere (a task retried on another engine): it is pending there now
            pending = self._pending_by_engine.get(old.engine)
            if pending is not None:
                pending.pop(old.msg_id, None)
                if not pending:
                    del self._pending_by_engine[old.engine]
        self._records[record.msg_id] = record
        self._pending_by_engine.setdefault(record.engine, {})[record.msg_id] = record

    def get(self, msg_id: str) -> Record | None:
        return self._records.get(msg_id)

    def complete(self, msg_id: str, reply_frames: list[Any] | None, reply_parts: Any = None) -> Record | None:
        record = self._records.get(msg_id)
        if record is None or record.done:
            return None
        record.reply_frames = reply_frames
        record.reply_parts = reply_parts
        record.completed = time.time()
        pending = self._pending_by_engine.get(record.engine)
        if pending is not None:
            pending.pop(msg_id, None)
            if not pending:
                del self._pending_by_engine[record.engine]
        return record

    def mark_collected(self, msg_id: str) -> None:
        record = self._records.get(msg_id)
        if record is None or record.collected or not record.done:
            return
        record.collected = True
        size = record.nbytes()
        self._collected[msg_id] = size
        self._collected_bytes += size
        while self._collected and (
            len(self._collected) > self.max_collected or self._collected_bytes > self.max_collected_bytes
        ):
            old, old_size = self._collected.popitem(last=False)
            self._collected_bytes -= old_size
            self._records.pop(old, None)

    def pending_on(self, engine: str) -> list[Record]:
        return list(self._pending_by_engine.get(engine, {}).values())

    def purge(self, msg_ids: Iterable[str] | None = None, engines: Iterable[str] | None = None) -> int:
        if msg_ids is None and engines is None:
            victims: Sequence[str] = [m for m, r in self._records.items() if r.done]
        else:
            wanted = set(msg_ids or ())
            engine_set = set(engines or ())
            victims = [m for m, r in self._records.items() if r.done and (m in wanted or r.engine in engine_set)]
        for msg_id in victims:
            self._records.pop(msg_id, None)
            size = self._collected.pop(msg_id, None)
            if size is not None:
                self._collected_bytes -= size
        return len(victims)

    def stats(self) -> dict[str, int]:
        pending = sum(len(p) for p in self._pending_by_engine.values())
        collected = len(self._collected)
        return {
            "pending": pending,
            "uncollected": len(self._records) - pending - collected,
            "collected": collected,
            "collected_bytes": self._collected_bytes,
        }
