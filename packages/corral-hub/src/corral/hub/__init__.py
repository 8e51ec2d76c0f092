"""corral.hub: registration, heartbeats, the result store, queries and notifications.

- :class:`Hub` registers engines (ids in order, never reused), watches their hearts, fails the
  work of engines that die with :class:`~corral.wire.errors.EngineError`, stores results, and
  answers clients' queries;
- :class:`MemoryStore` keeps results in memory, bounded on collected results only;
  :class:`SqliteStore` keeps them in an SQLite file a restarted controller reopens.
"""

from __future__ import annotations

from corral.hub._version import __version__
from corral.hub.engines import EngineRecord, EngineTable
from corral.hub.heartbeat import HeartMonitor
from corral.hub.hub import Hub, describe_exit
from corral.hub.store import ExpiredIds, MemoryStore, Record, ResultStore, SqliteStore

__all__ = [
    "EngineRecord",
    "EngineTable",
    "ExpiredIds",
    "HeartMonitor",
    "Hub",
    "MemoryStore",
    "Record",
    "ResultStore",
    "SqliteStore",
    "__version__",
    "describe_exit",
]
