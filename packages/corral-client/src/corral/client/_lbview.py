"""``LoadBalancedView``: each call is a task the controller's scheduler gives to one engine.

Requests go out on the ``task`` channel without a routing identity; their scheduling options
(``targets``, ``after``, ``follow``, ``timeout``, ``retries``) travel in ``header["sched"]``,
which is left out when every option has its default (docs/scheduling.md).
"""

from __future__ import annotations

import concurrent.futures
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from traitlets import Any as AnyTrait
from traitlets import Int, TraitError, validate

from corral.client._asyncresult import AsyncMapResult, AsyncResult
from corral.client._engines import Targets, _is_int
from corral.client._partition import as_sequence, iter_items
from corral.client._view import View
from corral.wire.dependencies import Dependency
from corral.wire.remote_calls import map_chunk
from corral.wire.serialize import pack_apply_message

if TYPE_CHECKING:
    from traitlets.utils.bunch import Bunch

    from corral.client._client import Client

__all__ = ["LoadBalancedView"]

_UNSET: Any = object()


def _name_of(f: Callable[..., Any]) -> str:
    return str(getattr(f, "__name__", None) or type(f).__name__)


def _concat(chunks: list[Any]) -> list[Any]:
    return [x for chunk in chunks for x in chunk]


def _as_dependency(value: Any, flag: str) -> Dependency | None:
    if value is None:
        return None
    try:
        dep = value if isinstance(value, Dependency) else Dependency(value)
    except TypeError as err:
        raise TraitError(f"{flag} must be msg_ids, AsyncResults or a Dependency: {err}") from None
    return dep if dep else None


class LoadBalancedView(View):
    """Run each call on whichever engine the task scheduler chooses.

    Made with ``rc.load_balanced_view(targets=None)``. Besides ``block`` and ``track``,
    its flags say where and when tasks may run:

    ``targets``
        None (any engine), or the engine ids tasks may go to.
    ``after``
        A :class:`~corral.wire.dependencies.Dependency` (or msg_ids, AsyncResults): run only
        after these tasks finished.
    ``follow``
        The same: run only on an engine where these tasks ran.
    ``timeout``
        Seconds to wait for ``after``/``follow`` before failing with ``DependencyTimeout``;
        None or 0: wait as long as it takes.
    ``retries``
        Resubmit a task that failed or whose engine died, up to this many times.
    """

    targets = AnyTrait(None, allow_none=True, help="engine ids tasks may run on (None: any)")
    after = AnyTrait(None, allow_none=True, help="tasks that must finish first (time dependency)")
    follow = AnyTrait(None, allow_none=True, help="tasks whose engines to run on (location dependency)")
    timeout = AnyTrait(None, allow_none=True, help="seconds to wait for dependencies (None: forever)")
    retries = Int(0, help="times a failed task is resubmitted")

    _flag_names = ("block", "track", "targets", "after", "follow", "timeout", "retries")

    def __init__(self, client: Client, targets: Targets = None, **flags: Any) -> None:
        super().__init__(client, targets=targets, **flags)

    # -- flag validation -----------------------------------------------------------------------

    @validate("targets")
    def _valid_targets(self, proposal: Bunch) -> Any:
        value = proposal["value"]
        if value is None or (isinstance(value, str) and value == "all"):
            return None
        if _is_int(value):
            return [int(value)]
        if isinstance(value, (list, tuple, range, set)):
            if not value or not all(_is_int(t) for t in value):
                raise TraitError(f"targets must be None, an engine id or a non-empty list of ids, not {value!r}")
            return [int(t) for t in value]
        raise TraitError(f"targets must be None, an engine id or a list of ids, not {value!r}")

    @validate("after")
    def _valid_after(self, proposal: Bunch) -> Any:
        return _as_dependency(proposal["value"], "after")

    @validate("follow")
    def _valid_follow(self, proposal: Bunch) -> Any:
        return _as_dependency(proposal["value"], "follow")

    @validate("timeout")
    def _valid_timeout(self, proposal: Bunch) -> Any:
        value = proposal["value"]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != value:
            raise TraitError(f"timeout must be None or a number of seconds >= 0, not {value!r}")
        return None if value == 0 else float(value)

    @validate("retries")
    def _valid_retries(self, proposal: Bunch) -> Any:
        value = proposal["value"]
        if value < 0:
            raise TraitError(f"retries must be >= 0, not {value}")
        return value

    # -- sending -------------------------------------------------------------------------------

    def _sched(self, overrides: Mapping[str, Any]) -> dict[str, Any] | None:
        """``header["sched"]`` for the current flags and per-call overrides; None if all default."""
        flags: dict[str, Any] = {
            name: getattr(self, name) for name in ("targets", "after", "follow", "timeout", "retries")
        }
        if overrides:
            # validate per-call values exactly as flags, without changing the view
            with self.temp_flags(**overrides):
                flags.update({name: getattr(self, name) for name in overrides})
        sched: dict[str, Any] = {}
        if flags["targets"] is not None:
            ids, _ = self.client._engines.resolve(flags["targets"])  # negative ids, and a check
            sched["targets"] = ids
        for name in ("after", "follow"):
            if flags[name]:
                sched[name] = flags[name].as_json()
        if flags["timeout"] is not None:
            sched["timeout"] = flags["timeout"]
        if flags["retries"]:
            sched["retries"] = int(flags["retries"])
        return sched or None

    def _send(
        self,
        payloads: Sequence[tuple[Mapping[str, Any], Sequence[Any]]],
        *,
        fname: str,
        single: bool,
        track: bool | None,
        sched: Mapping[str, Any] | None,
        result_class: type[AsyncResult] = AsyncResult,
        **kwargs: Any,
    ) -> AsyncResult:
        none: list[Any] = [None] * len(payloads)
        ar = self.client._submit(
            "task",
            "apply_request",
            payloads,
            none,
            none,
            fname=fname,
            single=single,
            track=bool(self.track if track is None else track),
            sched=sched,
            result_class=result_class,
            **kwargs,
        )
        self.history.extend(ar.msg_ids)
        return ar

    def _payload(self, f: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        ser = self._serializer
        return ({"serializer": ser.name}, pack_apply_message(f, args, kwargs, ser))

    def _really_apply(
        self,
        f: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        block: bool | None = None,
        track: bool | None = None,
        targets: Targets = _UNSET,
        **sched_flags: Any,
    ) -> Any:
        if targets is not _UNSET:
            sched_flags["targets"] = targets
        sched = self._sched(sched_flags)
        ar = self._send([self._payload(f, args, kwargs)], fname=_name_of(f), single=True, track=track, sched=sched)
        return ar.get() if self._block(block) else ar

    def map(
        self,
        f: Callable[..., Any],
        *sequences: Any,
        block: bool | None = None,
        track: bool | None = None,
        chunksize: int = 1,
        ordered: bool = True,
    ) -> Any:
        """Parallel ``map(f, *sequences)``: every ``chunksize`` elements are one task.

        Parameters
        ----------
        chunksize
            Elements per task (default 1): larger chunks cost fewer messages, smaller ones
            balance better and let results be iterated sooner.
        ordered
            Iterating the AsyncMapResult yields results in order (True) or as tasks
            complete (False); ``get()`` is always in order.

        Returns
        -------
        list (blocking) or AsyncMapResult.

        Raises
        ------
        ValueError
            If no sequence is given, they differ in length, or ``chunksize`` < 1.
        TypeError
            If a sequence is not iterable.
        SerializationError
            If ``f`` or an element cannot be serialized.
        CompositeError
            When blocking, if tasks failed (the message names the failed elements).
        """
        if not sequences:
            raise ValueError("map needs at least one sequence")
        if not _is_int(chunksize) or chunksize < 1:
            raise ValueError(f"chunksize must be an int >= 1, not {chunksize!r}")
        seqs = [as_sequence(s) for s in sequences]
        n = len(seqs[0])
        if any(len(s) != n for s in seqs):
            raise ValueError(f"the sequences differ in length: {[len(s) for s in seqs]}")
        sched = self._sched({})
        bounds = [(lo, min(lo + chunksize, n)) for lo in range(0, n, chunksize)]
        payloads = [self._payload(map_chunk, (f, *(s[lo:hi] for s in seqs)), {}) for lo, hi in bounds]
        amr = self._send(
            payloads,
            fname=_name_of(f),
            single=False,
            track=track,
            sched=sched,
            result_class=AsyncMapResult,
            join=_concat,
            ordered=ordered,
            bounds=bounds,
        )
        return amr.get() if self._block(block) else amr

    def imap(
        self,
        f: Callable[..., Any],
        *iterables: Iterable[Any],
        ordered: bool = True,
        max_outstanding: int | str = "auto",
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Lazily map ``f`` over iterables of any length, with bounded work in flight.

        Elements are read from the iterables only as tasks are submitted, and at most
        ``max_outstanding`` tasks (of ``chunksize`` elements each) are unfinished at any time,
        so inputs and results that do not fit in memory at once stream through.

        Parameters
        ----------
        ordered
            Yield results in input order (True) or as tasks complete (False).
        max_outstanding
            Tasks in flight at most; ``"auto"``: twice the number of engines (at least 2).
        chunksize
            Elements per task.

        Returns
        -------
        An iterator of results. Stopping early leaves the tasks already sent running.

        Raises
        ------
        ValueError
            If no iterable is given, or ``chunksize`` or ``max_outstanding`` is invalid
            (raised at once, not at the first ``next()``).
        RemoteError
            While iterating, when a task failed (the error of that task).
        """
        if not iterables:
            raise ValueError("imap needs at least one iterable")
        if not _is_int(chunksize) or chunksize < 1:
            raise ValueError(f"chunksize must be an int >= 1, not {chunksize!r}")
        if max_outstanding == "auto":
            limit = max(2, 2 * len(self.client.ids))
        elif _is_int(max_outstanding) and int(max_outstanding) >= 1:  # type: ignore[call-overload]
            limit = int(max_outstanding)  # type: ignore[call-overload]
        else:
            raise ValueError(f"max_outstanding must be 'auto' or an int >= 1, not {max_outstanding!r}")
        sched = self._sched({})
        return self._imap(f, zip(*iterables, strict=False), bool(ordered), limit, int(chunksize), sched)

    def _imap(
        self,
        f: Callable[..., Any],
        items: Iterator[tuple[Any, ...]],
        ordered: bool,
        limit: int,
        chunksize: int,
        sched: dict[str, Any] | None,
    ) -> Iterator[Any]:
        inflight: deque[AsyncResult] = deque()
        exhausted = False

        def fill() -> None:
            nonlocal exhausted
            while not exhausted and len(inflight) < limit:
                chunk = list(itertools.islice(items, chunksize))
                if not chunk:
                    exhausted = True
                    return
                columns = list(zip(*chunk, strict=True))
                payload = self._payload(map_chunk, (f, *(list(c) for c in columns)), {})
                inflight.append(self._send([payload], fname=_name_of(f), single=True, track=False, sched=sched))

        fill()
        while inflight:
            if ordered:
                ar = inflight.popleft()
            else:
                done, _ = concurrent.futures.wait(inflight, return_when=concurrent.futures.FIRST_COMPLETED)
                ar = next(a for a in inflight if a in done)
                inflight.remove(ar)
            values = ar.get()
            fill()
            yield from iter_items(values)

    def abort(self, jobs: Any = None, targets: Targets = None, block: bool | None = None) -> AsyncResult | None:
        """Abort tasks not yet run (default: this view's outstanding ones); they fail with ``TaskAborted``.

        The engine a queued task went to is not known here, so every engine is told.

        Raises
        ------
        NoEnginesRegistered, IndexError, corral.wire.errors.TimeoutError
            As :meth:`Client.abort`.
        """
        return super().abort(jobs, targets=targets, block=block)
