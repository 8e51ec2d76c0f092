"""Output rendering ([stdout:0], [output:1], Out[0:3]) and progress bars, without a cluster."""

from __future__ import annotations

import importlib.metadata
import io
import re
from typing import Any

import pytest

from corral.client import show_outputs
from corral.client._progress import PlainBar, make_bar

pytestmark = pytest.mark.timeout(30)


def _md(eid: int, count: int, **kw: Any) -> dict[str, Any]:
    md: dict[str, Any] = {
        "engine_id": eid,
        "stdout": f"out{eid}\n",
        "stderr": "",
        "outputs": [{"data": {"text/plain": f"'d{eid}a'"}}, {"data": {"image/png": "iVBO"}, "metadata": {}}],
        "execute_result": {"data": {"text/plain": f"{eid * 10}"}, "execution_count": count},
    }
    md.update(kw)
    return md


def _render(entries: list[tuple[int, dict[str, Any]]], groupby: str, **kw: Any) -> list[str]:
    buf = io.StringIO()
    show_outputs(entries, groupby, file=buf, **kw)
    return buf.getvalue().splitlines()


def test_group_by_type_engine_and_order() -> None:
    entries = [(0, _md(0, 3, stderr="warn\n")), (1, _md(1, 4))]
    assert _render(entries, "type") == [
        "[stdout:0] out0",
        "[stdout:1] out1",
        "[stderr:0] warn",
        "[output:0]",
        "'d0a'",
        "[output:0]",
        "<rich output: image/png>",
        "[output:1]",
        "'d1a'",
        "[output:1]",
        "<rich output: image/png>",
        "Out[0:3]: 0",
        "Out[1:4]: 10",
    ]
    assert _render(entries, "engine")[:7] == [
        "[stdout:0] out0",
        "[stderr:0] warn",
        "[output:0]",
        "'d0a'",
        "[output:0]",
        "<rich output: image/png>",
        "Out[0:3]: 0",
    ]
    order = _render(entries, "order")
    assert [line for line in order if line.startswith("'d") or line.startswith("<")] == [
        "'d0a'",
        "'d1a'",
        "<rich output: image/png>",
        "<rich output: image/png>",
    ]


def test_multiline_text_starts_below_its_label_and_result_only() -> None:
    md = _md(2, 1, stdout="a\nb\n", execute_result={"data": {"text/plain": "[1,\n 2]"}, "execution_count": 1})
    lines = _render([(2, md)], "type")
    assert lines[:3] == ["[stdout:2]", "a", "b"]
    assert lines[-3:] == ["Out[2:1]: ", "[1,", " 2]"]
    assert _render([(2, md)], "engine", result_only=True) == ["Out[2:1]: ", "[1,", " 2]"]


def test_unknown_grouping_is_refused() -> None:
    with pytest.raises(ValueError, match="groupby must be one of 'type', 'engine', 'order'"):
        show_outputs([], "sideways")


def test_plain_bar_shows_done_total_rate_and_elapsed() -> None:
    buf = io.StringIO()
    bar = PlainBar(5, "tasks", file=buf, min_interval=0.0)
    bar.update(2)
    bar.update(3)
    bar.close()
    bar.close()  # once
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("0/5 tasks done")
    assert re.fullmatch(r"5/5 tasks done, [\d.]+/s, \d+ s elapsed", lines[-1])
    assert len(lines) == 3  # 0/5, 2/5, 5/5: closing does not repeat the last line


def test_make_bar_kinds() -> None:
    assert isinstance(make_bar(3, kind="plain"), PlainBar)
    with pytest.raises(ValueError, match="kind must be"):
        make_bar(3, kind="fancy")
    bar = make_bar(3, kind="tqdm")
    try:
        import tqdm
    except ImportError:
        assert isinstance(bar, PlainBar)  # without tqdm: the plain line
    else:
        assert isinstance(bar, tqdm.tqdm)
    bar.close()


def test_activate_needs_corral_magics() -> None:
    from corral.client import DirectView

    found = list(importlib.metadata.entry_points(group="corral.activate", name="magics"))
    view = DirectView.__new__(DirectView)
    if found:
        pytest.skip("corral-magics is installed here; tests-integration covers activate()")
    with pytest.raises(ImportError, match="pip install corral-magics"):
        view.activate()
