"""Read the distributions in ``packages/``: names, sibling dependencies, portions, versions.

The one place the repository tools (``tools/install_closure.py``, ``tools/checks/*``) learn
what the monorepo holds, straight from each ``packages/<dist>/pyproject.toml``. Standard library
only: ``install_closure.py`` runs it in a bare virtual environment that has nothing but pip.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tools run on the Python that runs tox (3.11+)
    raise SystemExit("the corral repository tools need Python 3.11+ (tomllib)")

__all__ = [
    "ROOT",
    "Distribution",
    "WorkspaceError",
    "closure",
    "load",
    "normalize",
    "requirement_name",
]

#: The repository root (this file is ``tools/workspace.py``).
ROOT = Path(__file__).resolve().parents[1]

# PEP 508: a requirement starts with its project name.
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


class WorkspaceError(Exception):
    """A ``pyproject.toml`` in ``packages/`` lacks something the tools need; the message names it."""


def normalize(name: str) -> str:
    """Return the PEP 503 normalized form of a project name (``Corral_Wire`` -> ``corral-wire``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """Return the normalized project name a PEP 508 requirement string asks for.

    Raises
    ------
    WorkspaceError
        If the string does not start with a project name.
    """
    match = _NAME.match(requirement)
    if match is None:
        raise WorkspaceError(f"cannot read a project name from the requirement {requirement!r}")
    return normalize(match.group(1))


@dataclass(frozen=True)
class Distribution:
    """One distribution of the monorepo, as its ``pyproject.toml`` and ``src/`` describe it."""

    #: normalized project name, e.g. ``corral-wire``
    name: str
    #: ``packages/<dist>``
    path: Path
    #: ``[project] dependencies``, as written
    requirements: tuple[str, ...]
    #: ``[project.optional-dependencies]``, as written
    extras: Mapping[str, tuple[str, ...]]
    #: the file ``[tool.hatch.version] path`` names
    version_file: Path
    #: the namespace portions under ``src/corral/`` (``("wire",)``; the meta-package has three)
    portions: tuple[str, ...]

    @property
    def src(self) -> Path:
        """The ``src`` directory, the root of this distribution's part of the namespace."""
        return self.path / "src"

    @property
    def version(self) -> str:
        """The ``__version__`` string assigned in :attr:`version_file`.

        Raises
        ------
        WorkspaceError
            If the file does not assign a string literal to ``__version__``.
        """
        tree = ast.parse(self.version_file.read_text(encoding="utf-8"), filename=str(self.version_file))
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                return node.value.value
        raise WorkspaceError(f'{self.version_file}: no `__version__ = "..."` string assignment')

    def sibling_requirements(self, names: Iterable[str], *, extras: bool = False) -> list[str]:
        """Return the requirement strings that name a distribution in ``names``.

        With ``extras=True`` the optional dependencies are included too.
        """
        wanted = set(names)
        reqs = list(self.requirements)
        if extras:
            reqs += [r for group in self.extras.values() for r in group]
        return [r for r in reqs if requirement_name(r) in wanted]


def _load_one(path: Path) -> Distribution:
    pyproject = path / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        project = data["project"]
        name = normalize(project["name"])
        version_path = data["tool"]["hatch"]["version"]["path"]
    except KeyError as err:
        raise WorkspaceError(f"{pyproject}: the key {err.args[0]!r} is missing") from None
    except tomllib.TOMLDecodeError as err:
        raise WorkspaceError(f"{pyproject}: not valid TOML: {err}") from None
    version_file = path / version_path
    if not version_file.is_file():
        raise WorkspaceError(f"{pyproject}: [tool.hatch.version] path {version_path!r} does not exist")
    namespace = path / "src" / "corral"
    portions = tuple(sorted(p.name for p in namespace.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))))
    return Distribution(
        name=name,
        path=path,
        requirements=tuple(project.get("dependencies", ())),
        extras={k: tuple(v) for k, v in project.get("optional-dependencies", {}).items()},
        version_file=version_file,
        portions=portions,
    )


def load(root: Path = ROOT) -> dict[str, Distribution]:
    """Return every distribution under ``root/packages``, by normalized name.

    Raises
    ------
    WorkspaceError
        If a ``pyproject.toml`` is unreadable or lacks ``[project] name`` or
        ``[tool.hatch.version] path``, or two folders claim one name.
    """
    dists: dict[str, Distribution] = {}
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        dist = _load_one(pyproject.parent)
        if dist.name in dists:
            raise WorkspaceError(f"{dists[dist.name].path} and {dist.path} are both named {dist.name!r}")
        dists[dist.name] = dist
    if not dists:
        raise WorkspaceError(f"no packages/*/pyproject.toml under {root}")
    return dists


def closure(dists: Mapping[str, Distribution], names: Iterable[str]) -> list[str]:
    """Return ``names`` and every sibling they depend on (``[project] dependencies`` only).

    The list is in dependency order: a distribution comes after everything it depends on.

    Raises
    ------
    WorkspaceError
        If a name is not a distribution of the workspace, or the dependencies form a cycle.
    """
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise WorkspaceError(f"sibling dependencies form a cycle: {cycle}")
        if name not in dists:
            raise WorkspaceError(f"{name!r} is not a distribution in packages/ (known: {', '.join(sorted(dists))})")
        visiting.append(name)
        for req in dists[name].sibling_requirements(dists):
            visit(requirement_name(req))
        visiting.pop()
        order.append(name)

    for name in names:
        visit(normalize(name))
    return order
