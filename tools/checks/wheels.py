#!/usr/bin/env python
"""Build every distribution's wheel and check what is inside.

Usage::

    python tools/checks/wheels.py [--keep DIR]

Each wheel must

- ship no ``corral/__init__.py`` (``corral`` is a PEP 420 namespace shared by all of them);
- ship exactly the portions ``layout.PORTIONS`` names, each with its ``py.typed``, and nothing
  outside ``corral/`` but its ``.dist-info``;
- carry the distribution's name, and the version of its ``_version.py``, in ``METADATA``.

Wheels are built with ``pip wheel --no-deps`` (the build backend in an isolated environment,
as a user's pip would) into a temporary folder, or into ``--keep DIR`` to look at them after.
"""

from __future__ import annotations

import argparse
import email.parser
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from install_closure import build_wheels
from layout import PORTIONS
from workspace import Distribution, WorkspaceError, load, normalize

__all__ = ["check_wheel", "main"]


def check_wheel(wheel: Path, dist: Distribution) -> list[str]:
    """Return what is wrong with ``wheel`` as the wheel of ``dist`` (empty when nothing is)."""
    found = []
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info_dirs = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        if len(info_dirs) != 1:
            return [f"{wheel.name}: expected one .dist-info folder, found {sorted(info_dirs)}"]
        info = info_dirs.pop()
        metadata = email.parser.HeaderParser().parsestr(zf.read(f"{info}/METADATA").decode("utf-8"))
    if normalize(metadata["Name"] or "") != dist.name:
        found.append(f"{wheel.name}: METADATA Name is {metadata['Name']!r}, expected {dist.name!r}")
    if metadata["Version"] != dist.version:
        found.append(
            f"{wheel.name}: METADATA Version is {metadata['Version']!r}, but {dist.version_file.name} "
            f"of {dist.name} says {dist.version!r}"
        )
    if "corral/__init__.py" in names:
        found.append(f"{wheel.name}: ships corral/__init__.py, which breaks the shared corral namespace")
    outside = sorted({n.split("/")[0] for n in names} - {"corral", info})
    if outside:
        found.append(f"{wheel.name}: ships files outside corral/: {outside}")
    portions = {n.split("/")[1] for n in names if n.startswith("corral/") and n.count("/") >= 2}
    expected = PORTIONS.get(dist.name, frozenset())
    if portions != expected:
        found.append(f"{wheel.name}: ships portions {sorted(portions)}, expected {sorted(expected)}")
    for portion in sorted(portions & expected):
        if f"corral/{portion}/py.typed" not in names:
            found.append(f"{wheel.name}: corral/{portion}/ has no py.typed")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (1 when a wheel is wrong)."""
    parser = argparse.ArgumentParser(description="Build every corral wheel and check its contents.")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build into DIR (emptied first) and keep the wheels")
    args = parser.parse_args(argv)
    try:
        dists = load()
    except WorkspaceError as err:
        print(f"wheels: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        outdir = args.keep.resolve() if args.keep else Path(tmp) / "wheels"
        wheels = build_wheels([d.path for d in dists.values()], outdir)
        by_name = {normalize(w.name.split("-")[0]): w for w in wheels}
        found = []
        for name, dist in sorted(dists.items()):
            wheel = by_name.get(name)
            if wheel is None:
                found.append(f"{dist.path.name}: no wheel was built (got {[w.name for w in wheels]})")
                continue
            problems = check_wheel(wheel, dist)
            found += problems
            print(f"{'FAIL' if problems else 'ok  '} {wheel.name}")
    for line in found:
        print(line)
    if found:
        print(f"wheels: {len(found)} problem(s)", file=sys.stderr)
        return 1
    print(f"wheels: all {len(dists)} wheels are well formed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
