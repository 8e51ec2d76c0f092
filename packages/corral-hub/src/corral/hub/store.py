"""The hub's result stores: what every request became, for any client to fetch.

Records go through three states: ``pending`` (routed, no reply yet), ``completed`` and not yet
collected (the reply could not be handed to its client, or nobody has fetched it), and
``collected`` (handed to a client). Two stores implement :class:`ResultStore`:

- :class:`MemoryStore` (the default) keeps pending and uncollected records in memory, and the
  most recently collected ones (``max_collected`` records, ``max_collected_bytes`` of
  buffers). Older collected results are not dropped but **spilled** to a private SQLite file
  that lives as long as the store (no WAL, no fsync: it is a cache of this process), so any
  result stays fetchable while the controller runs, and memory stays bounded however many
  tasks go through. Uncollected results are never moved or dropped to save memory. With a
  ``retention`` (seconds) set, finished results older than that are dropped, collected or not,
  in memory or spilled. Buffers in memory are the ZeroMQ frames they arrived in: storing a
  result copies no buffer.
- :class:`SqliteStore` writes every record to an SQLite database in WAL mode as it changes,
  so a controller killed at any moment and restarted on the same file (``corral controller
  --restore``) still serves every result that had arrived. It trims only by ``retention``.

A reply whose buffers came through shared memory (``corral.wire.shm``) holds them in *kept*
segments: the record owns them (:attr:`Record.segments`). :class:`MemoryStore` keeps the
segments while the record is in memory, counts collected results' segments against a budget of
their own (``max_kept_bytes``: they are in ``/dev/shm``, not in the controller's heap), and
copies their bytes into the spill file when it spills the record;
:class:`SqliteStore` copies them into its database as the reply arrives. A segment no record
holds any more (:meth:`ResultStore.kept_segments`) is removed by the hub's sweep.

Both remember which msg_ids they dropped past retention, so fetching one says
``expired`` (the client raises :class:`~corral.wire.errors.ResultExpired`) rather than
``unknown``. Only :meth:`ResultStore.purge`, a client's explicit request, forgets a record
without a trace, and it never removes pending ones.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import shutil
import sqlite3
import struct
import tempfile
import time
from collections import OrderedDict
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from corral.wire.shm import POOL_MAX_BYTES, SHM_DIR, SegmentError, open_kept

__all__ = ["ExpiredIds", "MemoryStore", "Record", "ResultStore", "SqliteStore"]

log = logging.getLogger(__name__)


def _as_bytes(frame: Any) -> bytes:
    if type(frame) is bytes:
        return frame
    return frame.bytes if hasattr(frame, "bytes") else bytes(frame)


def _decode(frame: Any) -> dict[str, Any]:
    obj = json.loads(_as_bytes(frame))
    return obj if isinstance(obj, dict) else {}


@dataclass(slots=True, eq=False)
class Record:
    """One request and, once it finished, its reply.

    ``request_header`` may be given as the header's JSON bytes (kept as they are, decoded when
    read: a header dict costs several times its JSON in memory).
    """

    msg_id: str
    channel: str
    client: bytes
    engine: str
    header: dict[str, Any] | bytes
    submitted: float = field(default_factory=time.time)
    #: the reply's header, parent, metadata and content frames, then its buffers (undecoded)
    reply_frames: list[Any] | None = None
    #: a reply the controller made itself (engine died): header-less JSON parts
    reply_parts: tuple[str, dict[str, Any], dict[str, Any]] | None = None
    completed: float | None = None
    collected: bool = False
    #: buffers held in kept shared-memory segments: ``[buffer index, segment name, size]``
    #: each (the reply's frame at that index is empty, its header lists them under ``shm``)
    segments: list[list[Any]] | None = None

    @property
    def request_header(self) -> dict[str, Any]:
        """The request's header (decoded from JSON bytes when it was stored that way)."""
        if isinstance(self.header, dict):
            return self.header
        return _decode(self.header)

    @property
    def done(self) -> bool:
        """True once a reply exists."""
        return self.reply_frames is not None or self.reply_parts is not None

    def nbytes(self) -> int:
        """Bytes of reply buffers held in frames (in the controller's memory)."""
        if self.reply_frames is None:
            return 0
        return sum(len(f) for f in self.reply_frames[4:])

    def kept_bytes(self) -> int:
        """Bytes of reply buffers held in kept shared-memory segments."""
        return sum(size for _, _, size in self.segments) if self.segments else 0

    def compact(self) -> None:
        """Hold the small reply frames as plain bytes (a ZeroMQ frame object costs more)."""
        if self.reply_frames is not None:
            f = self.reply_frames
            self.reply_frames = [_as_bytes(x) for x in f[:4]] + list(f[4:])

    def status(self) -> str | None:
        """The reply's status (``ok``, ``error``, ``aborted`` ...), None while pending."""
        status: Any = None
        if self.reply_frames is not None:
            status = _decode(self.reply_frames[0]).get("status")
            if not isinstance(status, str):
                status = _decode(self.reply_frames[2]).get("status")
        elif self.reply_parts is not None:
            status = self.reply_parts[2].get("status")
        else:
            return None
        return status if isinstance(status, str) else "error"

    def reply(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[Any]]:
        """Decode the reply's (header, metadata, content, buffers)."""
        if self.reply_frames is not None:
            f = self.reply_frames
            header = _decode(f[0])
            buffers = list(f[4:])
            chunks = header.pop("chunks", None)
            if isinstance(chunks, list) and len(buffers) != len(chunks):
                # a buffer the engine split into several frames (docs/protocol.md): one buffer
                # again, which the hub's own reply splits as its limit requires
                buffers = [b"".join(buffers[sum(chunks[:i]) : sum(chunks[: i + 1])]) for i in range(len(chunks))]
            return header, _decode(f[2]), _decode(f[3]), buffers
        assert self.reply_parts is not None
        msg_type, content, metadata = self.reply_parts
        return {"msg_type": msg_type}, metadata, content, []


class ResultStore(Protocol):
    """What the hub needs from a store (in memory, or SQLite)."""

    def add_request(self, record: Record) -> None:
        """Remember a routed request; a pending one with the same msg_id moves to this engine."""

    def get(self, msg_id: str) -> Record | None:
        """Return the record of ``msg_id``, or None."""

    def complete(
        self,
        msg_id: str,
        reply_frames: list[Any] | None,
        reply_parts: Any = None,
        segments: list[list[Any]] | None = None,
    ) -> Record | None:
        """Attach a reply; return the record, or None for an unknown or finished msg_id.

        ``segments`` lists the reply's buffers held in kept shared-memory segments
        (:attr:`Record.segments`): the store owns them from now on.
        """

    def kept_segments(self) -> Container[str]:
        """The names of the kept segments records hold (the hub's sweep leaves these)."""

    def mark_collected(self, msg_id: str) -> None:
        """The reply reached a client."""

    def pending_on(self, engine: str) -> list[Record]:
        """Records routed to ``engine`` without a reply yet."""

    def is_expired(self, msg_id: str) -> bool:
        """Whether ``msg_id``'s result was dropped by trimming or retention (not by a purge)."""

    def expire(self, now: float | None = None) -> int:
        """Drop finished records older than the retention limit; return how many."""

    def purge(self, msg_ids: Iterable[str] | None = None, engines: Iterable[str] | None = None) -> int:
        """Forget finished records (all of them when both arguments are None); return how many."""

    def stats(self) -> dict[str, int]:
        """Counts of records by state."""

    def close(self) -> None:
        """Release what the store holds open (files)."""


class ExpiredIds:
    """A compact set of dropped msg_ids.

    corral's msg_ids are ``<session>_<counter>``; for each session the counters are kept as
    sorted ranges, so a client's 100,000 expired results cost a few ranges rather than 100,000
    strings. Other msg_ids are kept as strings, the oldest forgotten beyond ``max_other``.
    """

    def __init__(self, max_other: int = 100_000) -> None:
        self.max_other = max_other
        self._ranges: dict[str, tuple[list[int], list[int]]] = {}
        self._other: OrderedDict[str, None] = OrderedDict()

    @staticmethod
    def _split(msg_id: str) -> tuple[str, int] | None:
        prefix, sep, counter = msg_id.rpartition("_")
        if not sep or not counter.isdigit() or len(counter) > 18:
            return None
        return prefix, int(counter)

    def add(self, msg_id: str) -> None:
        """Remember ``msg_id`` as expired."""
        split = self._split(msg_id)
        if split is None:
            self._other[msg_id] = None
            if len(self._other) > self.max_other:
                self._other.popitem(last=False)
            return
        prefix, n = split
        starts, ends = self._ranges.setdefault(prefix, ([], []))
        i = bisect.bisect_right(starts, n) - 1
        if i >= 0 and n < ends[i]:
            return
        joins_left = i >= 0 and ends[i] == n
        joins_right = i + 1 < len(starts) and starts[i + 1] == n + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif joins_left:
            ends[i] = n + 1
        elif joins_right:
            starts[i + 1] = n
        else:
            starts.insert(i + 1, n)
            ends.insert(i + 1, n + 1)

    def __contains__(self, msg_id: object) -> bool:
        if not isinstance(msg_id, str):
            return False
        split = self._split(msg_id)
        if split is None:
            return msg_id in self._other
        prefix, n = split
        found = self._ranges.get(prefix)
        if found is None:
            return False
        starts, ends = found
        i = bisect.bisect_right(starts, n) - 1
        return i >= 0 and n < ends[i]

    def discard(self, msg_id: str) -> None:
        """Forget ``msg_id`` (a request sent again under the same id); cheap only for strings."""
        self._other.pop(msg_id, None)
        split = self._split(msg_id)
        if split is None or msg_id not in self:
            return
        prefix, n = split
        starts, ends = self._ranges[prefix]
        i = bisect.bisect_right(starts, n) - 1
        lo, hi = starts[i], ends[i]
        del starts[i], ends[i]
        for a, b in ((n + 1, hi), (lo, n)):
            if a < b:
                starts.insert(i, a)
                ends.insert(i, b)

    def clear(self) -> None:
        """Forget every id."""
        self._ranges.clear()
        self._other.clear()

    def ranges(self) -> int:
        """How many ranges and strings are held (a measure of the memory used)."""
        return sum(len(s) for s, _ in self._ranges.values()) + len(self._other)


class MemoryStore:
    """Keep records in memory, spilling older collected ones to disk (see the module docstring).

    Parameters
    ----------
    max_collected
        Collected results kept in memory, at most; older ones are spilled.
    max_collected_bytes
        Buffer bytes of collected results kept in memory, at most.
    max_kept_bytes
        Bytes of collected results held in kept shared-memory segments, at most (None: a
        quarter of ``/dev/shm``, at most 4 GiB); beyond it the oldest are copied to the spill
        file and their segments let go.
    retention
        Seconds a finished result is kept, collected or not (None: until purged).
    spill
        Folder for the spill file (a private temporary folder by default); ``False`` drops
        collected results beyond the limits instead (fetching one then says expired).

    Raises
    ------
    ValueError
        If a limit is negative.
    """

    def __init__(
        self,
        max_collected: int = 1_000,
        max_collected_bytes: int = 64 * 1024 * 1024,
        retention: float | None = None,
        spill: str | os.PathLike[str] | bool = True,
        max_kept_bytes: int | None = None,
    ) -> None:
        if (
            max_collected < 0
            or max_collected_bytes < 0
            or (retention is not None and retention < 0)
            or (max_kept_bytes is not None and max_kept_bytes < 0)
        ):
            raise ValueError("store limits must be positive (retention: seconds, or None for no limit)")
        self.max_collected = max_collected
        self.max_collected_bytes = max_collected_bytes
        self.max_kept_bytes = _default_kept_budget() if max_kept_bytes is None else max_kept_bytes
        self.retention = retention
        self._spill_dir = None if spill is True or spill is False else Path(spill)
        self._spill_enabled = spill is not False
        self._spill: _Spill | None = None
        # evicted records not written yet (written in batches)
        self._spilling: dict[str, Record] = {}
        self._records: dict[str, Record] = {}
        self._pending_by_engine: dict[str, dict[str, Record]] = {}
        self._collected: OrderedDict[str, int] = OrderedDict()
        self._collected_bytes = 0
        # finished records in completion order, for retention
        self._finished: OrderedDict[str, float] = OrderedDict()
        self.expired = ExpiredIds()
        # kept shared-memory segments held by records in memory: name -> msg_id
        self._kept: dict[str, str] = {}
        # msg_id -> bytes in kept segments, of collected records (in _collected too)
        self._collected_kept: dict[str, int] = {}
        self._collected_kept_bytes = 0

    def kept_segments(self) -> Container[str]:
        return self._kept

    def _release_segments(self, record: Record) -> None:
        if record.segments:
            for _, name, _ in record.segments:
                self._kept.pop(name, None)

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
        record = self._records.get(msg_id)
        if record is not None:
            return record
        record = self._spilling.get(msg_id)
        if record is not None:
            return record
        return None if self._spill is None else self._spill.get(msg_id)

    def complete(
        self,
        msg_id: str,
        reply_frames: list[Any] | None,
        reply_parts: Any = None,
        segments: list[list[Any]] | None = None,
    ) -> Record | None:
        record = self._records.get(msg_id)
        if record is None or record.done:
            return None
        record.reply_frames = reply_frames
        record.reply_parts = reply_parts
        if segments:
            record.segments = segments
            for _, name, _ in segments:
                self._kept[name] = msg_id
        record.completed = now = time.time()
        pending = self._pending_by_engine.get(record.engine)
        if pending is not None:
            pending.pop(msg_id, None)
            if not pending:
                del self._pending_by_engine[record.engine]
        if self.retention is not None:
            self._finished[msg_id] = now
        return record

    def mark_collected(self, msg_id: str) -> None:
        record = self._records.get(msg_id)
        if record is None or record.collected or not record.done:
            return
        record.collected = True
        record.compact()
        size = record.nbytes()
        self._collected[msg_id] = size
        self._collected_bytes += size
        kept = record.kept_bytes()
        if kept:
            self._collected_kept[msg_id] = kept
            self._collected_kept_bytes += kept
        while self._collected and (
            len(self._collected) > self.max_collected
            or self._collected_bytes > self.max_collected_bytes
            or self._collected_kept_bytes > self.max_kept_bytes
        ):
            old, old_size = self._collected.popitem(last=False)
            self._collected_bytes -= old_size
            self._collected_kept_bytes -= self._collected_kept.pop(old, 0)
            evicted = self._records.pop(old, None)
            self._finished.pop(old, None)
            if evicted is None:
                continue
            if self._spill_enabled:
                self._spilling[old] = evicted
                # a record in segments is written at once: shared memory stays bounded too
                if len(self._spilling) >= SPILL_BATCH or evicted.segments:
                    self._flush_spill()
            else:
                self._release_segments(evicted)
                self.expired.add(old)

    def _flush_spill(self) -> None:
        if not self._spilling:
            return
        if self._spill is None:
            self._spill = _Spill(self._spill_dir)
        records = list(self._spilling.values())
        self._spill.write(records)  # the segments' bytes are copied into the spill file
        for record in records:
            self._release_segments(record)
        self._spilling = {}

    def pending_on(self, engine: str) -> list[Record]:
        return list(self._pending_by_engine.get(engine, {}).values())

    def is_expired(self, msg_id: str) -> bool:
        return msg_id not in self._records and msg_id in self.expired

    def expire(self, now: float | None = None) -> int:
        if self.retention is None:
            return 0
        limit = (time.time() if now is None else now) - self.retention
        n = 0
        self._flush_spill()
        if self._spill is not None:
            for msg_id in self._spill.expire(limit):
                self.expired.add(msg_id)
                n += 1
        while self._finished:
            msg_id, completed = next(iter(self._finished.items()))
            if completed > limit:
                break
            del self._finished[msg_id]
            self._drop(msg_id)
            self.expired.add(msg_id)
            n += 1
        return n

    def _drop(self, msg_id: str) -> None:
        record = self._records.pop(msg_id, None)
        if record is not None:
            self._release_segments(record)
        size = self._collected.pop(msg_id, None)
        if size is not None:
            self._collected_bytes -= size
        self._collected_kept_bytes -= self._collected_kept.pop(msg_id, 0)

    def purge(self, msg_ids: Iterable[str] | None = None, engines: Iterable[str] | None = None) -> int:
        if msg_ids is None and engines is None:
            victims: Sequence[str] = [m for m, r in self._records.items() if r.done]
            self.expired.clear()
        else:
            wanted = set(msg_ids or ())
            engine_set = set(engines or ())
            if engine_set:
                victims = [m for m, r in self._records.items() if r.done and (m in wanted or r.engine in engine_set)]
            else:
                victims = [m for m in wanted if (r := self._records.get(m)) is not None and r.done]
        for msg_id in victims:
            self._drop(msg_id)
            self._finished.pop(msg_id, None)
        n = len(victims)
        self._flush_spill()
        if self._spill is not None:
            n += self._spill.purge(None if msg_ids is None and engines is None else set(msg_ids or ()), engines)
        if msg_ids is None and engines is None:
            # fresh containers: a dict emptied by deletions keeps its allocated table
            self._records = dict(self._records)
            self._collected = OrderedDict(self._collected)
            self._finished = OrderedDict(self._finished)
        return n

    def stats(self) -> dict[str, int]:
        pending = sum(len(p) for p in self._pending_by_engine.values())
        collected = len(self._collected)
        return {
            "pending": pending,
            "uncollected": len(self._records) - pending - collected,
            "collected": collected,
            "collected_bytes": self._collected_bytes,
            "collected_kept_bytes": self._collected_kept_bytes,
            "expired_ranges": self.expired.ranges(),
            "spilled": len(self._spilling) + (0 if self._spill is None else self._spill.count()),
        }

    def close(self) -> None:
        self._spilling = {}
        if self._spill is not None:
            self._spill.close()
            self._spill = None


def _default_kept_budget() -> int:
    """A quarter of ``/dev/shm``, at most ``POOL_MAX_BYTES`` (0 where there is none)."""
    try:
        fs = os.statvfs(SHM_DIR)
    except OSError:
        return 0
    return min(POOL_MAX_BYTES, fs.f_blocks * fs.f_frsize // 4)


def _remove_stale_spills(parent: Path) -> None:
    for entry in parent.glob("spill-*-*"):
        try:
            pid = int(entry.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            continue


#: Evicted collected records written to the spill file at a time.
SPILL_BATCH = 256


class _Spill:
    """Collected results moved out of memory: an SQLite file private to this process.

    No journal and no fsync (it only needs to outlive nothing); the file and its folder
    (``spill-<pid>-*``) are removed by :meth:`close`, and folders that processes killed before
    closing left behind in the same parent are removed when the next spill opens there.
    """

    def __init__(self, folder: Path | None) -> None:
        parent = folder if folder is not None else Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_spills(parent)
        self._dir = Path(tempfile.mkdtemp(prefix=f"spill-{os.getpid()}-", dir=parent))
        self.path = self._dir / "spill.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        log.info("spilling older collected results to %s", self.path)

    def write(self, records: list[Record]) -> None:
        rows = [
            (
                r.msg_id,
                r.channel,
                r.client,
                r.engine,
                r.header if isinstance(r.header, bytes) else json.dumps(r.header).encode(),
                r.submitted,
                None if r.reply_frames is None else _pack_frames(_resolve_segments(r.reply_frames, r.segments)),
                None if r.reply_parts is None else json.dumps(list(r.reply_parts)),
                r.completed,
                1,
            )
            for r in records
        ]
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self._db.execute("COMMIT")

    def get(self, msg_id: str) -> Record | None:
        row = self._db.execute("SELECT * FROM records WHERE msg_id = ?", (msg_id,)).fetchone()
        return None if row is None else _row_record(row)

    def expire(self, limit: float) -> list[str]:
        ids = [m for (m,) in self._db.execute("SELECT msg_id FROM records WHERE completed <= ?", (limit,))]
        if ids:
            self._db.execute("DELETE FROM records WHERE completed <= ?", (limit,))
        return ids

    def purge(self, msg_ids: set[str] | None, engines: Iterable[str] | None) -> int:
        if msg_ids is None and engines is None:
            return int(self._db.execute("DELETE FROM records").rowcount)
        n = 0
        self._db.execute("BEGIN")
        for chunk in _chunks(sorted(msg_ids or ()), 500):
            marks = ",".join("?" * len(chunk))
            n += self._db.execute(f"DELETE FROM records WHERE msg_id IN ({marks})", chunk).rowcount
        for engine in engines or ():
            n += self._db.execute("DELETE FROM records WHERE engine = ?", (engine,)).rowcount
        self._db.execute("COMMIT")
        return n

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)


# -- SQLite ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    msg_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    client BLOB NOT NULL,
    engine TEXT NOT NULL,
    request_header BLOB NOT NULL,
    submitted REAL NOT NULL,
    reply BLOB,
    reply_parts TEXT,
    completed REAL,
    collected INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS records_completed ON records (completed);
CREATE TABLE IF NOT EXISTS expired (msg_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: The schema version written in the ``info`` table; a file of another version is refused.
SCHEMA_VERSION = "1"


def _pack_frames(frames: Sequence[Any]) -> bytes:
    """Frames as one blob: a count, each length (uint64), then the bytes."""
    parts = [memoryview(f.buffer if hasattr(f, "buffer") else f) for f in frames]
    head = struct.pack(f"<I{len(parts)}Q", len(parts), *(p.nbytes for p in parts))
    return b"".join([head, *parts])


def _resolve_segments(frames: list[Any], segments: list[list[Any]] | None) -> list[Any]:
    """``frames`` with the buffers held in kept segments read into them, for SQLite.

    The header loses its ``shm`` references to the segments read. A segment that cannot be
    read (removed outside corral) stays referenced, and fetching the result then says so.
    """
    if not segments:
        return frames
    out = list(frames)
    header = _decode(out[0])
    refs = header.get("shm")
    left = [ref for ref in refs if isinstance(ref, list)] if isinstance(refs, list) else []
    # buffers split into several frames (header["chunks"], docs/protocol.md) shift the frames
    chunks = header.get("chunks")
    counts = chunks if isinstance(chunks, list) and all(type(c) is int for c in chunks) else None
    for ref in segments:
        i, name, size = ref
        try:
            at = 4 + (sum(counts[:i]) if counts is not None else i)
            if counts is not None and counts[i] != 1:
                raise SegmentError(f"buffer {i} is in {counts[i]} frames, not in one empty frame")
            # the name was checked by the hub: corral-<tag>-...
            out[at] = open_kept(name, size, name.split("-")[1])
        except (SegmentError, IndexError) as err:
            log.warning("cannot copy buffer %d of a stored result from shared memory: %s", i, err)
            continue
        left = [r for r in left if r[1:2] != [name]]
    if left:
        header["shm"] = left
    else:
        header.pop("shm", None)
    out[0] = json.dumps(header, separators=(",", ":")).encode()
    return out


def _row_record(row: tuple[Any, ...]) -> Record:
    msg_id, channel, client, engine, header, submitted, reply, parts, completed, collected = row
    record = Record(msg_id, channel, bytes(client), engine, bytes(header), submitted)
    if reply is not None:
        record.reply_frames = list(_unpack_frames(reply))
    elif parts is not None:
        msg_type, content, metadata = json.loads(parts)
        record.reply_parts = (msg_type, content, metadata)
    record.completed = completed
    record.collected = bool(collected)
    return record


def _unpack_frames(blob: bytes) -> list[bytes]:
    (count,) = struct.unpack_from("<I", blob)
    sizes = struct.unpack_from(f"<{count}Q", blob, 4)
    view = memoryview(blob)
    pos = 4 + 8 * count
    out = []
    for size in sizes:
        out.append(bytes(view[pos : pos + size]))
        pos += size
    return out


class SqliteStore:
    """Keep every record in an SQLite database (WAL mode) as well as pending ones in memory.

    Every change is committed as it happens (``synchronous=NORMAL``: a process killed at any
    moment loses nothing committed; only a power loss can lose the last transactions), so a
    controller restarted on the same file serves every result that had reached it.

    Parameters
    ----------
    path
        The database file (made, with its folder, if missing).
    restore
        Reopen the records already in ``path`` (``corral controller --restore``). Records that
        were pending when the previous controller stopped are returned by :meth:`restored_pending`
        so the hub can answer them. Without ``restore``, the file's records are deleted.
    retention
        Seconds a finished result is kept (None: until purged).

    Raises
    ------
    ValueError
        If the file is not a corral result store of this version, or ``retention`` is negative.
    sqlite3.Error
        If the file cannot be opened or written.
    """

    def __init__(self, path: str | os.PathLike[str], *, restore: bool = False, retention: float | None = None) -> None:
        if retention is not None and retention < 0:
            raise ValueError("retention must be positive seconds, or None for no limit")
        self.path = Path(path)
        self.retention = retention
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM info WHERE key = 'schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO info VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise ValueError(
                    f"{self.path} is a corral result store of schema {row[0]}, not {SCHEMA_VERSION}: "
                    "start without --restore to make a new one, or point --db-file elsewhere"
                )
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise ValueError(
                f"{self.path} is not a usable corral result store ({err}): remove it or point --db-file elsewhere"
            ) from None
        except BaseException:
            self._db.close()
            raise
        self._pending: dict[str, Record] = {}
        self._pending_by_engine: dict[str, dict[str, Record]] = {}
        self._restored: list[Record] = []
        if restore:
            rows = self._db.execute(
                "SELECT msg_id, channel, client, engine, request_header, submitted FROM records WHERE completed IS NULL"
            ).fetchall()
            self._restored = [Record(m, ch, bytes(c), e, bytes(h), s) for m, ch, c, e, h, s in rows]
            log.info("restored result store %s (%d pending at the last stop)", self.path, len(rows))
        else:
            self._db.execute("DELETE FROM records")
            self._db.execute("DELETE FROM expired")

    def restored_pending(self) -> list[Record]:
        """Records that had no reply when the previous controller stopped (``restore`` only).

        They are not pending in this store: the hub answers them (their engines are gone) with
        :meth:`complete`, which stores that answer.
        """
        out, self._restored = self._restored, []
        for record in out:
            self._pending[record.msg_id] = record
        return out

    def add_request(self, record: Record) -> None:
        old = self._pending.get(record.msg_id)
        if old is not None:
            by_engine = self._pending_by_engine.get(old.engine)
            if by_engine is not None:
                by_engine.pop(old.msg_id, None)
                if not by_engine:
                    del self._pending_by_engine[old.engine]
        header = record.header if isinstance(record.header, bytes) else json.dumps(record.header).encode()
        self._db.execute(
            "INSERT OR REPLACE INTO records (msg_id, channel, client, engine, request_header, submitted) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (record.msg_id, record.channel, record.client, record.engine, header, record.submitted),
        )
        self._pending[record.msg_id] = record
        self._pending_by_engine.setdefault(record.engine, {})[record.msg_id] = record

    def get(self, msg_id: str) -> Record | None:
        pending = self._pending.get(msg_id)
        if pending is not None:
            return pending
        row = self._db.execute("SELECT * FROM records WHERE msg_id = ?", (msg_id,)).fetchone()
        return None if row is None else _row_record(row)

    def kept_segments(self) -> Container[str]:
        return ()  # the bytes of kept segments are copied into the database as replies arrive

    def complete(
        self,
        msg_id: str,
        reply_frames: list[Any] | None,
        reply_parts: Any = None,
        segments: list[list[Any]] | None = None,
    ) -> Record | None:
        record = self._pending.pop(msg_id, None)
        if record is None:
            return None
        if reply_frames is not None:
            # durable: a restarted controller serves it whatever became of the segments
            reply_frames = _resolve_segments(reply_frames, segments)
        by_engine = self._pending_by_engine.get(record.engine)
        if by_engine is not None:
            by_engine.pop(msg_id, None)
            if not by_engine:
                del self._pending_by_engine[record.engine]
        record.reply_frames = reply_frames
        record.reply_parts = reply_parts
        record.completed = time.time()
        self._db.execute(
            "UPDATE records SET reply = ?, reply_parts = ?, completed = ? WHERE msg_id = ?",
            (
                None if reply_frames is None else _pack_frames(reply_frames),
                None if reply_parts is None else json.dumps(list(reply_parts)),
                record.completed,
                msg_id,
            ),
        )
        return record

    def mark_collected(self, msg_id: str) -> None:
        self._db.execute("UPDATE records SET collected = 1 WHERE msg_id = ?", (msg_id,))

    def pending_on(self, engine: str) -> list[Record]:
        return list(self._pending_by_engine.get(engine, {}).values())

    def is_expired(self, msg_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM expired WHERE msg_id = ?", (msg_id,)).fetchone() is not None

    def expire(self, now: float | None = None) -> int:
        if self.retention is None:
            return 0
        limit = (time.time() if now is None else now) - self.retention
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO expired SELECT msg_id FROM records WHERE completed <= ?", (limit,))
            return self._db.execute("DELETE FROM records WHERE completed <= ?", (limit,)).rowcount

    def _transaction(self) -> Any:
        db = self._db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN")

            def __exit__(self, kind: Any, *rest: Any) -> None:
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Tx()

    def purge(self, msg_ids: Iterable[str] | None = None, engines: Iterable[str] | None = None) -> int:
        with self._transaction():
            if msg_ids is None and engines is None:
                self._db.execute("DELETE FROM expired")
                return self._db.execute("DELETE FROM records WHERE completed IS NOT NULL").rowcount
            n = 0
            for chunk in _chunks(list(msg_ids or ()), 500):
                marks = ",".join("?" * len(chunk))
                n += self._db.execute(
                    f"DELETE FROM records WHERE completed IS NOT NULL AND msg_id IN ({marks})", chunk
                ).rowcount
            for engine in engines or ():
                n += self._db.execute(
                    "DELETE FROM records WHERE completed IS NOT NULL AND engine = ?", (engine,)
                ).rowcount
            return n

    def stats(self) -> dict[str, int]:
        finished, collected = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(collected), 0) FROM records WHERE completed IS NOT NULL"
        ).fetchone()
        return {
            "pending": len(self._pending),
            "uncollected": int(finished) - int(collected),
            "collected": int(collected),
            "collected_bytes": 0,
            "expired_ranges": 0,
        }

    def close(self) -> None:
        self._db.close()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
