#!/usr/bin/env python
"""Check that every corral import in ``packages/*/src`` respects the layers.

Usage::

    python tools/checks/layers.py              # check the repository; exit 1 on any offender
    python tools/checks/layers.py --root DIR   # check another tree of the same shape
    python tools/checks/layers.py --self-test  # show that a planted violation is caught

Every ``import``/``from ... import`` (relative ones resolved, ``TYPE_CHECKING`` ones included)
and every ``importlib.import_module("corral...")`` with a literal name is read from the AST.
An import of another distribution's portion must be allowed by ``layout.MAY_IMPORT`` (wire
imports no other corral package; engine, scheduler, hub and client only wire; magics client and
wire; the meta-package anything) and that distribution must be declared in the importer's
``pyproject.toml`` (``dependencies`` or an extra), or the import fails where only the declared
closure is installed. Each distribution must also ship exactly the portions ``layout.PORTIONS``
names. IPython, ipykernel and ipywidgets may be imported only by corral-magics
(``layout.FRONT_END``). Offenders are printed as ``file:line: ...``.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from layout import ANY, FRONT_END, MAY_IMPORT, PORTIONS
from workspace import ROOT, Distribution, WorkspaceError, load, requirement_name

__all__ = ["corral_imports", "main", "offenders"]

_DYNAMIC = {"import_module", "__import__"}


def _module_name(path: Path, src: Path) -> tuple[str, str]:
    """Return ``(module, package)`` of a source file, e.g. ``corral.wire.session``, ``corral.wire``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def corral_imports(path: Path, src: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line, module)`` for every import of a ``corral.*`` module in the file ``path``.

    Relative imports are resolved against the file's place under ``src``; ``from corral
    import wire`` yields ``corral.wire``.

    Raises
    ------
    SyntaxError
        If the file does not parse.
    """
    _, package = _module_name(path, src)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level - 1 >= len(base):
                    yield node.lineno, "." * node.level + (node.module or "")  # escapes the namespace
                    continue
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "corral":
                for alias in node.names:
                    yield node.lineno, f"corral.{alias.name}"
            else:
                yield node.lineno, module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            arg = node.args[0]
            if name in _DYNAMIC and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.lineno, arg.value


def _declared(dist: Distribution) -> set[str]:
    reqs = list(dist.requirements) + [r for group in dist.extras.values() for r in group]
    return {requirement_name(r) for r in reqs}


def offenders(root: Path) -> list[str]:
    """Return one line per layering problem in the tree at ``root`` (empty when it is clean).

    Raises
    ------
    WorkspaceError
        If a ``pyproject.toml`` under ``root/packages`` cannot be read.
    """
    dists = load(root)
    owner = {portion: name for name, dist in dists.items() for portion in dist.portions}
    problems = []
    for name, dist in sorted(dists.items()):
        where = dist.path.relative_to(root)
        if name not in MAY_IMPORT or name not in PORTIONS:
            problems.append(
                f"{where}/pyproject.toml:1: {name} is not in tools/checks/layout.py; add its portions and layer"
            )
            continue
        if set(dist.portions) != PORTIONS[name]:
            problems.append(
                f"{where}/src/corral: {name} ships portions {sorted(dist.portions)}, layout.py says {sorted(PORTIONS[name])}"
            )
        allowed = MAY_IMPORT[name]
        declared = _declared(dist)
        for path in sorted(dist.src.rglob("*.py")):
            try:
                imports = list(corral_imports(path, dist.src))
            except SyntaxError as err:
                problems.append(f"{path.relative_to(root)}:{err.lineno}: does not parse: {err.msg}")
                continue
            for line, module in imports:
                at = f"{path.relative_to(root)}:{line}"
                if module.startswith("."):
                    problems.append(f"{at}: relative import {module!r} climbs out of the corral namespace")
                    continue
                parts = module.split(".")
                if parts[0] in FRONT_END and name not in FRONT_END[parts[0]]:
                    users = ", ".join(sorted(FRONT_END[parts[0]]))
                    problems.append(f"{at}: {name} imports {module}; only {users} may import {parts[0]}")
                    continue
                if parts[0] != "corral":
                    continue
                if len(parts) == 1:
                    problems.append(f"{at}: imports the bare namespace 'corral'; import the portion it needs")
                    continue
                target = owner.get(parts[1])
                if target is None:
                    problems.append(f"{at}: imports {module}, but no distribution in packages/ ships corral.{parts[1]}")
                elif target == name:
                    continue
                elif allowed is not ANY and target not in allowed:
                    may = f"only {', '.join(sorted(allowed))}" if allowed else "no other corral distribution"
                    problems.append(f"{at}: {name} imports {module} ({target}); {name} may import {may}")
                elif target not in declared:
                    problems.append(
                        f"{at}: {name} imports {module} but does not declare {target} in its pyproject.toml dependencies"
                    )
    return problems


_SELF_TEST_TREE = {
    "corral-wire": ("[]", {"wire/__init__.py": "from corral.client import Client\n"}),
    "corral-client": ('["corral-wire>=0.1,<0.2"]', {"client/__init__.py": "from corral.wire import Session\n"}),
}


def self_test() -> int:
    """Plant a violation in a temporary tree and check that it is reported; return the exit status."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, (deps, files) in _SELF_TEST_TREE.items():
            pkg = root / "packages" / name
            (pkg / "src" / "corral").mkdir(parents=True)
            (pkg / "pyproject.toml").write_text(
                f'[project]\nname = "{name}"\ndependencies = {deps}\n'
                f'[tool.hatch.version]\npath = "src/corral/{name.split("-")[1]}/_version.py"\n'
            )
            for rel, text in files.items():
                target = pkg / "src" / "corral" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                (target.parent / "_version.py").write_text('__version__ = "0.1.0"\n')
        found = offenders(root)
    expected = "packages/corral-wire/src/corral/wire/__init__.py:1: corral-wire imports corral.client"
    if len(found) == 1 and found[0].startswith(expected):
        print(f"self-test passed: the planted violation was reported:\n  {found[0]}")
        return 0
    print(f"self-test FAILED: expected one offender starting {expected!r}, got {found}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (1 when there are offenders)."""
    parser = argparse.ArgumentParser(description="Check the layering of corral imports.")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this one)")
    parser.add_argument("--self-test", action="store_true", help="check that a planted violation is caught")
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test()
    try:
        problems = offenders(args.root.resolve())
    except WorkspaceError as err:
        print(f"layers: {err}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if problems:
        print(f"layers: {len(problems)} offender(s); see tools/checks/layout.py for the rules", file=sys.stderr)
        return 1
    print("layers: every corral import respects the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
