"""The client's table of live engines, and turning ``targets`` into engine ids and uuids."""

from __future__ import annotations

import operator
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from corral.wire.errors import NoEnginesRegistered
from corral.wire.errors import TimeoutError as CorralTimeoutError

__all__ = ["EngineTable", "Targets"]

#: What a ``targets`` argument may be: an id, several ids, or every live engine.
Targets = Any  # int | list[int] | tuple[int, ...] | range | slice | "all" | None


class EngineTable:
    """Engine id -> uuid for the engines that are live, as the hub last told us.

    Updated from the connection snapshot and then by notifications (IO thread), under a
    lock; read from any thread without one: each change installs a new dict, so a reader
    always sees a consistent table. An engine (a uuid) once seen unregistered is never added
    again, whatever order messages arrive in; its id may come back with a new engine (a
    restart under the same id, an MPI rank).
    """

    def __init__(self) -> None:
        self._engines: dict[int, str] = {}
        self._gone: set[str] = set()
        self._changed = threading.Condition()

    # -- updates (the IO thread, and the connection snapshot) ---------------------------------

    def apply_snapshot(self, engines: Mapping[Any, Any]) -> None:
        """Merge the ``engines`` of a ``connection_reply`` (``{id: uuid}``, ids as JSON keys).

        Merging, not replacing: a notification may have arrived before the snapshot.
        """
        with self._changed:
            table = dict(self._engines)
            for key, uuid in engines.items():
                eid = int(key)
                if str(uuid) not in self._gone:
                    table[eid] = str(uuid)
            self._install(table)

    def register(self, eid: int, uuid: str) -> None:
        """An ``engine_registered`` notification."""
        with self._changed:
            if uuid in self._gone:
                return
            table = dict(self._engines)
            table[eid] = uuid
            self._install(table)

    def unregister(self, eid: int, uuid: str | None = None) -> str | None:
        """An ``engine_unregistered`` notification; returns the engine's uuid if it was known.

        With ``uuid`` given, the id is dropped only if it still belongs to that engine (a new
        engine may already hold the id again).
        """
        with self._changed:
            table = dict(self._engines)
            current = table.get(eid)
            gone = uuid or current
            if gone:
                self._gone.add(gone)
            if current is not None and (uuid is None or current == uuid):
                del table[eid]
                self._install(table)
                return current
            return None

    def _install(self, table: dict[int, str]) -> None:
        self._engines = table
        self._changed.notify_all()

    # -- any thread --------------------------------------------------------------------------

    @property
    def ids(self) -> list[int]:
        """Sorted ids of the live engines."""
        return sorted(self._engines)

    def uuid(self, eid: int) -> str | None:
        """The uuid of engine ``eid``, or None if it is not live."""
        return self._engines.get(eid)

    def id_of(self, uuid: str) -> int | None:
        """The id of the live engine with this uuid, or None."""
        for eid, u in self._engines.items():
            if u == uuid:
                return eid
        return None

    def wait_for(self, n: int, timeout: float | None) -> None:
        """Block until at least ``n`` engines are live.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If ``timeout`` (seconds; None waits forever) passes first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while len(self._engines) < n:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise CorralTimeoutError(
                        f"{len(self._engines)} engine(s) registered after {timeout:g} s, {n} wanted "
                        f"(live ids: {self.ids})"
                    )
                self._changed.wait(left)

    def resolve(self, targets: Targets) -> tuple[list[int], list[str]]:
        """Return the ids and uuids named by ``targets``, in the order given.

        ``None`` and ``"all"`` mean every live engine; an int is one engine (negative ints
        count from the end of :attr:`ids`); a slice selects from :attr:`ids`; a list, tuple
        or range names several.

        Raises
        ------
        NoEnginesRegistered
            If no engine is live at all.
        IndexError
            If an id is not a live engine (the message lists the live ones).
        TypeError
            If ``targets`` is of another type.
        ValueError
            If an explicit list of targets is empty.
        """
        table = self._engines
        ids = sorted(table)
        if not ids:
            raise NoEnginesRegistered(
                "no engines are registered with the controller; start some "
                "(`corral engine`, or Cluster(n=...)) or wait with rc.wait_for_engines(n)"
            )
        if targets is None or (isinstance(targets, str) and targets == "all"):
            chosen = ids
        elif isinstance(targets, slice):
            chosen = ids[targets]
        elif _is_int(targets):
            chosen = [self._one(int(targets), ids)]
        elif isinstance(targets, (list, tuple, range)):
            chosen = [self._one(t, ids) for t in _ints(targets)]
            if not chosen:
                raise ValueError("targets is an empty list: name at least one engine, or use 'all'")
        else:
            raise TypeError(
                f"targets must be an engine id, a list of ids, a slice or 'all', not {type(targets).__name__}"
            )
        return chosen, [table[eid] for eid in chosen]

    @staticmethod
    def _one(eid: int, ids: list[int]) -> int:
        if eid < 0:
            if -eid > len(ids):
                raise IndexError(f"engine index {eid} is out of range: {len(ids)} engine(s) live, ids {ids}")
            return ids[eid]
        if eid not in ids:
            raise IndexError(f"engine {eid} is not registered (live engine ids: {ids})")
        return eid


def _is_int(x: Any) -> bool:
    """An int, or an integer-like such as a numpy integer; not a bool."""
    if isinstance(x, bool):
        return False
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def _ints(items: Iterable[Any]) -> list[int]:
    out = []
    for t in items:
        if not _is_int(t):
            raise TypeError(f"engine ids are ints, not {type(t).__name__} ({t!r})")
        out.append(int(t))
    return out
