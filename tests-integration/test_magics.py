"""The parallel magics in a real IPython shell against the session's 4-engine cluster.

Each test drives ``%px``, ``%%px``, ``%autopx``, ``%pxresult`` and ``%pxconfig`` through
``InteractiveShell.run_cell``, exactly as a user's cell would, and reads what the shell printed.
Also here: rich output from engines (``display()``), ``AsyncResult.display_outputs`` and
``wait_interactive``, which the magics build on.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult, InteractiveShell

    from corral.client import Client

pytest.importorskip("IPython", reason="the magics need IPython (a dependency of corral-magics)")

DEADLINE = 30.0


class Recorder(io.TextIOBase):
    """A stdout that other threads may read while the shell writes to it."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    """One real IPython shell for the module; it owns ``__main__`` only while the module runs."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    saved_main = sys.modules["__main__"]
    saved_hooks = sys.displayhook, sys.excepthook
    old_dir = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    cfg = Config()
    cfg.HistoryManager.enabled = False
    ip = InteractiveShell.instance(config=cfg)
    try:
        yield ip
    finally:
        InteractiveShell.clear_instance()
        sys.modules["__main__"] = saved_main
        sys.displayhook, sys.excepthook = saved_hooks
        if old_dir is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = old_dir


@pytest.fixture
def run(shell: InteractiveShell, rc: Client) -> Callable[..., tuple[Any, str]]:
    """``run(cell)`` -> (ExecutionResult, what the shell printed to stdout and stderr, interleaved).

    The magics are active on ``rc[:]``.
    """
    import corral.magics

    shell.user_ns["rc"] = rc
    corral.magics.activate(rc[:], shell=shell)

    def go(cell: str, ok: bool | None = True) -> tuple[ExecutionResult, str]:
        rec = Recorder()
        with contextlib.redirect_stdout(rec), contextlib.redirect_stderr(rec):
            result = shell.run_cell(cell, store_history=False)
        text = rec.text
        if ok is not None:
            assert result.success is ok, f"cell {cell!r} success={result.success}; printed:\n{text}"
        return result, text

    return go


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def _labels(text: str) -> list[str]:
    """The output labels in order, ``Out[0:7]:`` written as ``Out[0]`` (execution counts vary)."""
    found = [line.split()[0] for line in text.splitlines() if line.startswith(("[std", "[output", "Out["))]
    return [re.sub(r"^Out\[(\d+):\d+\]:$", r"Out[\1]", label) for label in found]


# -- %px, %%px and their options ------------------------------------------------------------------


def test_px_line_prints_each_engines_output_and_results(run: Callable[..., Any]) -> None:
    _, out = run("%px import os; print('hello from', os.getpid())")
    assert sorted(line.split()[0] for line in _lines(out, "[stdout:")) == [f"[stdout:{i}]" for i in range(4)]
    pids = {line.split()[-1] for line in _lines(out, "[stdout:")}
    assert len(pids) == 4, out  # four processes really ran it

    _, out = run("%px 6 * 7")
    outs = _lines(out, "Out[")
    assert len(outs) == 4, out
    for i, line in enumerate(outs):
        assert re.fullmatch(rf"Out\[{i}:\d+\]: 42", line), line


def test_cell_px_with_targets_and_stderr(run: Callable[..., Any]) -> None:
    _, out = run("%%px --targets ::2\nimport sys\nprint('to stderr', file=sys.stderr)\nmagic_t = 'even'\nmagic_t")
    assert [line.split()[0] for line in _lines(out, "[stderr:")] == ["[stderr:0]", "[stderr:2]"]
    assert [line.split(":")[0] for line in _lines(out, "Out[")] == ["Out[0", "Out[2"]

    _, out = run("%px --targets 1,3 magic_t = 'odd'")
    _, out = run("%px -t 0:4 magic_t")
    assert [line.split(": ")[1] for line in _lines(out, "Out[")] == ["'even'", "'odd'", "'even'", "'odd'"]

    _, out = run("%px --targets 7 1", ok=False)
    assert "7" in out
    assert "UsageError" in out


def test_group_outputs_orders(run: Callable[..., Any]) -> None:
    cell = "--targets 0,1\nimport sys\nprint('o')\nprint('e', file=sys.stderr)\n'r'"
    _, by_type = run(f"%%px --group-outputs=type {cell}")
    assert _labels(by_type) == ["[stdout:0]", "[stdout:1]", "[stderr:0]", "[stderr:1]", "Out[0]", "Out[1]"]
    _, by_engine = run(f"%%px --group-outputs engine {cell}")
    assert _labels(by_engine) == ["[stdout:0]", "[stderr:0]", "Out[0]", "[stdout:1]", "[stderr:1]", "Out[1]"]

    # order: display outputs interleaved, each engine's first before any engine's second
    _, by_order = run("%%px -g order --targets 0,1\ndisplay('first')\ndisplay('second')")
    shown = [line for line in by_order.splitlines() if line and not line.startswith("[output")]
    assert shown == ["'first'", "'first'", "'second'", "'second'"], by_order


def test_noblock_out_and_pxresult(run: Callable[..., Any], shell: InteractiveShell) -> None:
    from corral.client import AsyncResult

    result, out = run("%px --noblock -o magic_ar import time; time.sleep(0.3); print('late'); 'done'")
    ar = shell.user_ns["magic_ar"]
    assert isinstance(ar, AsyncResult)
    assert result.result is ar
    assert "[stdout:" not in out  # nothing waited for, nothing shown yet
    _, out = run("%pxresult")
    assert len(_lines(out, "[stdout:")) == 4, out
    assert len(_lines(out, "Out[")) == 4, out
    assert ar.ready()
    _, out = run("%pxresult --group-outputs=engine -o again")
    assert shell.user_ns["again"] is ar


def test_local_runs_here_too(run: Callable[..., Any], shell: InteractiveShell) -> None:
    shell.user_ns.pop("magic_local", None)
    run("%%px --local\nmagic_local = 'both'")
    assert shell.user_ns["magic_local"] == "both"
    _, out = run("%px magic_local")
    assert len([line for line in _lines(out, "Out[") if line.endswith("'both'")]) == 4


def test_bad_options_are_usage_errors(run: Callable[..., Any]) -> None:
    _, out = run("%%px --group-outputs=sideways\n1", ok=False)
    assert "sideways" in out
    assert "type" in out
    _, out = run("%px --targets", ok=False)
    assert "needs a value" in out
    _, out = run("%px", ok=False)
    assert "needs code" in out


# -- suffixes, %autopx, %pxconfig ------------------------------------------------------------------


def test_suffixes_give_several_views_their_own_magics(run: Callable[..., Any], rc: Client) -> None:
    run("rc[::2].activate('_even')")
    run("rc[1::2].activate('_odd')")
    _, out = run("%px_even magic_side = 'even'")
    _, out = run("%px_odd magic_side = 'odd'")
    _, out = run("%px magic_side")
    assert [line.split(": ")[1] for line in _lines(out, "Out[")] == ["'even'", "'odd'", "'even'", "'odd'"]
    _, out = run("%%px_even\nmagic_side")
    assert [line.split(":")[0] for line in _lines(out, "Out[")] == ["Out[0", "Out[2"]


def test_autopx_toggles_running_cells_on_the_engines(run: Callable[..., Any], shell: InteractiveShell) -> None:
    shell.user_ns.pop("magic_auto", None)
    _, out = run("%autopx")
    assert "enabled" in out
    try:
        run("magic_auto = 'remote'")
        assert "magic_auto" not in shell.user_ns  # it ran on the engines, not here
        _, out = run("magic_auto")
        assert len([line for line in _lines(out, "Out[") if line.endswith("'remote'")]) == 4
        _, out = run("1/0", ok=False)
        assert "[0-3:execute]" in out
    finally:
        _, out = run("%autopx")
    assert "disabled" in out
    run("magic_auto = 'local'")
    assert shell.user_ns["magic_auto"] == "local"
    _, out = run("%px magic_auto")
    assert len([line for line in _lines(out, "Out[") if line.endswith("'remote'")]) == 4


def test_pxconfig_changes_the_defaults(run: Callable[..., Any], shell: InteractiveShell) -> None:
    from corral.client import AsyncResult

    try:
        run("%pxconfig --noblock --targets 1")
        result, out = run("%px 'configured'")
        assert isinstance(result.result, AsyncResult)
        assert result.result.get(DEADLINE) == "configured"  # one engine: a single value
        run("%pxconfig --block --group-outputs engine --targets all")
        _, out = run("%px print('x'); 'y'")
        assert _labels(out) == [
            "[stdout:0]",
            "Out[0]",
            "[stdout:1]",
            "Out[1]",
            "[stdout:2]",
            "Out[2]",
            "[stdout:3]",
            "Out[3]",
        ]
        _, out = run("%pxconfig --sideways", ok=False)
        assert "sideways" in out
    finally:
        run("%pxconfig --block --group-outputs type --targets all --no-stream")


# -- streaming, errors, interrupts -------------------------------------------------------------------


def test_stream_shows_output_while_the_cell_runs(
    run: Callable[..., Any], shell: InteractiveShell, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    rec = Recorder()
    released = threading.Event()

    def release() -> None:
        # the engines wait for this file; it appears only once every engine's first line was shown
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if all(f"[stdout:{i}] step one" in rec.text for i in range(4)):
                go.touch()
                released.set()
                return
            time.sleep(0.02)

    helper = threading.Thread(target=release, daemon=True)
    helper.start()
    cell = (
        "%%px --stream\n"
        "import os, time\n"
        "print('step one', flush=True)\n"
        f"deadline = time.monotonic() + {DEADLINE / 2}\n"
        f"while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        f"print('released' if os.path.exists({str(go)!r}) else 'timed out')\n"
    )
    with contextlib.redirect_stdout(rec), contextlib.redirect_stderr(rec):
        result = shell.run_cell(cell, store_history=False)
    helper.join(DEADLINE)
    assert result.success, rec.text
    text = rec.text
    assert released.is_set(), f"the first lines were not shown while the cell ran:\n{text}"
    assert text.count("released") == 4, text
    assert "timed out" not in text, text
    assert text.index("step one") < text.index("released")


def test_identical_errors_from_four_engines_are_grouped(run: Callable[..., Any]) -> None:
    from corral.client import CompositeError

    result, out = run("%px 1/0", ok=False)
    assert isinstance(result.error_in_exec, CompositeError)
    assert len(result.error_in_exec.elist) == 4
    assert "[0-3:execute]: the same error on 4 engines" in out
    assert out.count("ZeroDivisionError: division by zero") == 1, out
    assert out.count("Traceback") == 1, out

    # different errors stay apart, each group naming its engines
    result, out = run("%%px\nimport os\nraise ValueError('engine parity', magic_side)", ok=False)
    assert "[0,2:execute]: the same error on 2 engines" in out, out
    assert "[1,3:execute]: the same error on 2 engines" in out, out
    assert out.count("Traceback") == 2


def test_keyboard_interrupt_stops_the_engines_and_the_shell_survives(
    run: Callable[..., Any], tmp_path: Path, rc: Client
) -> None:
    started = tmp_path / "started"
    started.mkdir()
    main = threading.main_thread().ident
    assert main is not None
    assert threading.get_ident() == main
    sent = threading.Event()

    def press_ctrl_c() -> None:
        # the real thing: SIGINT to this process's main thread, once all four engines are busy
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if len(list(started.iterdir())) == 4:
                time.sleep(0.2)
                sent.set()
                signal.pthread_kill(main, signal.SIGINT)
                return
            time.sleep(0.02)

    timer = threading.Thread(target=press_ctrl_c, daemon=True)
    timer.start()
    t0 = time.monotonic()
    cell = (
        "%%px\nimport os, time\n"
        f"open(os.path.join({str(started)!r}, str(os.getpid())), 'w').close()\n"
        "time.sleep(60)\n"
        "print('not interrupted')"
    )
    result, out = run(cell, ok=False)
    elapsed = time.monotonic() - t0
    timer.join(DEADLINE)
    assert sent.is_set(), "the engines never started the cell"
    assert isinstance(result.error_in_exec, KeyboardInterrupt), out
    assert elapsed < 40, f"the interrupted cell took {elapsed:.1f} s"
    assert "interrupting engine(s) 0-3" in out
    assert "[0-3:execute]: the same error on 4 engines" in out, out
    assert "KeyboardInterrupt" in out, out
    assert "[stdout:" not in out  # no engine got to print
    assert "signals.py" not in out  # the remote traceback ends in the user's code
    assert "KeyboardInterrupt: %px was interrupted; engine(s) 0-3 were sent SIGINT and stopped" in out, out
    # the shell and every engine keep serving
    _, out = run("%px 'still here'")
    assert len([line for line in _lines(out, "Out[") if line.endswith("'still here'")]) == 4
    assert rc[:].apply_sync(lambda: 1) == [1, 1, 1, 1]


# -- rich output, display_outputs, wait_interactive --------------------------------------------------

_RICH = """
class Rich:
    def _repr_html_(self):
        return '<b>rich</b>'
    def _repr_png_(self):
        return b'\\x89PNG\\r\\n\\x1a\\n-not-really'
    def __repr__(self):
        return 'Rich()'
"""


def test_display_on_engines_reaches_ipython_as_rich_output(run: Callable[..., Any], shell: InteractiveShell) -> None:
    import base64

    from IPython.utils.capture import capture_output

    run(f"%%px --targets 0,1\n{_RICH}")
    with capture_output() as cap:
        result = shell.run_cell("%%px --targets 0,1 -o magic_rich\ndisplay(Rich())\nprint('text too')\nRich()")
    assert result.success, cap.stdout
    bundles = [o.data for o in cap.outputs]
    html = [b for b in bundles if b.get("text/html") == "<b>rich</b>"]
    # two display() calls and two Out[] values, each with its html and its png
    assert len(html) == 4, bundles
    assert all(base64.b64decode(b["image/png"]) == b"\x89PNG\r\n\x1a\n-not-really" for b in html)
    assert "[output:0]" in cap.stdout
    assert "[output:1]" in cap.stdout
    assert "[stdout:1] text too" in cap.stdout
    ar = shell.user_ns["magic_rich"]
    outputs = ar.metadata[0]["outputs"]
    assert [o["data"]["text/plain"] for o in outputs] == ["Rich()"]


def test_display_outputs_groupings_as_plain_text(rc: Client) -> None:
    from corral.client import show_outputs

    dv = rc[:2]
    dv.execute(f"{_RICH}\ndisplay(Rich(), 'two')", block=True)
    ar = dv.execute("import sys\nprint('out')\nprint('err', file=sys.stderr)\ndisplay('d1')\ndisplay('d2')\n'res'")
    ar.wait(DEADLINE)
    buf = io.StringIO()
    show_outputs([(md["engine_id"], md) for md in ar.metadata], "order", file=buf)
    lines = buf.getvalue().splitlines()
    assert lines[:4] == ["[stdout:0] out", "[stdout:1] out", "[stderr:0] err", "[stderr:1] err"]
    assert lines[4:12] == ["[output:0]", "'d1'", "[output:1]", "'d1'", "[output:0]", "'d2'", "[output:1]", "'d2'"]
    assert re.fullmatch(r"Out\[0:\d+\]: 'res'", lines[12])
    assert re.fullmatch(r"Out\[1:\d+\]: 'res'", lines[13])
    with pytest.raises(ValueError, match="groupby must be one of"):
        ar.display_outputs("sideways")


def test_display_outputs_in_the_shell(run: Callable[..., Any], shell: InteractiveShell) -> None:
    run("magic_dv = rc[:2]")
    run("magic_ar = magic_dv.execute('print(1)\\ndisplay(2)\\n3')")
    _, out = run("magic_ar.wait(); magic_ar.display_outputs('engine')")
    assert out.splitlines()[:3] == ["[stdout:0] 1", "[output:0]", "2"], out


@pytest.mark.parametrize("kind", ["plain", "tqdm"])
def test_wait_interactive_shows_progress(rc: Client, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    if kind == "tqdm":
        pytest.importorskip("tqdm")
    lb = rc.load_balanced_view()
    ar = lb.map_async(lambda x: __import__("time").sleep(0.3) or x, range(8))
    capsys.readouterr()
    ar.wait_interactive(interval=0.05, kind=kind)
    out = capsys.readouterr().out
    assert ar.ready()
    assert ar.get() == list(range(8))
    assert "8/8" in out, out
    if kind == "plain":
        assert re.search(r"8/8 tasks done, [\d.]+/s, \d+ s elapsed", out), out
    else:
        assert "it/s" in out or "s/it" in out or "task/s" in out, out


def test_wait_interactive_gives_up_at_its_timeout(rc: Client, capsys: pytest.CaptureFixture[str]) -> None:
    ar = rc[:].apply_async(lambda: __import__("time").sleep(2))
    t0 = time.monotonic()
    ar.wait_interactive(interval=0.05, timeout=0.3, kind="plain")
    assert time.monotonic() - t0 < 1.5
    assert not ar.ready()
    assert re.search(r"0/4 tasks done", capsys.readouterr().out)
    ar.wait(DEADLINE)
