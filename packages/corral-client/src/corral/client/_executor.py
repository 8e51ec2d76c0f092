"""``ViewExecutor``: a :class:`concurrent.futures.Executor` on a view (``rc.executor()``)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from corral.wire.errors import TimeoutError as CorralTimeoutError

if TYPE_CHECKING:
    from corral.client._asyncresult import AsyncResult
    from corral.client._lbview import LoadBalancedView

__all__ = ["ViewExecutor"]


class ViewExecutor(concurrent.futures.Executor):
    """Run calls as load-balanced tasks; the futures are corral AsyncResults.

    Made with ``rc.executor()``. ``submit`` returns an :class:`~corral.client.AsyncResult`
    (a ``concurrent.futures.Future``), so ``concurrent.futures.wait`` and ``as_completed``
    work on it, and so does ``await`` in asyncio.

    Parameters
    ----------
    view
        The LoadBalancedView the calls go through (its flags apply).
    """

    def __init__(self, view: LoadBalancedView) -> None:
        #: the view calls go through
        self.view = view
        self._shutdown = False

    def _check(self) -> None:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> AsyncResult:
        """Run ``fn(*args, **kwargs)`` as a task and return its future.

        Raises
        ------
        RuntimeError
            After :meth:`shutdown`.
        SerializationError
            If ``fn`` or an argument cannot be serialized.
        """
        self._check()
        return self.view.apply_async(fn, *args, **kwargs)

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Like :func:`map`, every ``chunksize`` elements one task, all submitted at once.

        Returns
        -------
        An iterator of the results in order.

        Raises
        ------
        RuntimeError
            After :meth:`shutdown`.
        ValueError
            If ``chunksize`` < 1.
        corral.wire.errors.TimeoutError
            While iterating, if the results are not all in ``timeout`` seconds after the call.
        RemoteError
            While iterating, when reaching an element whose task failed.
        """
        self._check()
        amr = self.view.map(fn, *(list(it) for it in iterables), block=False, chunksize=chunksize)
        deadline = None if timeout is None else time.monotonic() + timeout

        def results() -> Iterator[Any]:
            # counted from this call, not from the first next() (as concurrent.futures says)
            if deadline is not None and not amr._wait(max(0.0, deadline - time.monotonic())):
                raise CorralTimeoutError(f"map of {amr._fname} not done within {timeout} s")
            yield from amr

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls; with ``cancel_futures`` abort queued tasks; with ``wait`` wait for the rest.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If aborting, and an engine does not confirm within the client's timeout.
        """
        self._shutdown = True
        if cancel_futures and self.view.outstanding:
            self.view.abort(block=True)
        if wait:
            self.view.wait()
