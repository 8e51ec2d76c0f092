"""``View``: the flags, waiting and control that every kind of view shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from traitlets import Any as AnyTrait
from traitlets import Bool, HasTraits, TraitError

from corral.client._asyncresult import AsyncMapResult, AsyncResult
from corral.client._engines import Targets, _is_int
from corral.client._remotefunction import ParallelFunction, RemoteFunction, parallel, remote
from corral.wire.serialize import Serializer, get_serializer

if TYPE_CHECKING:
    from corral.client._client import Client

__all__ = ["View"]


class _TargetsTrait(AnyTrait):
    """Any value, but None goes through validation too (views turn it into 'all')."""

    allow_none = False


class View(HasTraits):
    """What every view shares: flags, waiting, and control of its engines.

    Do not make one directly: use ``rc[...]`` or ``rc.direct_view()``.

    Flags (traits; set them as attributes, with :meth:`set_flags`, or for a block of code
    with :meth:`temp_flags`):

    ``block``
        Wait for results and return them (True), or return an AsyncResult (False, default).
    ``track``
        Return results whose ``wait_for_send()`` tells when ZeroMQ no longer needs the
        arrays and buffers sent (they are sent without copying).
    ``targets``
        Which engines the view runs on.
    """

    block = Bool(False, help="wait for results instead of returning an AsyncResult")
    track = Bool(False, help="track non-copying sends (AsyncResult.wait_for_send)")
    targets = _TargetsTrait("all", help="the engines this view runs on")

    _flag_names: ClassVar[tuple[str, ...]] = ("block", "track", "targets")

    def __init__(self, client: Client, **flags: Any) -> None:
        super().__init__()
        #: the Client this view sends through
        self.client = client
        #: msg_ids of every request sent through this view
        self.history: list[str] = []
        self._serializer: Serializer = get_serializer("pickle")
        self.set_flags(**flags)

    # -- flags ---------------------------------------------------------------------------------

    def set_flags(self, **flags: Any) -> None:
        """Set several flags at once; either all are set or none.

        Raises
        ------
        TypeError
            If a name is not a flag of this view (the message lists the flags).
        traitlets.TraitError
            If a value is not valid for its flag (the message says what it expects).
        """
        unknown = sorted(set(flags) - set(self._flag_names))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no flag {', '.join(map(repr, unknown))}; "
                f"its flags are {', '.join(self._flag_names)}"
            )
        saved = {name: getattr(self, name) for name in flags}
        try:
            for name, value in flags.items():
                setattr(self, name, value)
        except TraitError:
            for name, value in saved.items():
                setattr(self, name, value)
            raise

    @contextmanager
    def temp_flags(self, **flags: Any) -> Iterator[None]:
        """Set flags for the duration of a ``with`` block, then restore every flag.

        Raises
        ------
        TypeError, traitlets.TraitError
            As :meth:`set_flags`, on entry (nothing is changed then).

        Examples
        --------
        >>> with view.temp_flags(block=True):  # doctest: +SKIP
        ...     view.apply(f)  # the result, not an AsyncResult
        """
        saved = {name: getattr(self, name) for name in self._flag_names}
        self.set_flags(**flags)
        try:
            yield
        finally:
            self.set_flags(**saved)

    def _block(self, block: bool | None) -> bool:
        return bool(self.block if block is None else block)

    def use_dill(self) -> None:
        """Serialize with dill in this view only (closures, classes and more); engines need dill.

        Raises
        ------
        SerializationError
            If dill is not installed here.
        """
        self._serializer = Serializer(use_dill=True)

    # -- apply and map -------------------------------------------------------------------------

    def _really_apply(
        self,
        f: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        block: bool | None = None,
        track: bool | None = None,
        targets: Targets = None,
    ) -> Any:
        raise NotImplementedError

    def apply(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``f(*args, **kwargs)`` on the engines, blocking or not per :attr:`block`.

        Returns
        -------
        AsyncResult, or the result(s) when ``block`` is set: one value for a single-engine
        view, a list in target order otherwise.

        Raises
        ------
        SerializationError
            If ``f`` or an argument cannot be serialized (before anything is sent).
        NoEnginesRegistered, IndexError
            If the view's targets are not registered engines.
        RemoteError, CompositeError
            When blocking, if the call failed on an engine.
        """
        return self._really_apply(f, args, kwargs)

    def apply_async(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> AsyncResult:
        """Call ``f(*args, **kwargs)`` on the engines and return an AsyncResult at once.

        Raises
        ------
        SerializationError, NoEnginesRegistered, IndexError
            As :meth:`apply`.
        """
        ar: AsyncResult = self._really_apply(f, args, kwargs, block=False)
        return ar

    def apply_sync(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``f(*args, **kwargs)`` on the engines and return the result(s).

        Raises
        ------
        SerializationError, NoEnginesRegistered, IndexError, RemoteError, CompositeError
            As :meth:`apply`.
        """
        return self._really_apply(f, args, kwargs, block=True)

    def map(self, f: Callable[..., Any], *sequences: Any, block: bool | None = None, track: bool | None = None) -> Any:
        """Parallel ``map(f, *sequences)``; see the subclass for how work is split."""
        raise NotImplementedError

    def map_async(self, f: Callable[..., Any], *sequences: Any, **kwargs: Any) -> AsyncMapResult:
        """``map(f, *sequences, block=False, **kwargs)``: an :class:`AsyncMapResult`.

        Keyword arguments are those of the view's :meth:`map` (``track``; ``chunksize`` and
        ``ordered`` on a LoadBalancedView).

        Raises
        ------
        ValueError, TypeError, SerializationError, NoEnginesRegistered
            As :meth:`map`.
        """
        amr: AsyncMapResult = self.map(f, *sequences, block=False, **kwargs)
        return amr

    def map_sync(self, f: Callable[..., Any], *sequences: Any, **kwargs: Any) -> list[Any]:
        """``map(f, *sequences, block=True, **kwargs)``: the list of results.

        Raises
        ------
        ValueError, TypeError, SerializationError, NoEnginesRegistered, RemoteError, CompositeError
            As :meth:`map`.
        """
        out: list[Any] = self.map(f, *sequences, block=True, **kwargs)
        return out

    # -- decorators ----------------------------------------------------------------------------

    def remote(self, block: bool | None = None, **flags: Any) -> Callable[[Callable[..., Any]], RemoteFunction]:
        """Decorate a function to run through this view when called (a :class:`RemoteFunction`).

        Raises
        ------
        TypeError
            If a flag is not one of this view's.
        """
        return remote(self, block=block, **flags)

    def parallel(
        self, dist: str = "b", block: bool | None = None, **flags: Any
    ) -> Callable[[Callable[..., Any]], ParallelFunction]:
        """Decorate a function to be called with sequences cut into blocks (a :class:`ParallelFunction`).

        Raises
        ------
        ValueError
            If ``dist`` is not ``'b'``.
        TypeError
            If a flag is not one of this view's.
        """
        return parallel(self, dist=dist, block=block, **flags)

    # -- waiting and control -------------------------------------------------------------------

    @property
    def outstanding(self) -> set[str]:
        """msg_ids sent through this view that have no reply yet."""
        return set(self.history) & self.client.outstanding

    def spin(self) -> None:
        """Flush the client's incoming messages (see :meth:`Client.spin`)."""
        self.client.spin()

    def wait(self, jobs: Any = None, timeout: float | None = -1) -> bool:
        """Wait for ``jobs`` (default: everything sent through this view); see :meth:`Client.wait`.

        Raises
        ------
        ValueError, IndexError
            As :meth:`Client.wait`.
        """
        return self.client.wait(self.history if jobs is None else jobs, timeout)

    def abort(self, jobs: Any = None, targets: Targets = None, block: bool | None = None) -> AsyncResult | None:
        """Abort queued requests (default: this view's outstanding ones); see :meth:`Client.abort`.

        Raises
        ------
        NoEnginesRegistered, IndexError, corral.wire.errors.TimeoutError
            As :meth:`Client.abort`.
        """
        jobs = sorted(self.outstanding) if jobs is None else jobs
        return self.client.abort(jobs, targets=targets, block=self._block(block))

    def get_result(self, indices_or_msg_ids: Any = None, block: bool | None = None) -> AsyncResult:
        """An AsyncResult for earlier requests; see :meth:`Client.get_result`.

        Raises
        ------
        ResultExpired, ValueError, IndexError, corral.wire.errors.TimeoutError
            As :meth:`Client.get_result`.
        """
        return self.client.get_result(indices_or_msg_ids, block=self._block(block))

    def purge_results(self, jobs: Any = (), targets: Targets = ()) -> int:
        """Forget finished results here and on the hub; see :meth:`Client.purge_results`.

        Raises
        ------
        ValueError, RuntimeError, corral.wire.errors.TimeoutError
            As :meth:`Client.purge_results`.
        """
        return self.client.purge_results(jobs, targets)

    def queue_status(self, targets: Targets = None, verbose: bool = False) -> dict[Any, Any]:
        """The hub's queue counts for this view's engines; see :meth:`Client.queue_status`.

        Raises
        ------
        corral.wire.errors.TimeoutError, NoEnginesRegistered, IndexError
            As :meth:`Client.queue_status`.
        """
        return self.client.queue_status(self.targets if targets is None else targets, verbose)

    def shutdown(
        self, targets: Targets = None, restart: bool = False, hub: bool = False, block: bool | None = None
    ) -> AsyncResult | None:
        """Stop this view's engines (and the controller with ``hub=True``); see :meth:`Client.shutdown`.

        Raises
        ------
        NoEnginesRegistered, IndexError, corral.wire.errors.TimeoutError
            As :meth:`Client.shutdown`.
        """
        targets = self.targets if targets is None else targets
        return self.client.shutdown(targets, restart=restart, hub=hub, block=self._block(block))

    def __len__(self) -> int:
        if _is_int(self.targets):
            return 1
        if isinstance(self.targets, list):
            return len(self.targets)
        return len(self.client.ids)

    def __repr__(self) -> str:
        text = str(self.targets)
        if len(text) > 40:
            text = text[:36] + "...]"
        return f"<{type(self).__name__} {text}>"
