"""layers.py reports imports that break the layers, and only those."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.timeout(60)

MakeDist = Callable[..., Path]  # the make_dist fixture of conftest.py

WIRE_DEP = ["corral-wire>=0.1,<0.2"]


def test_the_repository_is_clean(layers: ModuleType) -> None:
    assert layers.offenders(Path(__file__).resolve().parents[3]) == []


def test_clean_tree_passes(layers: ModuleType, make_dist: MakeDist) -> None:
    make_dist("corral-wire", files={"wire/__init__.py": "from corral.wire import session\nfrom . import session\n"})
    root = make_dist("corral-client", WIRE_DEP, {"client/__init__.py": "from corral.wire import Session\n"})
    assert layers.offenders(root) == []
    assert layers.main(["--root", str(root)]) == 0


def test_wire_importing_a_package_above_it_is_reported(
    layers: ModuleType, make_dist: MakeDist, capsys: pytest.CaptureFixture[str]
) -> None:
    make_dist(
        "corral-wire", files={"wire/__init__.py": "x = 1\n", "wire/session.py": "import os\nimport corral.client\n"}
    )
    root = make_dist("corral-client", WIRE_DEP)
    assert layers.main(["--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "packages/corral-wire/src/corral/wire/session.py:2: corral-wire imports corral.client" in out


@pytest.mark.parametrize(
    "source",
    [
        "from corral.engine import x\n",
        "from corral import engine\n",
        "from ..engine import x\n",
        "import importlib\nimportlib.import_module('corral.engine')\n",
        "def f():\n    from corral.engine._version import __version__\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import corral.engine\n",
    ],
)
def test_peers_must_not_import_each_other_however_written(layers: ModuleType, make_dist: MakeDist, source: str) -> None:
    make_dist("corral-wire")
    make_dist("corral-engine", WIRE_DEP)
    root = make_dist("corral-client", WIRE_DEP, {"client/__init__.py": source})
    found = layers.offenders(root)
    assert len(found) == 1, found
    assert "corral-client imports corral.engine" in found[0]
    assert "may import only corral-wire" in found[0]


@pytest.mark.parametrize("source", ["import IPython\n", "def f():\n    from IPython.display import display\n"])
def test_only_magics_may_import_ipython(layers: ModuleType, make_dist: MakeDist, source: str) -> None:
    make_dist("corral-wire")
    root = make_dist("corral-client", WIRE_DEP, {"client/__init__.py": source})
    make_dist(
        "corral-magics",
        ["corral-wire>=0.1,<0.2", "corral-client>=0.1,<0.2"],
        {"magics/__init__.py": "import IPython\nfrom corral.client import x\n"},
    )
    found = layers.offenders(root)
    assert len(found) == 1, found
    assert "corral-client imports IPython" in found[0]
    assert "only corral-magics may import IPython" in found[0]


def test_allowed_but_undeclared_import_is_reported(layers: ModuleType, make_dist: MakeDist) -> None:
    make_dist("corral-wire")
    make_dist("corral-client", WIRE_DEP)
    root = make_dist("corral-magics", WIRE_DEP, {"magics/__init__.py": "from corral.client import Client\n"})
    [found] = layers.offenders(root)
    assert "does not declare corral-client" in found


def test_meta_package_may_import_anything_it_declares(layers: ModuleType, make_dist: MakeDist) -> None:
    make_dist("corral-wire")
    make_dist("corral-magics", WIRE_DEP)
    files = {
        "cli/__init__.py": "import corral.wire\n",
        "cluster/__init__.py": "import corral.magics\n",
        "launchers/x.py": "",
    }
    root = make_dist("corral", WIRE_DEP, files, extras={"magics": ["corral-magics>=0.1,<0.2"]})
    assert layers.offenders(root) == []


def test_unknown_portion_and_escaping_relative_import(layers: ModuleType, make_dist: MakeDist) -> None:
    root = make_dist("corral-wire", files={"wire/__init__.py": "import corral.nowhere\nfrom ... import x\n"})
    found = layers.offenders(root)
    assert any("no distribution in packages/ ships corral.nowhere" in f for f in found), found
    assert any("climbs out of the corral namespace" in f for f in found), found


def test_unexpected_portion_is_reported(layers: ModuleType, make_dist: MakeDist) -> None:
    root = make_dist("corral-wire", files={"wire/__init__.py": "", "utils/__init__.py": ""})
    [found] = layers.offenders(root)
    assert "ships portions ['utils', 'wire']" in found


def test_self_test_mode_passes(layers: ModuleType) -> None:
    assert layers.main(["--self-test"]) == 0
