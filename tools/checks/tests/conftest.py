"""Load the check scripts (which are not a package) as modules, and build throwaway trees."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import pytest

CHECKS = Path(__file__).resolve().parents[1]
# the check scripts import tools/workspace.py the same way
sys.path.insert(0, str(CHECKS.parent))


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"corral_checks_{name}", CHECKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def layers() -> ModuleType:
    return _load("layers")


@pytest.fixture(scope="session")
def versions() -> ModuleType:
    return _load("versions")


@pytest.fixture(scope="session")
def wheels() -> ModuleType:
    return _load("wheels")


@pytest.fixture
def make_dist(tmp_path: Path) -> Callable[..., Path]:
    """Return ``make(name, deps=[...], files={"wire/__init__.py": "..."}, version="0.1.0")``.

    It writes ``packages/<name>`` under ``tmp_path`` with a pyproject.toml, the given source
    files under ``src/corral/``, and a ``_version.py`` in the first portion; it returns the root.
    """

    def make(
        name: str,
        deps: list[str] | None = None,
        files: Mapping[str, str] | None = None,
        version: str = "0.1.0",
        extras: Mapping[str, list[str]] | None = None,
    ) -> Path:
        pkg = tmp_path / "packages" / name
        files = dict(files or {f"{name.removeprefix('corral-')}/__init__.py": ""})
        first = next(iter(files)).split("/")[0]
        lines = ["[project]", f'name = "{name}"', f"dependencies = {json.dumps(list(deps or []))}"]
        if extras:
            lines += ["[project.optional-dependencies]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in extras.items()]
        lines += ["[tool.hatch.version]", f'path = "src/corral/{first}/_version.py"']
        (pkg / "src" / "corral" / first).mkdir(parents=True)
        (pkg / "pyproject.toml").write_text("\n".join(lines) + "\n")
        (pkg / "src" / "corral" / first / "_version.py").write_text(f'__version__ = "{version}"\n')
        for rel, text in files.items():
            target = pkg / "src" / "corral" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        return tmp_path

    return make
