"""Sync twins of coroutine methods: ``start_cluster_sync()`` runs ``start_cluster()``.

With no event loop running in the calling thread the coroutine runs on a fresh loop right
there; inside a running loop (Jupyter, IPython's autoawait) it runs on a fresh loop in a worker
thread, so the sync call still blocks and returns its result without deadlocking the caller's
loop.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync", "sync_twin"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, from sync code.

    Raises
    ------
    BaseException
        Whatever the coroutine raised.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as err:  # re-raised in the calling thread
            box["error"] = err

    thread = threading.Thread(target=worker, name="corral-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def sync_twin(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Make the blocking twin of a coroutine method (same arguments, same docstring subject)."""

    @functools.wraps(method)
    def twin(*args: Any, **kwargs: Any) -> T:
        return run_sync(method(*args, **kwargs))

    twin.__name__ = f"{method.__name__}_sync"
    twin.__qualname__ = f"{method.__qualname__}_sync"
    twin.__doc__ = f"Blocking version of :meth:`{method.__name__}`.\n\n{method.__doc__ or ''}"
    return twin
