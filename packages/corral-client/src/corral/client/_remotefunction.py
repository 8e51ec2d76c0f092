"""``RemoteFunction`` and ``ParallelFunction``: functions that run through a view when called.

Made by the ``@remote`` and ``@parallel`` decorators (module functions, or view methods).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from corral.client._partition import as_sequence, block_bounds, check_dist, join_partitions
from corral.wire.serialize import pack_apply_message

if TYPE_CHECKING:
    from corral.client._view import View

__all__ = ["ParallelFunction", "RemoteFunction", "parallel", "remote"]


class RemoteFunction:
    """A function that runs through a view when called: ``rf(*args)`` is ``view.apply(f, *args)``.

    Parameters
    ----------
    view
        The view to run on (direct or load-balanced).
    f
        The function.
    block
        Wait for the result (True) or return an AsyncResult (False); None: the view's flag.
    **flags
        Other view flags for these calls (``targets``, ``retries``, ``after``, ...), applied
        with ``temp_flags`` around each call.

    Raises
    ------
    TypeError
        If ``f`` is not callable, or a flag is not one of the view's.
    """

    def __init__(self, view: View, f: Callable[..., Any], block: bool | None = None, **flags: Any) -> None:
        if not callable(f):
            raise TypeError(f"a remote function needs a callable, not {type(f).__name__}")
        unknown = sorted(set(flags) - set(view._flag_names))
        if unknown:
            raise TypeError(f"{type(view).__name__} has no flag {', '.join(map(repr, unknown))}")
        # first: update_wrapper copies f's __dict__, which must not replace these (a
        # RemoteFunction wrapping another one would otherwise take over its view and flags)
        functools.update_wrapper(self, f)
        self.view = view
        self.func = f
        self.block = block
        self.flags = flags

    def _blocking(self) -> bool:
        return bool(self.view.block if self.block is None else self.block)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function through the view.

        Raises
        ------
        SerializationError, RemoteError, CompositeError, ...
            As the view's ``apply``.
        """
        with self.view.temp_flags(**self.flags):
            return self.view._really_apply(self.func, args, kwargs, block=self._blocking())


class ParallelFunction(RemoteFunction):
    """A function called with sequences, each engine (or task) getting a block of them.

    ``pf(seq)`` cuts ``seq`` into blocks (one per engine on a DirectView; ``chunksize``
    elements per task on a LoadBalancedView, by default one block per engine), calls the
    function with each block, and joins the returned blocks. ``pf.map(seq)`` instead calls it
    with each element, as the view's ``map``.

    Parameters
    ----------
    dist
        ``'b'`` (contiguous blocks), the only distribution.
    chunksize
        Elements per task on a LoadBalancedView.
    ordered
        Iteration order of ``map`` results on a LoadBalancedView.

    Raises
    ------
    ValueError
        If ``dist`` is not ``'b'``.
    """

    def __init__(
        self,
        view: View,
        f: Callable[..., Any],
        dist: str = "b",
        block: bool | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        **flags: Any,
    ) -> None:
        check_dist(dist)
        super().__init__(view, f, block=block, **flags)
        self.chunksize = chunksize
        self.ordered = ordered

    def __call__(self, *sequences: Any, **kwargs: Any) -> Any:
        """Call the function on blocks of ``sequences`` and join the blocks it returns.

        Raises
        ------
        ValueError
            If no sequence is given or they differ in length.
        RemoteError, CompositeError
            When blocking, if a call failed.
        """
        from corral.client._asyncresult import AsyncMapResult
        from corral.client._lbview import LoadBalancedView

        if not sequences:
            raise ValueError("a parallel function needs at least one sequence")
        seqs = [as_sequence(s) for s in sequences]
        n = len(seqs[0])
        if any(len(s) != n for s in seqs):
            raise ValueError(f"the sequences differ in length: {[len(s) for s in seqs]}")
        view = self.view
        ser = view._serializer
        name = str(getattr(self.func, "__name__", "parallel"))
        with view.temp_flags(**self.flags):
            if isinstance(view, LoadBalancedView):
                if self.chunksize:
                    bounds = [(lo, min(lo + self.chunksize, n)) for lo in range(0, n, self.chunksize)]
                else:
                    parts = max(1, len(view.client.ids))
                    bounds = [b for b in (block_bounds(n, i, parts) for i in range(parts)) if b[1] > b[0]]
                payloads = [
                    ({"serializer": ser.name}, pack_apply_message(self.func, [s[lo:hi] for s in seqs], kwargs, ser))
                    for lo, hi in bounds
                ]
                amr = view._send(
                    payloads,
                    fname=name,
                    single=False,
                    track=None,
                    sched=view._sched({}),
                    result_class=AsyncMapResult,
                    join=join_partitions,
                    ordered=self.ordered,
                    bounds=bounds,
                )
            else:
                ids, uuids, _ = view._resolve(None)  # type: ignore[attr-defined]
                payloads, used_ids, used_uuids, bounds = [], [], [], []
                for i, (eid, uuid) in enumerate(zip(ids, uuids, strict=True)):
                    lo, hi = block_bounds(n, i, len(ids))
                    if hi > lo:
                        frames = pack_apply_message(self.func, [s[lo:hi] for s in seqs], kwargs, ser)
                        payloads.append(({"serializer": ser.name}, frames))
                        used_ids.append(eid)
                        used_uuids.append(uuid)
                        bounds.append((lo, hi))
                amr = view._send(  # type: ignore[attr-defined]
                    "apply_request",
                    payloads,
                    used_ids,
                    used_uuids,
                    fname=name,
                    single=False,
                    track=None,
                    result_class=AsyncMapResult,
                    join=join_partitions,
                    bounds=bounds,
                )
        return amr.get() if self._blocking() else amr

    def map(self, *sequences: Any) -> Any:
        """Call the function on each element, as the view's ``map`` (with this function's flags).

        Raises
        ------
        ValueError, TypeError, SerializationError, RemoteError, CompositeError
            As the view's ``map``.
        """
        from corral.client._lbview import LoadBalancedView

        with self.view.temp_flags(**self.flags):
            if isinstance(self.view, LoadBalancedView):
                return self.view.map(
                    self.func, *sequences, block=self._blocking(), chunksize=self.chunksize or 1, ordered=self.ordered
                )
            return self.view.map(self.func, *sequences, block=self._blocking())


def remote(view: View, block: bool | None = None, **flags: Any) -> Callable[[Callable[..., Any]], RemoteFunction]:
    """Decorate a function to run through ``view`` when called.

    Raises
    ------
    TypeError
        If a flag is not one of the view's.

    Examples
    --------
    >>> @remote(rc.load_balanced_view(), block=True)  # doctest: +SKIP
    ... def getpid():
    ...     import os
    ...     return os.getpid()
    """

    def decorate(f: Callable[..., Any]) -> RemoteFunction:
        return RemoteFunction(view, f, block=block, **flags)

    return decorate


def parallel(
    view: View, dist: str = "b", block: bool | None = None, **flags: Any
) -> Callable[[Callable[..., Any]], ParallelFunction]:
    """Decorate a function to be called with sequences cut into blocks across ``view``.

    ``chunksize`` and ``ordered`` may be given for a LoadBalancedView.

    Raises
    ------
    ValueError
        If ``dist`` is not ``'b'``.
    TypeError
        If a flag is not one of the view's.

    Examples
    --------
    >>> @parallel(rc[:], block=True)  # doctest: +SKIP
    ... def double(block):
    ...     return [2 * x for x in block]
    >>> double(range(8))  # doctest: +SKIP
    [0, 2, 4, 6, 8, 10, 12, 14]
    """
    chunksize = flags.pop("chunksize", None)
    ordered = flags.pop("ordered", True)
    check_dist(dist)

    def decorate(f: Callable[..., Any]) -> ParallelFunction:
        return ParallelFunction(view, f, dist=dist, block=block, chunksize=chunksize, ordered=ordered, **flags)

    return decorate
