"""Connection files: written safely, read with checks that say what is wrong and what to do."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from corral.wire import (
    ConnectionFileError,
    channel_url,
    new_connection_info,
    read_connection_file,
    write_connection_file,
)
from corral.wire.testing import temp_connection_file

pytestmark = pytest.mark.timeout(30)


def info(**kw: Any) -> Any:
    return new_connection_info({"registration": 5555, "mux": 5556}, cluster_id="c1", **kw)


def test_written_file_is_private_and_round_trips(tmp_path: Path) -> None:
    target = tmp_path / "security" / "corral-c1.json"
    original = info()
    write_connection_file(target, original)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert read_connection_file(target) == original
    assert len(bytes.fromhex(original["key"])) == 32
    assert original["ip"] == "127.0.0.1"
    assert original["signature_scheme"] == "blake3-gmac-v1"
    assert [p.name for p in target.parent.iterdir()] == ["corral-c1.json"]  # no temp file left


def test_every_cluster_gets_a_new_key() -> None:
    assert len({info()["key"] for _ in range(50)}) == 50


def test_rewrite_is_atomic_replacement(tmp_path: Path) -> None:
    target = tmp_path / "c.json"
    write_connection_file(target, info())
    inode = target.stat().st_ino
    second = info()
    write_connection_file(target, second)
    assert read_connection_file(target)["key"] == second["key"]
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place


def test_missing_file_says_how_to_start_a_cluster(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFileError, match="corral start"):
        read_connection_file(tmp_path / "nope.json")


def test_group_or_world_readable_file_is_refused(tmp_path: Path) -> None:
    target = write_connection_file(tmp_path / "c.json", info())
    for mode in (0o640, 0o604, 0o644):
        os.chmod(target, mode)
        with pytest.raises(ConnectionFileError, match=r"accessible to group or others.*chmod 600"):
            read_connection_file(target)
    os.chmod(target, 0o600)
    read_connection_file(target)


def test_corrupt_file_says_it_is_corrupt(tmp_path: Path) -> None:
    target = tmp_path / "c.json"
    target.write_text('{"version": "1.0", ')
    os.chmod(target, 0o600)
    with pytest.raises(ConnectionFileError, match="corrupt"):
        read_connection_file(target)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("key"), "'key' is missing"),
        (lambda d: d.update(ports={"mux": 70000}), "between 1 and 65535"),
        (lambda d: d.update(ports={"mux": "x"}), "between 1 and 65535"),
        (lambda d: d.update(key="zz"), "not hex"),
        (lambda d: d.update(key="ab"), "at least 128"),
        (lambda d: d.update(transport="udp"), "transport"),
        (lambda d: d.update(signature_scheme="md5"), "signature_scheme 'md5' is unknown"),
        (lambda d: d.update(version="9.0"), "major versions differ"),
        (lambda d: d.update(ip=""), "not an address"),
        (lambda d: d.update(ports=[]), "should be a dict"),
    ],
)
def test_invalid_fields_are_named(tmp_path: Path, change: Any, message: str) -> None:
    data = dict(info())
    change(data)
    target = tmp_path / "c.json"
    target.write_text(json.dumps(data))
    os.chmod(target, 0o600)
    with pytest.raises(ConnectionFileError, match=message):
        read_connection_file(target)


def test_json_that_is_not_an_object(tmp_path: Path) -> None:
    target = tmp_path / "c.json"
    target.write_text("[1, 2]")
    os.chmod(target, 0o600)
    with pytest.raises(ConnectionFileError, match="not an object"):
        read_connection_file(target)


def test_channel_urls(tmp_path: Path) -> None:
    path, conn = temp_connection_file(tmp_path)
    assert channel_url(conn, "mux") == f"tcp://127.0.0.1:{conn['ports']['mux']}"
    v6 = info(ip="::1")
    assert channel_url(v6, "mux") == "tcp://[::1]:5556"
    with pytest.raises(ConnectionFileError, match="no port for channel 'task'"):
        channel_url(info(), "task")
    assert read_connection_file(path) == conn
