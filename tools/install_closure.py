#!/usr/bin/env python
"""Install corral distributions with the siblings they declare, and nothing else of corral.

Usage::

    python tools/install_closure.py corral-engine --extra-deps pytest pytest-timeout
    python tools/install_closure.py --all --wheels /tmp/wheels --extra-deps numpy dill pytest
    python tools/install_closure.py --all --editable
    python tools/install_closure.py corral-magics --dry-run

The closure of a distribution is itself plus, recursively, every sibling (a ``corral`` or
``corral-*`` distribution in ``packages/``) named in its ``[project] dependencies``. It is
installed into the running interpreter's environment with one ``pip install`` of the local paths
(or of wheels freshly built from them, with ``--wheels``), so pip takes every sibling from the
repository and never from an index.

Before installing, any corral distribution already in the environment is uninstalled: a tox
env that is reused must not keep a sibling that is no longer declared. After a non-editable
install the result is checked in a fresh interpreter: each portion of the closure is imported
from site-packages (not from the repository's ``src/``), no portion of any other distribution
can be found, and every ``--absent`` distribution is missing. A failed check exits 1.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workspace import Distribution, WorkspaceError, closure, load, normalize

# Runs in a fresh interpreter (-I: no current directory, no user site, no PYTHON* variables).
_PROBE = """
import importlib.metadata, importlib.util, json, sys, sysconfig
portions, absent = json.loads(sys.argv[1]), json.loads(sys.argv[2])
found = {}
for p in portions:
    try:
        spec = importlib.util.find_spec("corral." + p)
    except ImportError:
        spec = None
    found[p] = list(spec.submodule_search_locations or []) if spec else None
present = []
for name in absent:
    try:
        importlib.metadata.distribution(name)
        present.append(name)
    except importlib.metadata.PackageNotFoundError:
        pass
print(json.dumps({"portions": found, "present": present, "purelib": sysconfig.get_path("purelib")}))
"""


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def installed_siblings(dists: dict[str, Distribution]) -> list[str]:
    """Return the workspace distributions installed in this interpreter's environment."""
    names = {normalize(d.metadata["Name"] or "") for d in importlib.metadata.distributions()}
    return sorted(names & dists.keys())


def build_wheels(paths: Sequence[Path], outdir: Path) -> list[Path]:
    """Build a wheel of each distribution folder into an emptied ``outdir``; return the wheels.

    Raises
    ------
    subprocess.CalledProcessError
        If pip cannot build one of them.
    """
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    _pip("wheel", "--no-deps", "--wheel-dir", str(outdir), *map(str, paths))
    return sorted(outdir.glob("*.whl"))


def check_install(dists: dict[str, Distribution], wanted: Sequence[str], absent: Sequence[str]) -> list[str]:
    """Return what is wrong with the environment after a non-editable install of ``wanted``."""
    owner = {p: d.name for d in dists.values() for p in d.portions}
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(
            [sys.executable, "-I", "-c", _PROBE, json.dumps(sorted(owner)), json.dumps(list(absent))],
            check=True,
            capture_output=True,
            text=True,
            cwd=cwd,
        ).stdout
    probe = json.loads(out)
    purelib = Path(probe["purelib"]).resolve()
    problems = []
    for portion, locations in sorted(probe["portions"].items()):
        dist = owner[portion]
        if dist in wanted:
            if not locations:
                problems.append(f"corral.{portion} ({dist}) was installed but cannot be imported")
            elif any(not Path(loc).resolve().is_relative_to(purelib) for loc in locations):
                problems.append(f"corral.{portion} ({dist}) resolves to {locations}, not to {purelib}")
            elif any(Path(loc).resolve().is_relative_to(d.src) for loc in locations for d in dists.values()):
                problems.append(f"corral.{portion} ({dist}) resolves into a src/ tree of the repository: {locations}")
        elif locations:
            problems.append(f"corral.{portion} ({dist}) is importable but {dist} is not declared: {locations}")
    problems += [f"{name} is installed but this environment must not have it" for name in probe["present"]]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("dists", nargs="*", metavar="DIST", help="distribution names, e.g. corral-engine")
    parser.add_argument("--all", action="store_true", help="every distribution in packages/")
    parser.add_argument("--editable", action="store_true", help="install the local paths in editable mode")
    parser.add_argument("--wheels", type=Path, metavar="DIR", help="build fresh wheels into DIR and install those")
    parser.add_argument(
        "--extra-deps", nargs="*", default=[], metavar="REQ", help="more requirements for the same pip command"
    )
    parser.add_argument(
        "--absent", nargs="*", default=[], metavar="NAME", help="distributions that must not end up installed"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the closure and install nothing")
    args = parser.parse_args(argv)
    if args.editable and args.wheels:
        parser.error("--editable and --wheels exclude each other")
    try:
        dists = load()
        names = sorted(dists) if args.all else args.dists
        if not names:
            parser.error("name at least one distribution, or --all")
        wanted = closure(dists, names)
    except WorkspaceError as err:
        print(f"install_closure: {err}", file=sys.stderr)
        return 2
    print("closure:", " ".join(wanted), flush=True)
    if args.dry_run:
        return 0
    stale = installed_siblings(dists)
    if stale:
        _pip("uninstall", "--yes", *stale)
    paths = [dists[name].path for name in wanted]
    if args.wheels:
        targets = [str(p) for p in build_wheels(paths, args.wheels.resolve())]
    elif args.editable:
        targets = [arg for p in paths for arg in ("--editable", str(p))]
    else:
        targets = [str(p) for p in paths]
    _pip("install", *targets, *args.extra_deps)
    if args.editable:
        return 0
    problems = check_install(dists, wanted, [normalize(n) for n in args.absent])
    for problem in problems:
        print(f"install_closure: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
