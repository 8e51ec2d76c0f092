"""The controller's result store options, with a real client fetching from a restarted controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.client import Client
from corral.cluster import Cluster
from corral.cluster.controller import Controller
from corral.hub import MemoryStore, SqliteStore

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _corral_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of these tests goes to ~/.corral."""
    monkeypatch.setenv("CORRAL_DIR", str(tmp_path / "corral"))


def test_bad_store_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown result store 'redis'"):
        Controller(store="redis")
    with pytest.raises(ValueError, match="retention"):
        Controller(retention=0)
    with pytest.raises(ValueError, match="unknown result store"):
        Cluster(n=0, store="redis")
    with pytest.raises(ValueError, match="retention"):
        Cluster(n=0, retention=-1)
    assert Cluster(n=0, restore=True).store == "sqlite", "restore implies the SQLite store"


def test_a_restored_controller_serves_what_the_last_one_stored(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    first = Controller(cluster_id="st", connection_file=tmp_path / "c.json", store="sqlite", db_file=db)
    first.start_in_thread()
    try:
        assert isinstance(first.hub.store, SqliteStore)  # type: ignore[union-attr]
        with Client(tmp_path / "c.json") as rc:
            # no engines: a hub query still works, and a purge of nothing removes nothing
            assert rc.result_status(["x_1"])["unknown"] == ["x_1"]
            assert rc.purge_hub_results("all") == 0
    finally:
        first.close()
    assert db.exists()
    second = Controller(cluster_id="st", connection_file=tmp_path / "c2.json", restore=True, db_file=db)
    second.start_in_thread()
    try:
        assert second.store_kind == "sqlite"
    finally:
        second.close()
    mem = Controller(cluster_id="st", connection_file=tmp_path / "c3.json")
    mem.start_in_thread()
    try:
        assert isinstance(mem.hub.store, MemoryStore)  # type: ignore[union-attr]
    finally:
        mem.close()
