"""The hub's table of engines: ids handed out in order, states, and how each one left."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

__all__ = ["REQUIRED_HELLOS", "EngineRecord", "EngineTable"]

#: Channels whose connection an engine must confirm before it is live.
REQUIRED_HELLOS: Final = frozenset({"mux", "control"})


@dataclass(slots=True)
class EngineRecord:
    """One engine, from registration to departure."""

    id: int
    uuid: str
    hostname: str = ""
    pid: int | None = None
    #: the engine's shared-memory address (``corral.wire.shm``), "" if it has none
    shm: str = ""
    #: where clients may send the engine direct requests (``corral.engine.direct``), "" if nowhere
    direct: str = ""
    #: "registering" -> "live" -> "gone"
    state: str = "registering"
    hellos: set[str] = field(default_factory=set)
    ponged: bool = False
    registered: float = field(default_factory=time.monotonic)
    last_pong: float = field(default_factory=time.monotonic)
    reason: str = ""

    @property
    def ident(self) -> bytes:
        """The engine's ZeroMQ routing identity."""
        return self.uuid.encode()

    def ready(self) -> bool:
        """True once every required socket said hello and the heart answered."""
        return self.ponged and self.hellos >= REQUIRED_HELLOS


class EngineTable:
    """Engines by id and by uuid; ids are handed out in order and never reused.

    An engine may ask for an id (an MPI rank, or the id it had before a restart); it gets it
    when no live engine holds it.
    """

    def __init__(self) -> None:
        self.by_id: dict[int, EngineRecord] = {}
        self.by_uuid: dict[str, EngineRecord] = {}
        self._next_id = 0

    def add(
        self, uuid: str, hostname: str = "", pid: int | None = None, requested_id: int | None = None
    ) -> EngineRecord:
        """Register a new engine and return its record.

        Raises
        ------
        ValueError
            If ``uuid`` is already registered and not gone, or ``requested_id`` is held by a
            live engine or is negative.
        """
        old = self.by_uuid.get(uuid)
        if old is not None and old.state != "gone":
            raise ValueError(f"an engine with uuid {uuid} is already registered as engine {old.id}")
        if requested_id is not None:
            if requested_id < 0:
                raise ValueError(f"requested engine id {requested_id} is negative")
            holder = self.by_id.get(requested_id)
            if holder is not None and holder.state != "gone":
                raise ValueError(f"engine id {requested_id} is held by a live engine ({holder.uuid})")
            engine_id = requested_id
            self._next_id = max(self._next_id, requested_id + 1)
        else:
            while self._next_id in self.by_id:
                self._next_id += 1
            engine_id = self._next_id
            self._next_id += 1
        record = EngineRecord(engine_id, uuid, hostname, pid)
        self.by_id[engine_id] = record
        self.by_uuid[uuid] = record
        return record

    def live(self) -> list[EngineRecord]:
        """Live engines, by id."""
        return [r for _, r in sorted(self.by_id.items()) if r.state == "live"]

    def get(self, uuid: str) -> EngineRecord | None:
        """The record of ``uuid``, or None."""
        return self.by_uuid.get(uuid)
