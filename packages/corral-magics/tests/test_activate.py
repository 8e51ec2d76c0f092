"""activate(), %load_ext and %autopx's cell rewriting in a real InteractiveShell, without a cluster.

A DirectView needs a client; these tests cover what happens before any code is sent: names,
argument checks and errors a user gets when something is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import corral.magics
from corral.magics import ParallelMagics

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    saved_main = sys.modules["__main__"]
    saved_hooks = sys.displayhook, sys.excepthook
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("CORRAL_DIR", str(tmp_path / "corral"))  # no default cluster there
    cfg = Config()
    cfg.HistoryManager.enabled = False
    ip = InteractiveShell.instance(config=cfg)
    try:
        yield ip
    finally:
        InteractiveShell.clear_instance()
        sys.modules["__main__"] = saved_main
        sys.displayhook, sys.excepthook = saved_hooks


def test_activate_checks_its_arguments(shell: InteractiveShell) -> None:
    with pytest.raises(TypeError, match="DirectView"):
        corral.magics.activate("not a view", shell=shell)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="suffix"):
        ParallelMagics(shell, None, "-even")


def test_activate_outside_ipython_says_so() -> None:
    assert InteractiveShell.initialized() is False
    from corral.client import DirectView

    view = DirectView.__new__(DirectView)  # never used: the shell check comes first
    with pytest.raises(RuntimeError, match="IPython or Jupyter session"):
        corral.magics.activate(view)


def test_load_ext_registers_every_magic_with_its_suffix(shell: InteractiveShell) -> None:
    shell.run_line_magic("load_ext", "corral.magics")
    shell.register_magics(ParallelMagics(shell, None, "_odd"))
    line = shell.magics_manager.magics["line"]
    cell = shell.magics_manager.magics["cell"]
    for suffix in ("", "_odd"):
        for name in ("px", "autopx", "pxresult", "pxconfig"):
            assert name + suffix in line
        assert "px" + suffix in cell


def test_px_without_a_cluster_tells_how_to_get_one(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("load_ext", "corral.magics")
    result = shell.run_cell("%px 1 + 1", store_history=False)
    out = capsys.readouterr()
    assert not result.success
    assert "activate()" in out.out + out.err
    result = shell.run_cell("%pxresult", store_history=False)
    out = capsys.readouterr()
    assert "no %px has run yet" in out.out + out.err


def test_autopx_rewrites_cells_until_toggled_off(shell: InteractiveShell) -> None:
    magics = ParallelMagics(shell, None, "_x")
    magics.view = object()  # type: ignore[assignment]  # a view is only needed to run cells
    shell.register_magics(magics)
    shell.run_line_magic("autopx_x", "")
    try:
        assert shell.transform_cell("a = 1\n").startswith("get_ipython().run_cell_magic('px_x', '', 'a = 1\\n')")
        # the toggle itself, and empty cells, stay as they are
        assert "run_line_magic('autopx_x'" in shell.transform_cell("%autopx_x\n")
        assert shell.transform_cell("\n") == "\n"
    finally:
        shell.run_line_magic("autopx_x", "")
    assert shell.transform_cell("a = 1\n") == "a = 1\n"


def test_pxconfig_sets_defaults(shell: InteractiveShell) -> None:
    magics = ParallelMagics(shell, None)
    shell.register_magics(magics)
    shell.run_line_magic("pxconfig", "--noblock --targets ::2 --group-outputs engine --stream")
    assert magics.block is False
    assert magics.targets == slice(None, None, 2)
    assert magics.group_outputs == "engine"
    assert magics.stream is True
