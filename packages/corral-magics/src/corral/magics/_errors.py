"""Remote tracebacks as the magics show them: per engine, identical errors grouped.

When the same code fails the same way on 64 engines, the user wants to read the traceback once
and know where it happened, not scroll through 64 copies. Errors are grouped by type, message
and traceback text (cell names ``<corral-cell-N>`` count as equal whatever their number, since
engines number their cells separately); each group is shown once under a label naming its
engines, ``[0-3:execute]``, in the order of its first engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from corral.wire.errors import CompositeError, RemoteError

__all__ = ["compact_ids", "group_errors", "render_errors"]

_CELL: Final = re.compile(r"<corral-cell-\d+>")


def compact_ids(ids: Iterable[int | None]) -> str:
    """Write engine ids compactly: ``0-3``, ``0,2,5-7``; unknown ids as ``?``."""
    known = sorted({i for i in ids if i is not None})
    parts: list[str] = []
    i = 0
    while i < len(known):
        j = i
        while j + 1 < len(known) and known[j + 1] == known[j] + 1:
            j += 1
        parts.append(str(known[i]) if i == j else f"{known[i]}-{known[j]}" if j > i + 1 else f"{known[i]},{known[j]}")
        i = j + 1
    if any(x is None for x in ids):
        parts.append("?")
    return ",".join(parts)


def _key(err: RemoteError) -> tuple[str, str, str, str]:
    method = str(err.engine_info.get("method", ""))
    return err.ename, err.evalue, _CELL.sub("<corral-cell>", err.traceback), method


def group_errors(errors: Sequence[RemoteError]) -> list[tuple[list[int | None], RemoteError]]:
    """Group identical errors: ``[(engine ids, one of the errors), ...]`` in order of first appearance."""
    groups: dict[tuple[str, str, str, str], tuple[list[int | None], RemoteError]] = {}
    for err in errors:
        groups.setdefault(_key(err), ([], err))[0].append(err.engine_id)
    return list(groups.values())


def render_errors(error: BaseException) -> list[str]:
    """Return the lines IPython shows for ``error`` raised by ``%px``: grouped remote tracebacks.

    A :class:`~corral.wire.errors.CompositeError` shows each distinct error once; a single
    :class:`~corral.wire.errors.RemoteError` shows its traceback; anything else its ``str``.
    """
    errors = (
        list(error.elist) if isinstance(error, CompositeError) else [error] if isinstance(error, RemoteError) else []
    )
    if not errors:
        return [f"{type(error).__name__}: {error}"]
    lines: list[str] = []
    for ids, err in group_errors(errors):
        method = err.engine_info.get("method", "")
        where = compact_ids(ids) + (f":{method}" if method else "")
        count = sum(1 for _ in ids)
        label = f"[{where}]: " + (f"the same error on {count} engines" if count > 1 else f"{err.ename}")
        if lines:
            lines.append("")
        lines.append(label)
        body = err.traceback.rstrip() if err.traceback else f"{err.ename}: {err.evalue}"
        lines.append(body)
    return lines
