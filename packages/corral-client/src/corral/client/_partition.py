"""Cutting sequences into one block per engine (scatter, map) and joining them back (gather)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = ["as_sequence", "block_bounds", "check_dist", "iter_items", "join_partitions", "partition"]


def check_dist(dist: str) -> None:
    """Accept the distributions corral implements.

    Raises
    ------
    ValueError
        If ``dist`` is not ``'b'`` (contiguous blocks, one per engine).
    """
    if dist != "b":
        raise ValueError(f"dist={dist!r} is not supported: use dist='b' (one contiguous block per engine)")


def _is_ndarray(obj: Any) -> bool:
    np = sys.modules.get("numpy")  # numpy stays optional: only look if it is already imported
    return np is not None and isinstance(obj, np.ndarray)


def as_sequence(obj: Any) -> Any:
    """Return ``obj`` if it can be sliced and measured (list, tuple, str, ndarray), else a list.

    Raises
    ------
    TypeError
        If ``obj`` is not iterable, or is a 0-d array.
    """
    if _is_ndarray(obj):
        if obj.ndim == 0:
            raise TypeError("cannot partition a 0-d array: scatter and map need at least one dimension")
        return obj
    if isinstance(obj, (list, tuple, str, bytes)):
        return obj
    if not isinstance(obj, Iterable):
        raise TypeError(f"expected a sequence to partition, not {type(obj).__name__}")
    return list(obj)


def block_bounds(n: int, index: int, parts: int) -> tuple[int, int]:
    """Return ``(lo, hi)`` of block ``index`` when ``n`` items go into ``parts`` blocks.

    Blocks differ in length by at most one, the longer ones first.

    Examples
    --------
    >>> [block_bounds(10, i, 4) for i in range(4)]
    [(0, 3), (3, 6), (6, 8), (8, 10)]
    """
    base, extra = divmod(n, parts)
    lo = index * base + min(index, extra)
    return lo, lo + base + (1 if index < extra else 0)


def partition(seq: Any, parts: int) -> list[Any]:
    """Cut ``seq`` (already an :func:`as_sequence`) into ``parts`` contiguous blocks.

    Arrays are cut along their first axis into views (no copy); lists, tuples and strings
    into slices of their own type.
    """
    n = len(seq)
    return [seq[lo:hi] for lo, hi in (block_bounds(n, i, parts) for i in range(parts))]


def _is_block(obj: Any) -> bool:
    return isinstance(obj, (list, tuple, range)) or _is_ndarray(obj)


def join_partitions(parts: Sequence[Any]) -> Any:
    """Join blocks gathered from engines back into one sequence.

    Arrays are concatenated along their first axis; a block that ``flatten`` turned into
    one row (or one numpy scalar) counts as one row, but when *every* block was flattened
    there is no way to tell, and the rows are concatenated too. Strings are joined; anything else becomes one list, where lists and tuples are
    extended and other objects (flattened single items) appended.
    """
    if not parts:
        return []
    np = sys.modules.get("numpy")
    if (
        np is not None
        and all(isinstance(p, (np.ndarray, np.generic)) for p in parts)
        and any(isinstance(p, np.ndarray) for p in parts)
    ):
        ndim = max(p.ndim for p in parts)
        if ndim == 0:
            return np.array(parts)
        return np.concatenate([p if p.ndim == ndim else np.asarray(p)[np.newaxis] for p in parts])
    if all(isinstance(p, str) for p in parts):
        return "".join(parts)
    out: list[Any] = []
    for p in parts:
        if _is_block(p):
            out.extend(p)
        else:
            out.append(p)
    return out


def iter_items(part: Any) -> Iterator[Any]:
    """Yield the items of one gathered block, or the block itself if it is a single item."""
    if _is_block(part) or isinstance(part, str):
        yield from part
    else:
        yield part
