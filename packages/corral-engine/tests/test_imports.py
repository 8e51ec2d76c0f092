"""Importing the engine pulls in neither IPython nor numpy."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

MODULES = [
    "corral.engine",
    "corral.engine.app",
    "corral.engine.engine",
    "corral.engine.executor",
    "corral.engine.supervisor",
    "corral.engine.__main__",
]


def test_no_ipython_or_numpy_at_import() -> None:
    code = (
        "import sys\n"
        f"for name in {MODULES!r}:\n"
        "    __import__(name)\n"
        "heavy = sorted(m for m in ('IPython', 'numpy', 'ipykernel', 'traitlets') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_program_help_without_ipython_or_numpy() -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['corral.engine', '--help']\n"
        "try:\n"
        "    runpy.run_module('corral.engine', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('HEAVY:' + ','.join(m for m in ('IPython', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "--connection-file" in out.stdout
    assert out.stdout.strip().endswith("HEAVY:")
