#!/usr/bin/env python
"""Check that sibling requirements are ranges that admit the in-repo versions.

Usage::

    python tools/checks/versions.py [--root DIR]

For every distribution in ``packages/``, every requirement on a sibling (in ``dependencies``
or an extra) must

- not pin it exactly (``==`` or ``===``): siblings are released independently;
- have a lower and an upper bound (``corral-wire>=0.1,<0.2``), so a breaking release of the
  sibling is not picked up unseen;
- admit the version in the sibling's ``_version.py``, or an install from the repository fails.

Each ``_version.py`` must hold a valid PEP 440 version. Problems are printed one a line, naming
the file; the exit status is 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workspace import ROOT, WorkspaceError, load, normalize

__all__ = ["main", "problems"]

_LOWER = {">=", ">", "~=", "=="}
_UPPER = {"<", "<=", "~=", "=="}


def problems(root: Path) -> list[str]:
    """Return one line per version problem in the tree at ``root`` (empty when it is clean).

    Raises
    ------
    WorkspaceError
        If a ``pyproject.toml`` under ``root/packages`` cannot be read.
    """
    dists = load(root)
    found: list[str] = []
    versions: dict[str, Version] = {}
    for name, dist in dists.items():
        where = dist.version_file.relative_to(root)
        try:
            versions[name] = Version(dist.version)
        except (InvalidVersion, WorkspaceError) as err:
            found.append(f"{where}: {err}")
    for name, dist in sorted(dists.items()):
        where = (dist.path / "pyproject.toml").relative_to(root)
        for text in dist.sibling_requirements(dists, extras=True):
            try:
                req = Requirement(text)
            except InvalidRequirement as err:
                found.append(f"{where}: {name} requires {text!r}, which is not a valid requirement: {err}")
                continue
            sibling = normalize(req.name)
            ops = {spec.operator for spec in req.specifier}
            if ops & {"==", "==="}:
                found.append(f"{where}: {name} pins {text!r} exactly; use a range such as '{sibling}>=X.Y,<X.(Y+1)'")
            elif not (ops & _LOWER and ops & _UPPER):
                found.append(f"{where}: {name} requires {text!r} without both a lower and an upper bound")
            version = versions.get(sibling)
            if version is not None and not req.specifier.contains(version, prereleases=True):
                found.append(
                    f"{where}: {name} requires {text!r}, which does not admit the in-repo {sibling} {version} "
                    f"({dists[sibling].version_file.relative_to(root)})"
                )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (1 when there are problems)."""
    parser = argparse.ArgumentParser(description="Check sibling requirement ranges against in-repo versions.")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this one)")
    args = parser.parse_args(argv)
    try:
        found = problems(args.root.resolve())
    except WorkspaceError as err:
        print(f"versions: {err}", file=sys.stderr)
        return 2
    for line in found:
        print(line)
    if found:
        print(f"versions: {len(found)} problem(s)", file=sys.stderr)
        return 1
    print("versions: every sibling requirement is a range admitting the in-repo version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
