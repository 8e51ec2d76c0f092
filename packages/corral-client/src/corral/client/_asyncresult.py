"""AsyncResult and AsyncMapResult: futures for requests sent to engines.

Each is a :class:`concurrent.futures.Future` completed by the client's IO thread when the
last reply arrives, so ``add_done_callback``, ``concurrent.futures.wait``/``as_completed`` and
``await`` (through :func:`asyncio.wrap_future`) all work.

``result`` is a *method*, as in ``concurrent.futures`` and ipyparallel 7 and later:
``ar.result(timeout=None)`` waits and returns the value. ``ar.r`` is the property form of
``ar.get()`` that the seeds call ``result``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import TYPE_CHECKING, Any

import zmq

from corral.client._metadata import Metadata, utcnow
from corral.client._partition import iter_items, join_partitions
from corral.wire.errors import CompositeError, RemoteError
from corral.wire.errors import TimeoutError as CorralTimeoutError

if TYPE_CHECKING:
    from corral.client._client import Client
    from corral.client._store import Request

__all__ = ["AsyncMapResult", "AsyncResult"]

#: Seconds between looks at whether the controller was lost, while waiting for a result.
_LOST_POLL = 0.5
#: Seconds a waiting thread receives its direct replies itself before the IO thread wakes it.
_DIRECT_WAIT = 1.0


def _timeout(timeout: float | None) -> float | None:
    """-1 (or any negative number) and None both mean: wait forever."""
    return None if timeout is None or timeout < 0 else timeout


def _as_remote(req: Request) -> RemoteError:
    err = req.error
    if isinstance(err, RemoteError):
        return err
    assert err is not None
    info = {"engine_id": req.engine_id, "engine_uuid": req.engine_uuid} if req.engine_id is not None else {}
    return RemoteError(
        type(err).__name__,
        str(err),
        traceback.format_exception(type(err), err, err.__traceback__),
        info,  # type: ignore[arg-type]
    )


class AsyncResult(Future[Any]):
    """The pending result of requests sent to one or more engines.

    Made by views (``apply_async``, ``execute``, ``push`` ...), never directly. A superset of
    :class:`multiprocessing.pool.AsyncResult` (``get``, ``wait``, ``ready``, ``successful``)
    and a :class:`concurrent.futures.Future`; ``await ar`` works in asyncio code.

    A request to one engine (``targets`` an int) has a single value; a request to several
    has a list of values in target order. If one engine's call failed the error is a
    :class:`~corral.wire.errors.RemoteError` (or ``EngineError``, ``TaskAborted``); if the
    request went to several engines, every failure is collected in one
    :class:`~corral.wire.errors.CompositeError`.

    Done-callbacks run in the client's IO thread: keep them short, and do not wait for other
    results inside them.
    """

    def __init__(
        self,
        client: Client,
        requests: Sequence[Request],
        fname: str = "unknown",
        targets: Sequence[int] | None = None,
        single: bool = False,
        tracker: zmq.MessageTracker | None = None,
        sent: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.set_running_or_notify_cancel()  # sent already: cancel() cannot stop it, abort() can
        self._client = client
        self._requests = list(requests)
        #: ids of the messages this result waits for
        self.msg_ids: list[str] = [r.msg_id for r in self._requests]
        self._fname = fname
        self._targets = list(targets) if targets is not None else [r.engine_id for r in self._requests]
        self._single = single
        self._tracker = tracker
        self._sent = sent
        self._lock = threading.Lock()
        with self._lock:
            self._remaining = client._store.attach(self._requests, self._child_done)
            finished = self._remaining == 0
        if finished:
            self._finish()

    # -- completion (IO thread) ----------------------------------------------------------------

    def _child_done(self, req: Request) -> None:
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            self._finish()

    def _reconstruct(self, values: list[Any]) -> Any:
        return values[0] if self._single else values

    def _finish(self) -> None:
        failed = [r for r in self._requests if r.error is not None]
        if not failed:
            self.set_result(self._reconstruct([r.value for r in self._requests]))
        elif self._single:
            self.set_exception(failed[0].error)
        else:
            errors = [_as_remote(r) for r in failed]
            self.set_exception(CompositeError(f"one or more exceptions from call to method: {self._fname}", errors))

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self, timeout: float | None) -> bool:
        if self.done():
            return True
        if self._client._io.in_io_thread:
            raise RuntimeError(
                "cannot wait for a result in the client's IO thread (inside a done-callback): "
                "it would never arrive; chain another callback instead"
            )
        store = self._client._store
        deadline = None if timeout is None else time.monotonic() + timeout
        io = self._client._io
        if io.can_receive_direct(self._requests):
            # sent straight to the engines: take their replies in this thread (no hand-off from
            # the IO thread), for a while; a long wait goes on below, woken by the IO thread
            store.raise_if_lost()
            until = time.monotonic() + _DIRECT_WAIT
            if deadline is not None:
                until = min(until, deadline)
            if io.receive_direct(self, until):
                return True
        while True:
            store.raise_if_lost()
            left = None if deadline is None else deadline - time.monotonic()
            # wait in slices, so that a lost controller is noticed while waiting
            step = _LOST_POLL if left is None else max(0.0, min(_LOST_POLL, left))
            try:
                Future.exception(self, step)
            except FutureTimeout:  # the builtin TimeoutError from Python 3.11 on
                if left is not None and left <= _LOST_POLL:
                    return False
                continue
            return True

    def wait(self, timeout: float | None = -1) -> bool:
        """Wait until the result is available or ``timeout`` seconds pass (-1: forever).

        Returns
        -------
        bool
            Whether the result is ready (as ipyparallel's), whether or not the call succeeded.

        Raises
        ------
        RuntimeError
            If called from a done-callback (the IO thread).
        ControllerLost
            If the connection to the controller is lost while waiting.
        """
        return self._wait(_timeout(timeout))

    def ready(self) -> bool:
        """Return whether every request has its reply."""
        return self.done()

    @property
    def acknowledged(self) -> bool:
        """Whether the controller has stored every request of this result.

        A stored request no longer depends on this client: it runs, and any client can fetch its
        result by msg_id (``rc.get_result``), with the SQLite store across a controller restart
        too. The controller acknowledges requests in batches, within about 20 ms of storing
        them; a reply acknowledges its request too. Broadcast requests are not stored by the
        hub, so they are acknowledged only by their replies.
        """
        return self._client._store.acknowledged(self._requests)

    def wait_for_ack(self, timeout: float | None = -1) -> bool:
        """Wait until the controller has stored every request of this result (see :attr:`acknowledged`).

        Parameters
        ----------
        timeout
            Seconds to wait at most; -1 or None: no limit.

        Returns
        -------
        bool
            Whether every request is acknowledged (False: the timeout passed first).

        Raises
        ------
        RuntimeError
            If called from a done-callback (the IO thread), where no acknowledgement can arrive.
        ControllerLost
            If the connection to the controller is lost while waiting.

        Examples
        --------
        >>> ar = lview.map_async(simulate, params)  # doctest: +SKIP
        >>> ar.wait_for_ack(10)                      # now this script may exit
        True
        """
        if self._client._io.in_io_thread and not self.acknowledged:
            raise RuntimeError(
                "cannot wait for an acknowledgement in the client's IO thread (inside a done-callback): "
                "it would never arrive"
            )
        return self._client._store.wait_for_ack(self._requests, _timeout(timeout))

    def successful(self) -> bool:
        """Return whether the call completed without raising.

        Raises
        ------
        AssertionError
            If the result is not ready yet (as :class:`multiprocessing.pool.AsyncResult`).
        """
        if not self.done():
            raise AssertionError(f"{self!r} is not ready; wait() for it first")
        return Future.exception(self, 0) is None

    def get(self, timeout: float | None = -1) -> Any:
        """Return the result when it arrives, waiting at most ``timeout`` seconds (-1: forever).

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the result is not ready in time (also a builtin ``TimeoutError``).
        ControllerLost
            If the connection to the controller is lost while waiting (the result stays
            pending: it can still arrive if the controller comes back).
        RemoteError
            If the call failed on its engine (``EngineError``, ``TaskAborted`` for those cases).
        CompositeError
            If the request went to several engines and any of them failed.
        RuntimeError
            If called from a done-callback (the IO thread).
        """
        if not self._wait(_timeout(timeout)):
            raise CorralTimeoutError(f"result of {self._fname} not ready after {timeout} s")
        return Future.result(self, 0)

    def result(self, timeout: float | None = None) -> Any:
        """Return the result, waiting at most ``timeout`` seconds (None: forever).

        The ``concurrent.futures.Future`` method; the same as :meth:`get` except that its
        default timeout is None.

        Raises
        ------
        corral.wire.errors.TimeoutError, RemoteError, CompositeError, RuntimeError
            As :meth:`get`.
        """
        return self.get(timeout)

    @property
    def r(self) -> Any:
        """``get()``: the result, waiting for it."""
        return self.get()

    def get_dict(self, timeout: float | None = -1) -> dict[int, Any]:
        """Return the results as a dict keyed by engine id.

        Raises
        ------
        ValueError
            If several of the requests ran on one engine.
        corral.wire.errors.TimeoutError, RemoteError, CompositeError
            As :meth:`get`.
        """
        results = self.get(timeout)
        values = [results] if self._single else list(results)
        ids: list[int] = []
        for r in self._requests:
            eid = r.metadata.get("engine_id", r.engine_id)
            ids.append(int(eid) if eid is not None else -1)
        out: dict[int, Any] = {}
        for eid, value in zip(ids, values, strict=True):
            if eid in out:
                raise ValueError(f"cannot build a dict: {ids.count(eid)} requests ran on engine {eid}")
            out[eid] = value
        return out

    @property
    def result_dict(self) -> dict[int, Any]:
        """``get_dict()``."""
        return self.get_dict()

    # -- sending -------------------------------------------------------------------------------

    @property
    def sent(self) -> bool:
        """Whether the messages have been sent and ZeroMQ is done with their buffers."""
        handed = self._sent is None or self._sent.is_set()
        return handed and (self._tracker is None or self._tracker.done)

    def wait_for_send(self, timeout: float | None = -1) -> None:
        """Wait until :attr:`sent` (send with ``track=True`` to cover buffers), ``-1``: forever.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the send is not complete within ``timeout`` seconds.
        """
        limit = _timeout(timeout)
        start = time.monotonic()
        if self._sent is not None and not self._sent.wait(limit):
            raise CorralTimeoutError(f"{self._fname}: still waiting to be sent after {timeout} s")
        if self._tracker is not None:
            left = -1.0 if limit is None else max(0.0, limit - (time.monotonic() - start))
            try:
                self._tracker.wait(left)
            except zmq.NotDone:
                raise CorralTimeoutError(f"{self._fname}: ZeroMQ still holds the buffers after {timeout} s") from None

    # -- control and facts ---------------------------------------------------------------------

    def abort(self) -> None:
        """Ask the engines not to run those of my requests that have not started.

        Aborted requests fail with :class:`~corral.wire.errors.TaskAborted`. Requests that
        already ran are not affected.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If an engine does not confirm within the client's timeout.
        """
        pending = [r.msg_id for r in self._requests if not r.done]
        if pending:
            self._client.abort(pending, block=True)

    def __len__(self) -> int:
        return len(self.msg_ids)

    @property
    def progress(self) -> int:
        """How many of the requests have completed."""
        return sum(1 for r in self._requests if r.done)

    @property
    def metadata(self) -> Metadata | list[Metadata]:
        """Execution metadata: one dict for a single-engine request, else a list in target order."""
        mds = [r.metadata for r in self._requests]
        return mds[0] if self._single else mds

    def _dates(self, key: str) -> list[datetime]:
        return [r.metadata[key] for r in self._requests if isinstance(r.metadata.get(key), datetime)]

    @property
    def elapsed(self) -> float:
        """Seconds since the first request was submitted."""
        sub = self._dates("submitted")
        return (utcnow() - min(sub)).total_seconds() if sub else 0.0

    def timedelta(
        self,
        start: datetime | Sequence[datetime],
        end: datetime | Sequence[datetime],
        start_key: Callable[[Sequence[datetime]], datetime] = min,
        end_key: Callable[[Sequence[datetime]], datetime] = max,
    ) -> float:
        """Seconds between ``start_key(start)`` and ``end_key(end)`` (lists or single stamps)."""
        s = start if isinstance(start, datetime) else start_key(start)
        e = end if isinstance(end, datetime) else end_key(end)
        return (e - s).total_seconds()

    @property
    def wall_time(self) -> float:
        """Seconds from the first submission to the last reply received (0 while pending)."""
        sub, rec = self._dates("submitted"), self._dates("received")
        return self.timedelta(sub, rec) if sub and rec and self.done() else 0.0

    @property
    def serial_time(self) -> float:
        """Sum over the requests of their time running on the engine."""
        total = 0.0
        for r in self._requests:
            s, c = r.metadata.get("started"), r.metadata.get("completed")
            if isinstance(s, datetime) and isinstance(c, datetime):
                total += (c - s).total_seconds()
        return total

    # -- output --------------------------------------------------------------------------------

    def _output_entries(self) -> list[tuple[Any, Metadata]]:
        return [(r.metadata.get("engine_id", r.engine_id), r.metadata) for r in self._requests]

    def display_outputs(self, groupby: str = "type", result_only: bool = False) -> None:
        """Show what the requests printed and displayed, labelled by engine.

        stdout and stderr show as ``[stdout:0] ...`` / ``[stderr:1] ...``, rich output from
        ``display()`` on the engines as ``[output:2]`` followed by the object (rich in Jupyter
        and IPython, its plain text elsewhere), and the value of an executed cell's last
        expression as ``Out[0:3]: ...`` (engine 0, its execution count 3). Waits for nothing:
        call it once the result is ready to see everything.

        Parameters
        ----------
        groupby
            ``"type"`` (every stdout, then every stderr, then outputs, then results),
            ``"engine"`` (everything of engine 0, then of engine 1 ...), or ``"order"`` (as
            ``"type"``, with display outputs interleaved: each engine's first, then each one's
            second ...).
        result_only
            Show only the ``Out[...]`` results.

        Raises
        ------
        ValueError
            If ``groupby`` is not one of the three.
        """
        from corral.client._outputs import show_outputs

        show_outputs(self._output_entries(), groupby, result_only)

    def wait_interactive(self, interval: float = 0.1, timeout: float | None = -1, *, kind: str = "auto") -> None:
        """Wait while showing a progress bar: requests done / total, rate and elapsed time.

        The bar is a widget in a Jupyter kernel with ipywidgets and tqdm, tqdm's text bar where
        tqdm is installed (``pip install corral-client[progress]``), and a plain line
        otherwise. Returns when everything is done or ``timeout`` seconds passed (-1 or None:
        no limit), without raising the result's errors (``get()`` does that).

        Parameters
        ----------
        interval
            Seconds between two updates of the bar.
        timeout
            Give up waiting after this many seconds (the bar shows how far it got).
        kind
            ``"auto"``, or force ``"widget"``, ``"tqdm"`` or ``"plain"``.

        Raises
        ------
        ValueError
            If ``interval`` is not positive or ``kind`` is unknown.
        RuntimeError
            If called from a done-callback (the IO thread).
        """
        from corral.client._progress import make_bar

        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        limit = _timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        total = len(self)
        bar = make_bar(total, "tasks", kind)
        shown = 0
        try:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                step = interval if left is None else max(0.0, min(interval, left))
                finished = self._wait(step)
                done = total if finished else self.progress
                if done > shown:
                    bar.update(done - shown)
                    shown = done
                if finished or (deadline is not None and time.monotonic() >= deadline):
                    return
        finally:
            bar.close()

    def add_output_callback(self, callback: Callable[[str, str, dict[str, Any]], None]) -> None:
        """Call ``callback(msg_id, msg_type, content)`` for each iopub message of my requests.

        Messages are ``stream`` (``name``, ``text``), ``display_data`` (``data``,
        ``metadata``), ``execute_result``, ``error`` and ``status``, as they arrive, which is
        how output can be shown while the requests run (``%px --stream``). The callback runs
        in the client's IO thread: keep it short (hand the message to a queue) and do not
        wait for results in it. Output a request produced before the callback was added is
        not repeated; its metadata has it.
        """
        for r in self._requests:
            self._client._store.add_output_callback(r.msg_id, callback)

    def remove_output_callback(self, callback: Callable[[str, str, dict[str, Any]], None]) -> None:
        """Stop calling ``callback`` (see :meth:`add_output_callback`)."""
        for r in self._requests:
            self._client._store.remove_output_callback(r.msg_id, callback)

    # -- containers ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        """Yield each engine's result in target order, as each arrives.

        Raises
        ------
        TypeError
            For a single-engine result.
        RemoteError
            When reaching a request that failed.
        """
        if self._single:
            raise TypeError("a single-engine AsyncResult is not iterable; use get()")
        return (self._value_of(req) for req in self._requests)

    def _value_of(self, req: Request) -> Any:
        if not req.done:
            if self._client._io.in_io_thread:
                raise RuntimeError("cannot wait for a result in the client's IO thread")
            self._client._store.wait([req.msg_id], None)
        if req.error is not None:
            raise req.error
        return req.value

    def __getitem__(self, key: int | slice | str) -> Any:
        """Results by position (waits for nothing: not ready raises), or metadata by key."""
        if isinstance(key, str):
            values = [r.metadata[key] for r in self._requests]
            return values[0] if self._single else values
        if not self.done():
            raise CorralTimeoutError("result not ready")
        if self._single:
            raise TypeError("a single-engine AsyncResult cannot be indexed by position; use get()")
        return self.get(0)[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key not in Metadata():
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")
        return self[key]

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()

    def __repr__(self) -> str:
        state = ":finished" if self.done() else ""
        return f"<{type(self).__name__}: {self._fname}{state}>"


def _span(lo: int, hi: int) -> str:
    return str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}"


class AsyncMapResult(AsyncResult):
    """The pending result of a parallel ``map`` or ``gather``: one flat sequence.

    Each request returns one block; :meth:`get` joins them in order. Iterating yields the
    items as their blocks arrive: in order (``ordered=True``, the default), or in the order
    the blocks complete (``ordered=False``), so work can start on the first results while
    later ones are still running. Failures raise :class:`~corral.wire.errors.CompositeError`
    from :meth:`get`, whose message says which elements failed (also in
    :attr:`failed_elements`), or the block's own error while iterating.
    """

    def __init__(
        self,
        client: Client,
        requests: Sequence[Request],
        fname: str = "unknown",
        targets: Sequence[int] | None = None,
        single: bool = False,
        tracker: zmq.MessageTracker | None = None,
        sent: threading.Event | None = None,
        join: Callable[[list[Any]], Any] = join_partitions,
        ordered: bool = True,
        bounds: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        self._join = join
        #: iterate in submission order (True) or as blocks complete (False)
        self.ordered = bool(ordered)
        self._bounds = list(bounds) if bounds is not None else None
        self._arrival = threading.Condition()
        self._arrived: list[Request] = []
        self._seen: set[str] = set()
        super().__init__(client, requests, fname, targets, False, tracker, sent)
        with self._arrival:
            for req in self._requests:
                if req.done and req.msg_id not in self._seen:
                    self._seen.add(req.msg_id)
                    self._arrived.append(req)

    def _child_done(self, req: Request) -> None:
        with self._arrival:
            if req.msg_id not in self._seen:
                self._seen.add(req.msg_id)
                self._arrived.append(req)
            self._arrival.notify_all()
        super()._child_done(req)

    def _reconstruct(self, values: list[Any]) -> Any:
        return self._join(values)

    @property
    def failed_elements(self) -> dict[int, RemoteError]:
        """Index in the mapped sequences -> the error of the block that held it (failed blocks only)."""
        out: dict[int, RemoteError] = {}
        for i, req in enumerate(self._requests):
            if req.error is not None and self._bounds is not None:
                lo, hi = self._bounds[i]
                for k in range(lo, hi):
                    out[k] = _as_remote(req)
        return out

    def _finish(self) -> None:
        failed = [(i, r) for i, r in enumerate(self._requests) if r.error is not None]
        if not failed or self._bounds is None:
            super()._finish()
            return
        spans = ", ".join(_span(*self._bounds[i]) for i, _ in failed)
        errors = [_as_remote(r) for _, r in failed]
        total = self._bounds[-1][1] if self._bounds else 0
        self.set_exception(
            CompositeError(
                f"one or more exceptions from call to method: {self._fname}; elements {spans} of {total} failed",
                errors,
            )
        )

    def __iter__(self) -> Iterator[Any]:
        """Yield the mapped values block by block as they arrive (see :attr:`ordered`).

        Raises
        ------
        RemoteError
            When reaching a block whose request failed.
        RuntimeError
            If called from a done-callback (the IO thread).
        """
        if self.ordered:
            for req in self._requests:
                yield from iter_items(self._value_of(req))
            return
        for i in range(len(self._requests)):
            with self._arrival:
                if len(self._arrived) <= i and self._client._io.in_io_thread:
                    raise RuntimeError("cannot wait for a result in the client's IO thread")
                while len(self._arrived) <= i:
                    self._arrival.wait()
                req = self._arrived[i]
            yield from iter_items(self._value_of(req))
