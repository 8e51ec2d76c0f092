"""Connecting: where the connection file comes from, the first handshake, closing cleanly."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from corral.client import Client, ConnectionFileError, CorralError, TimeoutError  # noqa: A004
from corral.wire import read_connection_file, write_connection_file
from corral.wire.connection import channel_url
from corral.wire.paths import connection_file_path
from corral.wire.testing import temp_connection_file

pytestmark = pytest.mark.timeout(30)


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "corral-client-io"]


def test_connects_from_a_path_and_learns_the_engines(cluster) -> None:
    with Client(cluster.path, timeout=5) as rc:
        assert rc.ids == [0, 1, 2]
        assert len(rc) == 3
        assert [q.msg_type for q in cluster.queries] == ["connection_request"]
        assert "3 engines" in repr(rc)
    assert "closed" in repr(rc)


def test_connects_from_connection_info_already_read(cluster) -> None:
    with Client(read_connection_file(cluster.path), timeout=5) as rc:
        assert rc.ids == [0, 1, 2]


def test_connects_by_cluster_id(cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_DIR", str(tmp_path / "corral-home"))
    write_connection_file(connection_file_path("sweep-2"), cluster.info)
    with Client(cluster_id="sweep-2", timeout=5) as rc:
        assert rc.ids == [0, 1, 2]


def test_default_cluster_without_a_file_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_DIR", str(tmp_path))
    with pytest.raises(ConnectionFileError, match="corral start"):
        Client()
    with pytest.raises(ConnectionFileError, match="no connection file"):
        Client(cluster_id="nope")
    assert not io_threads()


def test_path_and_cluster_id_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        Client(tmp_path / "x.json", cluster_id="x")


def test_unsafe_or_broken_connection_files_are_refused(tmp_path: Path) -> None:
    path, _ = temp_connection_file(tmp_path)
    os.chmod(path, 0o644)
    with pytest.raises(ConnectionFileError, match="chmod 600"):
        Client(path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "1.0"}))
    os.chmod(bad, 0o600)
    with pytest.raises(ConnectionFileError, match="missing"):
        Client(bad)
    with pytest.raises(ConnectionFileError):
        Client({"version": "1.0"})


def test_no_controller_times_out_naming_the_address(tmp_path: Path) -> None:
    path, info = temp_connection_file(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        Client(path, timeout=0.3)
    assert time.monotonic() - t0 < 5
    assert channel_url(info, "registration") in str(caught.value)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, CorralError)
    assert not io_threads()


def test_forged_notifications_are_dropped_and_named_in_timeouts(rc: Client, cluster) -> None:
    from corral.wire import Session

    forger = Session(b"x" * 32, scheme=cluster.info["signature_scheme"])
    cluster.sync(forger.send, cluster.sockets["notification"], "engine_registered", {"id": 9, "uuid": "f" * 32})
    deadline = time.monotonic() + 10
    while not rc.session.rejections:
        assert time.monotonic() < deadline
        rc.spin()
    assert rc.ids == [0, 1, 2]
    assert rc.session.rejections[("notification", "bad_signature")] == 1
    cluster.answer_connection = False
    with pytest.raises(TimeoutError, match="1 bad_signature"):
        rc._query("connection_request", {}, timeout=0.05)


def test_the_gate_refuses_a_client_with_another_key(cluster) -> None:
    info = dict(cluster.info)
    info["key"] = "ab" * 32
    with pytest.raises(TimeoutError, match="refuses clients without its key"):
        Client(info, timeout=0.3)
    assert not [q for q in cluster.queries if q.msg_type == "connection_request"]
    assert not io_threads()


def test_a_silent_controller_times_out_too(cluster) -> None:
    cluster.answer_connection = False
    with pytest.raises(TimeoutError, match="did not answer"):
        Client(cluster.path, timeout=0.3)


def test_close_stops_the_io_thread_and_is_idempotent(cluster) -> None:
    rc = Client(cluster.path, timeout=5)
    assert len(io_threads()) == 1
    rc.close()
    assert not io_threads()
    rc.close()
    with pytest.raises(CorralError, match="closed"):
        rc[:].apply_async(abs, -1)
    with pytest.raises(CorralError, match="closed"):
        rc.spin()


def test_closing_fails_pending_results_instead_of_hanging(cluster) -> None:
    cluster.engines[0].namespace["gate"] = gate = threading.Event()
    try:
        rc = Client(cluster.path, timeout=5)
        ar = rc[0].execute("gate.wait(10)")
        rc.close()
        with pytest.raises(CorralError, match="closed"):
            ar.get(5)
        assert ar.ready()
    finally:
        gate.set()


def test_several_clients_share_nothing(cluster) -> None:
    with Client(cluster.path, timeout=5) as a, Client(cluster.path, timeout=5) as b:
        assert a.session.session != b.session.session
        assert a[0].apply_sync(abs, -1) == 1
        assert b[1].apply_sync(abs, -2) == 2
        assert len(io_threads()) == 2
        assert not set(a.history) & set(b.history)
    assert not io_threads()


def test_a_forgotten_client_stops_its_thread_when_collected(cluster) -> None:
    import gc

    rc = Client(cluster.path, timeout=5)
    del rc
    gc.collect()
    deadline = time.monotonic() + 5
    while io_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not io_threads()
