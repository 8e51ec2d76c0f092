"""The result stores on their own: expiry, retention, purge, and SQLite reopened after a kill."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.hub import ExpiredIds, MemoryStore, Record, SqliteStore

pytestmark = pytest.mark.timeout(60)


def _frames(status: str = "ok", *buffers: bytes) -> list[bytes]:
    header = json.dumps({"msg_type": "apply_reply", "status": status}).encode()
    return [header, b"{}", json.dumps({"status": status}).encode(), b'{"status": "%s"}' % status.encode(), *buffers]


def _record(msg_id: str, engine: str = "e0") -> Record:
    return Record(
        msg_id, "mux", b"client", engine, json.dumps({"msg_id": msg_id, "msg_type": "apply_request"}).encode()
    )


@given(st.sets(st.integers(min_value=0, max_value=300)), st.sets(st.integers(min_value=0, max_value=300)))
def test_expired_ids_hold_exactly_what_was_added(added: set[int], removed: set[int]) -> None:
    ids = ExpiredIds()
    for n in sorted(added, key=lambda x: (x * 7919) % 301):  # out of order on purpose
        ids.add(f"sess_{n}")
    for n in removed:
        ids.discard(f"sess_{n}")
    for n in range(302):
        assert (f"sess_{n}" in ids) == (n in added - removed)
    assert "other_5" not in ids


def test_expired_ids_of_one_session_cost_one_range() -> None:
    ids = ExpiredIds(max_other=2)
    for n in range(100_000):
        ids.add(f"0123456789abcdef0123456789abcdef_{n}")
    assert ids.ranges() == 1
    for name in ("a", "b", "c"):
        ids.add(name)
    assert "a" not in ids, "plain strings beyond max_other are forgotten, oldest first"
    assert "c" in ids


def test_memory_store_retention_drops_old_results_and_says_expired() -> None:
    store = MemoryStore(retention=10.0)
    for i in range(3):
        store.add_request(_record(f"s_{i}"))
    store.complete("s_0", _frames())
    store.complete("s_1", _frames())
    store.mark_collected("s_1")
    now = store.get("s_0").completed  # type: ignore[union-attr]
    assert now is not None
    assert store.expire(now + 5) == 0
    assert store.expire(now + 11) == 2, "collected or not, finished results past retention go"
    assert store.get("s_0") is None
    assert store.is_expired("s_0")
    assert store.is_expired("s_1")
    assert store.get("s_2") is not None, "pending requests never expire"
    assert not store.is_expired("s_2")


def test_memory_store_purge_by_msg_id_and_engine_leaves_pending_ones() -> None:
    store = MemoryStore()
    for i, engine in enumerate(["e0", "e0", "e1", "e1"]):
        store.add_request(_record(f"s_{i}", engine))
    for i in range(3):
        store.complete(f"s_{i}", _frames())
    assert store.purge(["s_0"], None) == 1
    assert store.purge(None, ["e1"]) == 1, "s_3 on e1 is pending and stays"
    assert store.get("s_3") is not None
    assert store.get("s_1") is not None
    assert not store.is_expired("s_0"), "a purged result is forgotten, not expired"


def test_sqlite_store_keeps_every_state_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db" / "results.sqlite"
    store = SqliteStore(path)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for i in range(4):
        store.add_request(_record(f"s_{i}"))
    store.complete("s_0", _frames("ok", b"\x00buffer\xff", b""))
    store.complete("s_1", None, ("apply_reply", {"status": "error", "ename": "EngineError"}, {"status": "error"}))
    store.mark_collected("s_0")
    assert [r.msg_id for r in store.pending_on("e0")] == ["s_2", "s_3"]
    store.close()

    again = SqliteStore(path, restore=True)
    got = again.get("s_0")
    assert got is not None
    assert got.collected
    header, metadata, content, buffers = got.reply()
    assert metadata == {"status": "ok"}
    assert header["status"] == "ok"
    assert content == {"status": "ok"}
    assert buffers == [b"\x00buffer\xff", b""]
    made = again.get("s_1")
    assert made is not None
    assert made.status() == "error"
    assert made.reply()[2]["ename"] == "EngineError"
    pending = again.restored_pending()
    assert sorted(r.msg_id for r in pending) == ["s_2", "s_3"]
    assert pending[0].request_header["msg_type"] == "apply_request"
    assert again.complete("s_2", _frames("error")) is not None
    assert again.get("s_2").status() == "error"  # type: ignore[union-attr]
    assert again.stats()["uncollected"] == 2
    again.close()

    fresh = SqliteStore(path)  # without restore: a new, empty store
    assert fresh.get("s_0") is None
    fresh.close()


def test_sqlite_store_retention_and_purge(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.sqlite", retention=10.0)
    for i in range(3):
        store.add_request(_record(f"s_{i}"))
        store.complete(f"s_{i}", _frames())
    now = store.get("s_0").completed  # type: ignore[union-attr]
    assert now is not None
    assert store.expire(now + 11) == 3
    assert store.is_expired("s_1")
    store.add_request(_record("t_0"))
    store.complete("t_0", _frames())
    assert store.purge(["t_0"], None) == 1
    assert store.get("t_0") is None
    assert not store.is_expired("t_0")
    assert store.purge() == 0
    assert not store.is_expired("s_1"), "purging everything forgets expiries too"
    store.close()


def test_sqlite_store_refuses_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a usable corral result store"):
        SqliteStore(path, restore=True)
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.executescript(
        "CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO info VALUES ('schema', '99');"
    )
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="schema 99"):
        SqliteStore(other, restore=True)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_process_killed_mid_stream_loses_nothing_it_stored(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite"
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from corral.hub import Record, SqliteStore
        store = SqliteStore({str(path)!r})
        for i in range(10_000_000):
            m = f"s_{{i}}"
            store.add_request(Record(m, "mux", b"c", "e0", b'{{"msg_id": "x"}}'))
            store.complete(m, [b"{{}}", b"{{}}", b"{{}}", b"{{}}", str(i).encode()])
            if i == 200:
                print("stored", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "stored"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    store = SqliteStore(path, restore=True)
    completed = store.stats()["uncollected"]
    assert completed > 200
    for i in range(completed):
        record = store.get(f"s_{i}")
        assert record is not None
        assert record.reply()[3] == [str(i).encode()]
    store.close()


# -- results whose buffers are in kept shared-memory segments -------------------------------------

KEY = b"store-test-key-" * 2


def _kept_reply(size: int = 2 << 20) -> tuple[list[bytes], list[list[object]], bytes]:
    """A reply whose buffer 0 is in a real kept segment in /dev/shm (as an engine sends it)."""
    from corral.wire.shm import SharedMemory

    shm = SharedMemory(KEY)
    data = os.urandom(size)
    name = shm.put(data, os.getpid(), kept=True)
    assert name is not None
    assert "-kept-" in name
    refs: list[list[object]] = [[0, name, size]]
    header = json.dumps({"msg_type": "apply_reply", "status": "ok", "shm": refs}).encode()
    return [header, b"{}", b'{"status": "ok"}', b'{"status": "ok"}', b"", b"small"], refs, data


def _on_disk(name: str) -> bool:
    return os.path.exists(os.path.join("/dev/shm", name))


@pytest.fixture
def kept_cleanup() -> object:
    """Remove this test's kept segments, whatever happens."""
    from corral.wire.shm import sweep_segments

    yield None
    sweep_segments(KEY, everything=True)


needs_shm = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")


@needs_shm
def test_memory_store_owns_kept_segments_budgets_them_and_copies_them_when_spilling(
    tmp_path: Path, kept_cleanup: object
) -> None:
    store = MemoryStore(max_kept_bytes=3 << 20, spill=tmp_path)
    frames, refs, data = _kept_reply()
    name = str(refs[0][1])
    store.add_request(_record("s_0"))
    store.complete("s_0", frames, None, refs)
    assert name in store.kept_segments()
    record = store.get("s_0")
    assert record is not None
    assert record.nbytes() == len(b"small")
    assert record.kept_bytes() == len(data)
    store.mark_collected("s_0")
    assert store.stats()["collected_bytes"] == len(b"small")
    assert store.stats()["collected_kept_bytes"] == len(data)
    assert name in store.kept_segments(), "2 MiB collected is under the 3 MiB limit: still in memory"

    # a second such result pushes the first out to the spill file: its bytes are copied there
    frames2, refs2, _ = _kept_reply()
    store.add_request(_record("s_1"))
    store.complete("s_1", frames2, None, refs2)
    store.mark_collected("s_1")
    assert name not in store.kept_segments()
    assert str(refs2[0][1]) in store.kept_segments()
    spilled = store.get("s_0")
    assert spilled is not None
    header, _, _, buffers = spilled.reply()
    assert "shm" not in header
    assert bytes(buffers[0]) == data
    assert bytes(buffers[1]) == b"small"
    assert _on_disk(name), "the store only lets go: the hub's sweep removes it after its grace"

    assert store.purge(["s_1"]) == 1
    assert store.kept_segments() == {}
    assert store.stats()["collected_kept_bytes"] == 0
    store.close()


@needs_shm
def test_memory_store_releases_kept_segments_on_expiry_and_purge_all(kept_cleanup: object) -> None:
    store = MemoryStore(retention=10.0)
    names = []
    for i in range(2):
        frames, refs, _ = _kept_reply(1 << 20)
        store.add_request(_record(f"s_{i}"))
        store.complete(f"s_{i}", frames, None, refs)
        names.append(refs[0][1])
    assert sorted(store.kept_segments()) == sorted(names)
    first = store.get("s_0")
    assert first is not None
    assert first.completed is not None
    store._finished["s_1"] = first.completed + 20  # finished later
    assert store.expire(first.completed + 11) == 1
    assert list(store.kept_segments()) == [names[1]]
    store.purge()
    assert store.kept_segments() == {}


@needs_shm
def test_sqlite_store_copies_kept_segments_as_the_reply_arrives(tmp_path: Path, kept_cleanup: object) -> None:
    from corral.wire.shm import sweep_segments

    path = tmp_path / "results.sqlite"
    store = SqliteStore(path)
    frames, refs, data = _kept_reply()
    store.add_request(_record("s_0"))
    store.complete("s_0", frames, None, refs)
    assert store.kept_segments() == ()
    store.close()
    # the segment is gone (a controller restarted after the host's /dev/shm was cleared)
    assert sweep_segments(KEY, everything=True) == 1

    again = SqliteStore(path, restore=True)
    record = again.get("s_0")
    assert record is not None
    header, _, _, buffers = record.reply()
    assert "shm" not in header
    assert buffers == [data, b"small"]
    again.close()


@needs_shm
def test_a_missing_kept_segment_stays_referenced_and_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from corral.wire.shm import sweep_segments

    store = SqliteStore(tmp_path / "results.sqlite")
    frames, refs, _ = _kept_reply()
    sweep_segments(KEY, everything=True)  # removed outside corral before the hub could copy it
    store.add_request(_record("s_0"))
    store.complete("s_0", frames, None, refs)
    record = store.get("s_0")
    assert record is not None
    header = record.reply()[0]
    assert header["shm"] == refs, "still referenced: fetching it says the segment is gone"
    assert "cannot copy buffer 0 of a stored result" in caplog.text
    store.close()


def test_memory_store_refuses_a_negative_kept_budget() -> None:
    with pytest.raises(ValueError, match="store limits must be positive"):
        MemoryStore(max_kept_bytes=-1)


@needs_shm
def test_a_kept_segment_after_a_buffer_split_into_frames_is_copied_in_its_place(
    tmp_path: Path, kept_cleanup: object
) -> None:
    frames, refs, data = _kept_reply()
    refs[0][0] = 1  # buffer 0 came in two frames (header chunks), buffer 1 is the segment
    header = json.dumps({"msg_type": "apply_reply", "status": "ok", "shm": refs, "chunks": [2, 1]}).encode()
    frames = [header, *frames[1:4], b"ab", b"cd", b""]
    store = SqliteStore(tmp_path / "results.sqlite")
    store.add_request(_record("s_0"))
    store.complete("s_0", frames, None, refs)
    record = store.get("s_0")
    assert record is not None
    header_out, _, _, buffers = record.reply()
    assert "shm" not in header_out
    assert [bytes(b) for b in buffers] == [b"abcd", data]
    store.close()
