"""Small functions that clients send to engines by reference, so engines can run them.

A client sends some of its requests as calls of helpers rather than of the user's function:
``DirectView.map`` sends each engine one call of :func:`map_chunk` over its slice of the
sequences. The helper is pickled by reference (module and name), so it must exist where the
engine unpickles it; it lives here, in ``corral.wire``, because ``pip install corral-engine``
alone must be able to run everything a client sends.

Keep these functions small, pure and stable: renaming or removing one breaks clients of other
versions that still send it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["map_chunk"]


def map_chunk(f: Callable[..., Any], *chunks: Iterable[Any]) -> list[Any]:
    """Return ``list(map(f, *chunks))``: one engine's share of a parallel ``map``.

    Parameters
    ----------
    f
        The mapped function.
    *chunks
        One slice of each mapped sequence, all of the same length.

    Returns
    -------
    list
        ``f`` applied to the elements of the chunks, in order.

    Raises
    ------
    Exception
        Whatever ``f`` raises, unchanged (the engine reports it as a remote error).

    Examples
    --------
    >>> map_chunk(pow, [1, 2, 3], [2, 2, 2])
    [1, 4, 9]
    """
    return list(map(f, *chunks))
