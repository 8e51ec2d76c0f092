"""Where connection files live, and which cluster ids are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.wire.paths import cluster_record_path, connection_file_path, corral_dir, validate_cluster_id

pytestmark = pytest.mark.timeout(30)


def test_corral_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_DIR", str(tmp_path / "c"))
    assert corral_dir() == tmp_path / "c"
    assert connection_file_path("x1") == tmp_path / "c" / "security" / "corral-x1.json"
    assert cluster_record_path() == tmp_path / "c" / "clusters" / "default.json"
    monkeypatch.delenv("CORRAL_DIR")
    assert corral_dir() == Path.home() / ".corral"


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "-x", "x" * 65, "sp ace"])
def test_unusable_cluster_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid cluster id"):
        validate_cluster_id(bad)


def test_usable_cluster_ids() -> None:
    for ok in ("default", "sweep-2", "A.b_c", "1"):
        assert validate_cluster_id(ok) == ok


def test_private_dir_creates_missing_parents_0700(tmp_path: Path) -> None:
    import stat

    from corral.wire.paths import private_dir

    target = tmp_path / "a" / "b" / "c"
    assert private_dir(target) == target
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
