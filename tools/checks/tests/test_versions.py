"""versions.py accepts ranges that admit the in-repo version and rejects everything else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.timeout(60)

MakeDist = Callable[..., Path]  # the make_dist fixture of conftest.py


def test_the_repository_is_clean(versions: ModuleType) -> None:
    assert versions.problems(Path(__file__).resolve().parents[3]) == []


@pytest.mark.parametrize(
    ("requirement", "complaint"),
    [
        ("corral-wire>=0.1,<0.2", None),
        ("corral_wire ~= 0.1.0", None),
        ("corral-wire>=0.1,<0.2; python_version >= '3.10'", None),
        ("corral-wire==0.1.0", "pins"),
        ("corral-wire===0.1.0", "pins"),
        ("corral-wire>=0.1", "without both a lower and an upper bound"),
        ("corral-wire", "without both a lower and an upper bound"),
        ("corral-wire>=0.2,<0.3", "does not admit the in-repo corral-wire 0.1.0"),
    ],
)
def test_sibling_requirements(
    versions: ModuleType, make_dist: MakeDist, requirement: str, complaint: str | None
) -> None:
    make_dist("corral-wire", version="0.1.0")
    root = make_dist("corral-engine", [requirement, "pyzmq==25.1.0"])
    found = versions.problems(root)
    if complaint is None:
        assert found == []
    else:
        assert len(found) == 1, found
        assert complaint in found[0]
        assert "packages/corral-engine/pyproject.toml" in found[0]


def test_extras_are_checked_too(versions: ModuleType, make_dist: MakeDist) -> None:
    make_dist("corral-magics", version="0.3.0")
    root = make_dist("corral", extras={"magics": ["corral-magics>=0.1,<0.2"]}, files={"cli/__init__.py": ""})
    [found] = versions.problems(root)
    assert "does not admit the in-repo corral-magics 0.3.0" in found


def test_invalid_version_is_reported(versions: ModuleType, make_dist: MakeDist) -> None:
    root = make_dist("corral-wire", version="not a version")
    [found] = versions.problems(root)
    assert "_version.py" in found
    assert versions.main(["--root", str(root)]) == 1
