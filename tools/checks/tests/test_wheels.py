"""wheels.py finds every way a wheel can break the namespace or disagree with the repository."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from workspace import Distribution, load

pytestmark = pytest.mark.timeout(60)

MakeDist = Callable[..., Path]  # the make_dist fixture of conftest.py

GOOD = {
    "corral/wire/__init__.py": "",
    "corral/wire/_version.py": "",
    "corral/wire/py.typed": "",
}


def _wheel(tmp_path: Path, files: dict[str, str], version: str = "0.1.0", name: str = "corral-wire") -> Path:
    path = tmp_path / f"corral_wire-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
        info = f"corral_wire-{version}.dist-info"
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.3\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def wire(make_dist: MakeDist) -> Distribution:
    return load(make_dist("corral-wire"))["corral-wire"]


def test_good_wheel_passes(wheels: ModuleType, wire: Distribution, tmp_path: Path) -> None:
    assert wheels.check_wheel(_wheel(tmp_path, GOOD), wire) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"corral/__init__.py": ""}, "ships corral/__init__.py"),
        ({"corral/client/__init__.py": ""}, "ships portions ['client', 'wire'], expected ['wire']"),
        ({"tests/test_x.py": ""}, "ships files outside corral/: ['tests']"),
        ({"corral/wire/py.typed": None}, "corral/wire/ has no py.typed"),
    ],
)
def test_broken_wheels_are_reported(
    wheels: ModuleType, wire: Distribution, tmp_path: Path, change: dict[str, str | None], complaint: str
) -> None:
    files = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    [found] = wheels.check_wheel(_wheel(tmp_path, files), wire)
    assert complaint in found


def test_metadata_must_match_the_repository(wheels: ModuleType, wire: Distribution, tmp_path: Path) -> None:
    found = wheels.check_wheel(_wheel(tmp_path, GOOD, version="0.2.0", name="corral-wyre"), wire)
    assert len(found) == 2, found
    assert "METADATA Name is 'corral-wyre'" in found[0]
    assert "METADATA Version is '0.2.0', but _version.py of corral-wire says '0.1.0'" in found[1]
