"""The magics' option parsing, target syntax, grouped tracebacks and %autopx rewriting, without a cluster."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from corral.magics._errors import compact_ids, group_errors, render_errors
from corral.magics._options import parse_px, parse_result, parse_targets, split_line
from corral.wire.errors import CompositeError, RemoteError

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", "all"),
        ("3", 3),
        ("-1", -1),
        ("0,2", [0, 2]),
        ("[0, 2]", [0, 2]),
        ("::2", slice(None, None, 2)),
        ("1:3", slice(1, 3, None)),
        ("-2:", slice(-2, None, None)),
    ],
)
def test_targets_forms(text: str, expected: object) -> None:
    assert parse_targets(text) == expected


@pytest.mark.parametrize("text", ["evens", "1-3", "::0", "0;1", ""])
def test_bad_targets_name_the_forms_that_work(text: str) -> None:
    with pytest.raises(UsageError, match=r"--targets"):
        parse_targets(text)


def test_split_line_takes_leading_options_only() -> None:
    assert split_line("--targets 0,2 --noblock print('--block')") == (
        ["--targets", "0,2", "--noblock"],
        "print('--block')",
    )
    assert split_line("-t::2 -o ar x = 1") == (["-t", "::2", "-o", "ar"], "x = 1")
    assert split_line("--group-outputs=engine --stream") == (["--group-outputs=engine", "--stream"], "")
    assert split_line("-x + 1") == ([], "-x + 1")  # code that starts with a minus sign
    assert split_line("--local -- --block") == (["--local"], "--block")
    with pytest.raises(UsageError, match="needs a value"):
        split_line("--targets")


def test_parse_px_options() -> None:
    opts = parse_px(["--targets", "1:3", "--noblock", "-g", "order", "--stream", "--local", "-o", "res"])
    assert opts.targets == slice(1, 3)
    assert opts.block is False
    assert opts.group_outputs == "order"
    assert opts.stream is True
    assert opts.local is True
    assert opts.out == "res"
    defaults = parse_px([])
    assert (defaults.targets, defaults.block, defaults.group_outputs, defaults.stream) == (None, None, None, None)


def test_parse_errors_are_usage_errors_not_exits() -> None:
    with pytest.raises(UsageError, match="sideways"):
        parse_px(["--group-outputs", "sideways"])
    with pytest.raises(UsageError, match="not allowed with"):
        parse_px(["--block", "--noblock"])
    with pytest.raises(UsageError, match="unrecognized"):
        parse_result(["--targets", "1"])


def test_compact_ids() -> None:
    assert compact_ids([0, 1, 2, 3]) == "0-3"
    assert compact_ids([0, 2]) == "0,2"
    assert compact_ids([3, 0, 1, 5, 6, 7]) == "0,1,3,5-7"
    assert compact_ids([1, None]) == "1,?"


def _err(eid: int, evalue: str = "division by zero", cell: int = 4) -> RemoteError:
    tb = (
        "Traceback (most recent call last):\n"
        f'  File "<corral-cell-{cell}>", line 1, in <module>\n'
        f"ZeroDivisionError: {evalue}\n"
    )
    return RemoteError("ZeroDivisionError", evalue, tb, {"engine_id": eid, "method": "execute"})


def test_identical_errors_are_grouped_whatever_the_cell_number() -> None:
    errors = [_err(0, cell=4), _err(1, cell=9), _err(2, "other"), _err(3, cell=2)]
    groups = group_errors(errors)
    assert [ids for ids, _ in groups] == [[0, 1, 3], [2]]
    lines = render_errors(CompositeError("one or more exceptions", errors))
    text = "\n".join(lines)
    assert "[0,1,3:execute]: the same error on 3 engines" in text
    assert "[2:execute]: ZeroDivisionError" in text
    assert text.count("Traceback") == 2


def test_render_single_and_local_errors() -> None:
    assert render_errors(_err(5))[0] == "[5:execute]: ZeroDivisionError"
    assert render_errors(ValueError("bad")) == ["ValueError: bad"]
