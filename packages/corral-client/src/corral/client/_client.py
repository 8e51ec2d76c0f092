"""The Client: a connection to one cluster, the engines it has, and what was sent to them."""

from __future__ import annotations

import functools
import os
import signal as _signal
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType
from typing import TYPE_CHECKING, Any

import zmq

from corral.client._asyncresult import AsyncResult
from corral.client._broadcastview import BroadcastView
from corral.client._connection import load_connection_info, make_session
from corral.client._directview import DirectView
from corral.client._engines import EngineTable, Targets, _is_int
from corral.client._executor import ViewExecutor
from corral.client._ioloop import IOThread
from corral.client._lbview import LoadBalancedView
from corral.client._metadata import Metadata, utcnow
from corral.client._resync import resync
from corral.client._store import Request, ResultStore, client_closed_error
from corral.wire.connection import ConnectionInfo, channel_url
from corral.wire.errors import CorralError, unwrap_exception
from corral.wire.errors import TimeoutError as CorralTimeoutError
from corral.wire.message import Message
from corral.wire.protocol import direct_enabled
from corral.wire.session import Session

if TYPE_CHECKING:
    from corral.client._benchmark import BenchmarkResult

__all__ = ["Client"]

Payload = tuple[Mapping[str, Any], Sequence[Any]]


def _is_empty(value: Any) -> bool:
    """True for None and empty containers (not for 0, an engine id or a history index)."""
    if value is None:
        return True
    if isinstance(value, (str, bytes)) or _is_int(value) or isinstance(value, AsyncResult):
        return False
    try:
        return len(value) == 0
    except TypeError:
        return False


def _dependency_metadata(md: Metadata, sched: Mapping[str, Any]) -> None:
    """Record a task's ``after``/``follow`` msg_ids (from ``header["sched"]``) in its metadata."""
    for key in ("after", "follow"):
        dep = sched.get(key)
        if isinstance(dep, Mapping):
            md[key] = list(dep.get("msg_ids") or [])


#: Messages of one submission signed before they are sent: a long map's first tasks reach the
#: engines while the rest are still being signed.
_SEND_BATCH = 128


class Client:
    """A connection to a corral cluster.

    Parameters
    ----------
    connection_file
        Path of the controller's connection file, or connection info already read (a
        mapping). By default, the file of the cluster ``cluster_id`` (or of the default
        cluster) under ``~/.corral/security`` (``$CORRAL_DIR`` moves it).
    cluster_id
        Which cluster to connect to when no connection file is given.
    timeout
        Seconds to wait for the controller to answer, at connection and for each query.
    context
        The ZeroMQ context for the sockets (the process's shared one by default).
    direct
        Send direct-view requests straight to engines that accept them, skipping the
        controller (it is still told about each request and result, by the engine). None
        (default): yes, unless the environment variable ``CORRAL_DIRECT`` is ``0``.

    Raises
    ------
    ConnectionFileError
        If there is no usable connection file.
    corral.wire.errors.TimeoutError
        If the controller does not answer within ``timeout`` (the message names its address).
    ValueError
        If both ``connection_file`` and ``cluster_id`` are given, or ``CORRAL_DIRECT`` is
        neither 0 nor 1.

    Examples
    --------
    >>> rc = Client(cluster_id="default")  # doctest: +SKIP
    >>> rc.ids  # doctest: +SKIP
    [0, 1, 2, 3]
    >>> rc[:].apply_sync(lambda: 42)  # doctest: +SKIP
    [42, 42, 42, 42]
    """

    def __init__(
        self,
        connection_file: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        cluster_id: str | None = None,
        timeout: float = 10.0,
        context: zmq.Context[Any] | None = None,
        direct: bool | None = None,
    ) -> None:
        use_direct = direct_enabled() if direct is None else bool(direct)
        info, source = load_connection_info(connection_file, cluster_id)
        #: the connection file's contents
        self.connection_info: ConnectionInfo = info
        #: the one Session that signs and checks this client's messages
        self.session: Session = make_session(info)
        #: seconds to wait for the controller to answer a query
        self.timeout = float(timeout)
        #: default of ``block`` for the client's own control methods
        self.block = False
        self._closed = False
        self._store = ResultStore()
        self._engines = EngineTable()
        self._io = IOThread(
            context or zmq.Context.instance(),
            info,
            self.session,
            self._store,
            self._engines,
            self.timeout,
            direct=use_direct,
        )
        self._finalizer = weakref.finalize(self, self._io.stop)
        # a weak reference: the IO thread must not keep the client alive (the finalizer above)
        self._io.on_reconnect = functools.partial(resync, weakref.ref(self))
        self._io.start()
        try:
            self._connect(source)
        except BaseException:
            self.close()
            raise

    def _connect(self, source: str) -> None:
        try:
            reply = self._query("connection_request", {})
        except CorralError as err:
            if not isinstance(err, CorralTimeoutError) and "no connection" not in str(err):
                raise
            url = channel_url(self.connection_info, "registration")
            raise CorralTimeoutError(
                f"the controller at {url} did not answer within {self.timeout:g} s "
                f"(connection file: {source}); is the cluster running, and is this its current "
                f"connection file (a controller refuses clients without its key)?{self._drops()}"
            ) from None
        self._engines.apply_snapshot(reply.content.get("engines") or {})
        for uuid, address in dict(reply.content.get("shm") or {}).items():
            self.session.add_shm_route(str(uuid).encode("ascii", "replace"), address)
        self._io.add_direct_routes(dict(reply.content.get("direct") or {}))

    def _drops(self) -> str:
        """Messages dropped on receipt, for timeout messages (wrong key, other corral version)."""
        drops: dict[str, int] = {}
        for (_, reason), n in self.session.rejections.items():
            drops[reason] = drops.get(reason, 0) + n
        if not drops:
            return ""
        listed = ", ".join(f"{n} {reason}" for reason, n in sorted(drops.items()))
        return (
            f" Messages from the controller were dropped ({listed}): bad_signature means the "
            "connection file's key is not the controller's, incompatible_version that the two "
            "sides run different corral versions."
        )

    # -- engines and views ---------------------------------------------------------------------

    @property
    def ids(self) -> list[int]:
        """Sorted ids of the engines that are registered now."""
        return self._engines.ids

    def __len__(self) -> int:
        return len(self._engines.ids)

    def __iter__(self) -> Iterator[DirectView]:
        """Yield a single-engine DirectView for each registered engine."""
        for eid in self.ids:
            yield DirectView(self, targets=eid)

    def __getitem__(self, key: int | slice | Sequence[int]) -> DirectView:
        """Return a DirectView on the engines ``key`` selects, fixed now.

        ``rc[0]`` (one engine, single results), ``rc[-1]``, ``rc[0, 1]``, ``rc[::2]``,
        ``rc[:]``: the selection is evaluated against :attr:`ids` at this moment and does
        not follow engines that join or leave later.

        Raises
        ------
        NoEnginesRegistered
            If no engine is registered.
        IndexError
            If an id is not registered, or a slice selects none.
        TypeError
            If ``key`` is of another type.
        """
        if isinstance(key, str):
            raise TypeError(f"index a Client by engine id, list or slice, not str ({key!r})")
        ids, _ = self._engines.resolve(key)
        if isinstance(key, slice) and not ids:
            raise IndexError(f"the slice {key} selects no engine (live engine ids: {self.ids})")
        return DirectView(self, targets=ids[0] if _is_int(key) else ids)

    def direct_view(self, targets: Targets = "all") -> DirectView:
        """Return a DirectView on ``targets``.

        With ``'all'`` (the default) the view runs on every engine registered *at each call*;
        any other value is resolved now, as for ``rc[...]``.

        Raises
        ------
        NoEnginesRegistered, IndexError, TypeError
            As :meth:`__getitem__`, when ``targets`` is not ``'all'``.
        """
        if targets is None or (isinstance(targets, str) and targets == "all"):
            return DirectView(self, targets="all")
        return self[targets]

    def load_balanced_view(self, targets: Targets = None, **flags: Any) -> LoadBalancedView:
        """Return a LoadBalancedView: the task scheduler picks an engine for each call.

        Parameters
        ----------
        targets
            Restrict the engines tasks may run on (an id or a list of ids); None: any.
        **flags
            Initial values of the view's other flags (``block``, ``retries``, ``after`` ...).

        Raises
        ------
        TypeError
            For an unknown flag.
        traitlets.TraitError
            If ``targets`` is not None, an id or a list of ids, or a flag's value is invalid.
        """
        return LoadBalancedView(self, targets=targets, **flags)

    def executor(self, targets: Targets = None, **flags: Any) -> ViewExecutor:
        """Return a :class:`concurrent.futures.Executor` that runs calls through a LoadBalancedView.

        Parameters
        ----------
        targets
            As :meth:`load_balanced_view`.
        **flags
            Flags of the view (``retries``, ``after``, ...).

        Raises
        ------
        TypeError, traitlets.TraitError
            For an unknown flag or a bad value.
        """
        return ViewExecutor(LoadBalancedView(self, targets=targets, **flags))

    def benchmark(self, runs: int = 10, size_mb: float = 10.0, targets: Targets = "all") -> BenchmarkResult:
        """Measure this cluster's command latency and push throughput; ``print()`` the result.

        Latency is the round trip of engines running ``pass`` (one engine, then all of
        ``targets`` at once); throughput is ``push`` of a float64 numpy array of ``size_mb``
        MB to one engine, then to all of ``targets``. Each is timed ``runs`` times after one
        untimed warm-up; the result holds every run, and its table shows the median and the
        range. ``corral bench`` prints the same from the command line.

        Parameters
        ----------
        runs
            Timed runs per measurement.
        size_mb
            Size of the pushed array, in MB (1e6 bytes); each engine holds one copy meanwhile.
        targets
            The engines to measure (default: all).

        Returns
        -------
        BenchmarkResult
            The measurements; ``result["latency, 1 engine"].median`` is one number.

        Raises
        ------
        ValueError
            If ``runs`` is below 1 or ``size_mb`` is not positive.
        NoEnginesRegistered, IndexError
            If no engine is registered, or ``targets`` names one that is not.
        ImportError
            If numpy is not installed.
        RemoteError, CompositeError
            If an engine fails a request (e.g. has no memory for the array).

        Examples
        --------
        >>> print(rc.benchmark(runs=5, size_mb=1))  # doctest: +SKIP
        corral benchmark: engines [0, 1], 5 runs each, array of 1 MB (float64)
          measurement               median  min - max
          ...
        """
        from corral.client._benchmark import run_benchmark

        return run_benchmark(self, runs=runs, size_mb=size_mb, targets=targets)

    def wait_for_engines(self, n: int, timeout: float | None = -1) -> None:
        """Block until at least ``n`` engines are registered (``timeout`` -1 or None: forever).

        Raises
        ------
        corral.wire.errors.TimeoutError
            If fewer than ``n`` are registered when ``timeout`` seconds have passed.
        ValueError
            If ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"n must be at least 0, not {n}")
        self._engines.wait_for(n, None if timeout is None or timeout < 0 else timeout)

    # -- results -------------------------------------------------------------------------------

    @property
    def outstanding(self) -> set[str]:
        """msg_ids of requests to engines still waiting for a reply (a copy)."""
        return self._store.outstanding

    @property
    def history(self) -> list[str]:
        """msg_ids of every request sent to engines, oldest first (a copy)."""
        return self._store.history

    @property
    def results(self) -> dict[str, Any]:
        """msg_id -> result value (or the exception the request raised), as replies arrive."""
        return self._store.results

    @property
    def metadata(self) -> dict[str, Metadata]:
        """msg_id -> :class:`Metadata` of every request sent."""
        return self._store.metadata

    def spin(self) -> None:
        """Handle every message already received; the IO thread does this on its own anyway.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the IO thread does not answer within the client's timeout.
        """
        self._check_open()
        if not self._io.flush(self.timeout):
            raise CorralTimeoutError(f"the client IO thread did not answer within {self.timeout:g} s")

    def _msg_ids(self, jobs: Any) -> list[str]:
        if jobs is None:
            return sorted(self._store.outstanding)
        if isinstance(jobs, AsyncResult):
            return list(jobs.msg_ids)
        if isinstance(jobs, str):
            if self._store.get(jobs) is None:
                raise ValueError(f"unknown msg_id {jobs!r}: this client did not send it")
            return [jobs]
        if _is_int(jobs):
            return [self._store.history_at(int(jobs))]
        if isinstance(jobs, Iterable):
            return [m for job in jobs for m in self._msg_ids(job)]
        raise TypeError(f"jobs must be msg_ids, history indices or AsyncResults, not {type(jobs).__name__}")

    def wait(self, jobs: Any = None, timeout: float | None = -1) -> bool:
        """Wait until ``jobs`` are done, for at most ``timeout`` seconds (-1 or None: forever).

        Parameters
        ----------
        jobs
            msg_ids, indices into :attr:`history`, AsyncResults, or a list of them;
            default: everything outstanding.

        Returns
        -------
        bool
            True if all are done, False if the timeout passed first.

        Raises
        ------
        ValueError
            For a msg_id this client did not send.
        IndexError
            For an index outside :attr:`history`.
        """
        ids = self._msg_ids(jobs)
        return self._store.wait(ids, None if timeout is None or timeout < 0 else timeout)

    # -- sending -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CorralError("this Client is closed; make a new one")

    def _submit(
        self,
        channel: str,
        msg_type: str,
        payloads: Sequence[Payload],
        ids: Sequence[int | None],
        uuids: Sequence[str | None],
        *,
        fname: str,
        single: bool = False,
        track: bool = False,
        in_history: bool = True,
        sched: Mapping[str, Any] | None = None,
        result_class: type[AsyncResult] = AsyncResult,
        **result_kwargs: Any,
    ) -> AsyncResult:
        """Sign one message per target, register them and send them, all in this thread.

        ``payloads[i]`` is the (content, buffers) for target ``i``; a uuid of None sends
        without a routing identity (the scheduler chooses). ``sched``, when given, goes into
        every header as ``header["sched"]`` (docs/scheduling.md).

        Raises
        ------
        CorralError
            If the client is closed.
        TypeError
            If a content holds something JSON cannot encode.
        """
        self._check_open()
        session = self.session
        frames: list[list[Any]] = []
        requests: list[Request] = []
        batch: list[Request] = []
        tracked: list[zmq.Frame] = []
        now = utcnow()
        for (content, buffers), eid, uuid in zip(payloads, ids, uuids, strict=True):
            if len(frames) >= _SEND_BATCH:
                # a long map starts on the engines while the rest is signed: registered first,
                # so no reply arrives unannounced (the result below counts what already came)
                self._store.add(batch)
                self._io.send(channel, frames, batch)
                frames, batch = [], []
            msg = session.msg(msg_type, content)
            if sched:
                msg.header["sched"] = dict(sched)
            idents = [] if uuid is None else [uuid.encode("ascii")]
            parts = session.serialize(msg, buffers, idents)
            if track and buffers:
                head = len(idents) + 6
                own = [zmq.Frame(b, track=True, copy=False) for b in parts[head:]]
                tracked.extend(own)
                parts = parts[:head] + own
            frames.append(parts)
            md = Metadata(msg_id=msg.msg_id, submitted=now, engine_id=eid, engine_uuid=uuid)
            if sched:
                _dependency_metadata(md, sched)
            req = Request(msg.msg_id, msg_type, eid, uuid, md, in_history)
            requests.append(req)
            batch.append(req)
        self._store.add(batch)
        self._io.send(channel, frames, batch)
        tracker = zmq.MessageTracker(*tracked) if tracked else None
        # sent in this thread, above: nothing to wait for but the tracked buffers
        return result_class(self, requests, fname, list(ids), single, tracker, None, **result_kwargs)  # type: ignore[arg-type]

    def _submit_broadcast(
        self,
        msg_type: str,
        payload: Payload,
        ids: Sequence[int],
        uuids: Sequence[str],
        *,
        fname: str,
        single: bool = False,
        track: bool = False,
        result_class: type[AsyncResult] = AsyncResult,
        **result_kwargs: Any,
    ) -> AsyncResult:
        """Send one message on the ``broadcast`` channel naming ``ids``; one result per engine.

        The engines' replies all answer the one message; each is matched to its engine by the
        ``engine_id`` in its metadata (docs/scheduling.md, "Broadcast").

        Raises
        ------
        CorralError
            If the client is closed.
        TypeError
            If the content holds something JSON cannot encode.
        """
        self._check_open()
        session = self.session
        content, buffers = payload
        msg = session.msg(msg_type, content)
        msg.header["sched"] = {"targets": list(ids)}
        parts = session.serialize(msg, buffers)
        tracked: list[zmq.Frame] = []
        if track and buffers:
            tracked = [zmq.Frame(b, track=True, copy=False) for b in parts[6:]]
            parts = parts[:6] + tracked
        now = utcnow()
        requests = []
        for eid, uuid in zip(ids, uuids, strict=True):
            key = f"{msg.msg_id}:{eid}"
            md = Metadata(msg_id=key, submitted=now, engine_id=eid, engine_uuid=uuid)
            requests.append(Request(key, msg_type, eid, uuid, md, True, wire_id=msg.msg_id))
        self._store.add_broadcast(msg.msg_id, requests)
        tracker = zmq.MessageTracker(*tracked) if tracked else None
        ar = result_class(self, requests, fname, list(ids), single, tracker, None, **result_kwargs)  # type: ignore[arg-type]
        self._io.send("broadcast", [parts], requests)
        return ar

    def broadcast_view(self, targets: Targets = "all", **flags: Any) -> BroadcastView:
        """Return a BroadcastView: a DirectView whose calls on many engines are one message.

        Raises
        ------
        NoEnginesRegistered, IndexError, TypeError
            As :meth:`direct_view`, when ``targets`` is not ``'all'``.
        """
        if not (targets is None or (isinstance(targets, str) and targets == "all")):
            ids, _ = self._engines.resolve(targets)
            targets = ids[0] if _is_int(targets) else ids
        return BroadcastView(self, targets="all" if targets is None else targets, **flags)

    def _query(self, msg_type: str, content: dict[str, Any], timeout: float | None = None) -> Message:
        """Ask the hub and return its reply.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If no reply comes within ``timeout`` (default: the client's).
        RemoteError
            If the hub answers with an error.
        """
        self._check_open()
        wait = self.timeout if timeout is None else timeout
        msg_id, fut = self._io.query(msg_type, content)
        try:
            reply = fut.result(wait)
        except FutureTimeout:
            self._io.forget(msg_id)
            raise CorralTimeoutError(
                f"no {msg_type.replace('_request', '_reply')} from the hub within {wait:g} s{self._drops()}"
            ) from None
        if reply.content.get("status", "ok") != "ok":
            raise unwrap_exception(reply.content)
        return reply

    def _control(
        self,
        msg_type: str,
        content: dict[str, Any],
        targets: Targets,
        block: bool | None,
        per_target: Mapping[int, dict[str, Any]] | None = None,
    ) -> AsyncResult | None:
        """Send a control request to each target (``per_target[id]`` overrides ``content``)."""
        ids, uuids = self._engines.resolve(targets)
        payloads = [((per_target or {}).get(eid, content), ()) for eid in ids]
        ar = self._submit(
            "control",
            msg_type,
            payloads,
            ids,
            uuids,
            fname=msg_type.replace("_request", ""),
            single=_is_int(targets),
            in_history=False,
        )
        if self.block if block is None else block:
            ar.get(self.timeout)
            return None
        return ar

    # -- queries and control -------------------------------------------------------------------

    def drop_counts(self) -> dict[str, Any]:
        """Messages dropped on receipt, by channel and reason: the controller's, the engines' and this client's.

        Returns ``{"controller": {channel: {reason: n}}, "engines": {engine_id: {channel:
        {reason: n}}}, "client": {...}}``. Reasons are those of
        :data:`corral.wire.errors.REJECT_REASONS` (``bad_signature`` for a wrong key or altered
        frames, ``replayed``, ``malformed``, ``tampered_buffer`` and the like; docs/security.md);
        nothing dropped is ever executed. The controller's relays check every signature but leave
        buffers to the engine that unpacks them, so tampered buffers are counted by the engines.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the hub or an engine does not answer within the client's timeout.
        """
        reply = self._query("drops_request", {})
        engines: dict[int, dict[str, dict[str, int]]] = {}
        ids = self.ids
        if ids:
            ar = self._control("drops_request", {}, ids, False)
            assert ar is not None  # not blocking: the AsyncResult, one value per engine of ids
            for eid, counts in zip(ids, ar.get(self.timeout), strict=True):
                engines[eid] = dict(counts or {})
        mine: dict[str, dict[str, int]] = {}
        for (channel, reason), n in sorted(self.session.rejections.items()):
            mine.setdefault(channel, {})[reason] = n
        return {"controller": dict(reply.content.get("drops") or {}), "engines": engines, "client": mine}

    def queue_status(self, targets: Targets = None, verbose: bool = False) -> dict[Any, Any]:
        """Ask the hub how many requests each engine has queued, completed, and running as tasks.

        Returns
        -------
        dict
            ``{engine_id: {"queue": n, "completed": n, "tasks": n}, "unassigned": n}``, or
            only the engine's dict when ``targets`` is a single id. With ``verbose``, the
            hub lists msg_ids instead of counting them.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the hub does not answer within the client's timeout.
        NoEnginesRegistered, IndexError
            If ``targets`` names engines that are not registered.
        """
        single = _is_int(targets)
        wanted = None
        if targets is not None and not (isinstance(targets, str) and targets == "all"):
            wanted, _ = self._engines.resolve(targets)
        content = dict(self._query("queue_request", {"targets": wanted, "verbose": bool(verbose)}).content)
        content.pop("status", None)
        status: dict[Any, Any] = {}
        for key, value in content.items():
            status[int(key) if key.lstrip("-").isdigit() else key] = value
        if single and wanted:
            return dict(status.get(wanted[0], {}))
        return status

    # -- results from the hub -------------------------------------------------------------------

    def _job_ids(self, jobs: Any, what: str) -> list[str]:
        """msg_ids named by ``jobs``: msg_ids (any client's), history indices, AsyncResults."""
        if isinstance(jobs, str):
            return [jobs]
        if isinstance(jobs, AsyncResult):
            return list(jobs.msg_ids)
        if _is_int(jobs):
            return [self._store.history_at(int(jobs))]
        if isinstance(jobs, Iterable):
            return [m for job in jobs for m in self._job_ids(job, what)]
        raise TypeError(f"{what} takes msg_ids, history indices or AsyncResults, not {type(jobs).__name__}")

    def get_result(self, indices_or_msg_ids: Any = None, block: bool | None = None, owner: bool = True) -> AsyncResult:
        """Return an AsyncResult for earlier requests, this client's or any other client's.

        Parameters
        ----------
        indices_or_msg_ids
            A msg_id, an index into :attr:`history`, an AsyncResult, or a list of them;
            default: the last request sent (``-1``).
        block
            Wait for the results before returning (default: :attr:`block`).
        owner
            Accepted for ipyparallel compatibility; results are always shared.

        Returns
        -------
        AsyncResult or AsyncHubResult
            An :class:`AsyncResult` when this client sent every request; otherwise an
            :class:`~corral.client.AsyncHubResult` holding what the hub's store has (pending
            requests are polled from the hub until they finish). A single msg_id or index
            gives a single result, a list a list.

        Raises
        ------
        ResultExpired
            If the hub dropped a result past its store's retention limit.
        ValueError
            If the hub has no record of a msg_id (never sent, or purged).
        IndexError
            For an index outside :attr:`history`.
        corral.wire.errors.TimeoutError
            If the hub does not answer within the client's timeout.
        """
        from corral.client._hubresult import AsyncHubResult, fetch

        jobs = -1 if indices_or_msg_ids is None else indices_or_msg_ids
        single = isinstance(jobs, str) or _is_int(jobs)
        msg_ids = self._job_ids(jobs, "get_result")
        local = [self._store.get(m) for m in msg_ids]
        ar: AsyncResult
        if all(req is not None for req in local):
            ar = AsyncResult(self, local, fname="get_result", single=single)  # type: ignore[arg-type]
        else:
            missing = [m for m, req in zip(msg_ids, local, strict=True) if req is None]
            fetched, _ = fetch(self, missing)
            by_id = dict(zip(missing, fetched, strict=True))
            requests = [req if req is not None else by_id[m] for m, req in zip(msg_ids, local, strict=True)]
            ar = AsyncHubResult(self, requests, fname="get_result", single=single)
        if self.block if block is None else block:
            ar.wait()
        return ar

    def result_status(self, msg_ids: Any, status_only: bool = True) -> dict[str, Any]:
        """Ask the hub what became of requests (any client's).

        Parameters
        ----------
        msg_ids
            msg_ids, history indices or AsyncResults (one or a list).
        status_only
            With False, also fetch each completed result: ``status[msg_id]`` is its value (or
            the error it raised), as in :attr:`results`.

        Returns
        -------
        dict
            ``{"completed": [...], "pending": [...], "expired": [...], "unknown": [...]}``
            (msg_ids in the order asked), plus ``msg_id -> result`` without ``status_only``.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the hub does not answer within the client's timeout.
        """
        from corral.client._hubresult import fetch

        ids = self._job_ids(msg_ids, "result_status")
        reply = self._query("result_request", {"msg_ids": ids})
        results: dict[str, Any] = reply.content.get("results") or {}
        status: dict[str, Any] = {"completed": [], "pending": [], "expired": [], "unknown": []}
        for m in ids:
            state = (results.get(m) or {}).get("state", "unknown")
            local = self._store.get(m)
            if local is not None and local.done:
                state = "completed"
            status[state if state in status else "unknown"].append(m)
        if not status_only:
            for m in status["completed"]:
                req = self._store.get(m)
                if req is None or not req.done:
                    req = fetch(self, [m])[0][0] if req is None else req
                    self._store.wait([m], self.timeout)
                status[m] = req.error if req.error is not None else req.value
        return status

    def purge_local_results(self, jobs: Any = "all", targets: Targets = None) -> list[str]:
        """Forget finished results held by this client (the hub's are kept).

        Parameters
        ----------
        jobs
            ``"all"``, or msg_ids, history indices, AsyncResults.
        targets
            Also forget every finished result of these engine ids.

        Returns
        -------
        list of str
            The msg_ids forgotten. AsyncResults you still hold keep working.

        Raises
        ------
        RuntimeError
            If ``jobs`` names a request still pending (abort it or wait for it first).
        """
        if isinstance(jobs, str) and jobs == "all":
            return self._store.purge()
        ids = set(self._job_ids(jobs, "purge_local_results"))
        busy = sorted(m for m in ids if (r := self._store.get(m)) is not None and not r.done)
        if busy:
            raise RuntimeError(f"cannot purge outstanding requests {busy}: wait for them or abort them first")
        engines = set(self._engines.resolve(targets)[0]) if targets not in (None, [], ()) else set()
        return self._store.purge(lambda r: r.msg_id in ids or r.engine_id in engines)

    def purge_hub_results(self, jobs: Any = (), targets: Targets = ()) -> int:
        """Tell the hub to forget finished results (any client's); schedulers forget them too.

        Parameters
        ----------
        jobs
            ``"all"``, or msg_ids, history indices, AsyncResults.
        targets
            ``"all"``, or engine ids whose finished results all go.

        Returns
        -------
        int
            How many records the hub removed (pending ones are never removed).

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the hub does not answer within the client's timeout.
        """
        everything = (isinstance(jobs, str) and jobs == "all") or (isinstance(targets, str) and targets == "all")
        if everything:
            content: dict[str, Any] = {"all": True}
        else:
            engine_ids = [int(t) for t in ([targets] if _is_int(targets) else list(targets or ()))]  # type: ignore[arg-type]
            content = {"msg_ids": self._job_ids(jobs or [], "purge_hub_results"), "engine_ids": engine_ids}
        return int(self._query("purge_request", content).content.get("purged", 0))

    def purge_results(self, jobs: Any = (), targets: Targets = ()) -> int:
        """Forget finished results here and on the hub (seed 002: "conserve resources").

        ``jobs`` and ``targets`` as :meth:`purge_hub_results` (``"all"`` for everything).
        Returns how many records the hub removed.

        Raises
        ------
        ValueError
            If neither ``jobs`` nor ``targets`` names anything.
        RuntimeError
            If ``jobs`` names a request of this client that is still pending.
        corral.wire.errors.TimeoutError
            If the hub does not answer within the client's timeout.
        """
        everything = (isinstance(jobs, str) and jobs == "all") or (isinstance(targets, str) and targets == "all")
        if not everything and _is_empty(jobs) and _is_empty(targets):
            raise ValueError("purge_results needs jobs or targets (or 'all', or use purge_everything())")
        if everything:
            self._store.purge()
        else:
            self.purge_local_results(jobs or [], targets or None)
        return self.purge_hub_results(jobs, targets)

    def purge_everything(self) -> int:
        """Forget every finished result here and on the hub, and this client's history of them.

        Returns how many records the hub removed.

        Raises
        ------
        corral.wire.errors.TimeoutError
            If the hub does not answer within the client's timeout.
        """
        self._store.purge(history=True)
        return self.purge_hub_results("all")

    def clear(self, targets: Targets = None, block: bool | None = None) -> AsyncResult | None:
        """Clear the namespaces of ``targets`` (default: every engine), bypassing their queues.

        Returns
        -------
        AsyncResult or None
            None when blocking, after every engine confirmed.

        Raises
        ------
        NoEnginesRegistered, IndexError
            If ``targets`` names no registered engine.
        corral.wire.errors.TimeoutError
            When blocking, if an engine does not confirm within the client's timeout.
        """
        return self._control("clear_request", {}, targets, block)

    def abort(self, jobs: Any = None, targets: Targets = None, block: bool | None = None) -> AsyncResult | None:
        """Ask engines not to run queued requests; those fail with ``TaskAborted``.

        Parameters
        ----------
        jobs
            msg_ids, history indices or AsyncResults; default: everything this client has
            outstanding.
        targets
            Engines to ask; default: the engines the jobs were sent to.
        block
            Wait for every engine to confirm (default: :attr:`block`).

        Raises
        ------
        NoEnginesRegistered, IndexError
            If ``targets`` names no registered engine.
        corral.wire.errors.TimeoutError
            When blocking, if an engine does not confirm within the client's timeout.
        """
        msg_ids = self._msg_ids(jobs)
        if targets is not None:
            return self._control("abort_request", {"msg_ids": msg_ids}, targets, block)
        # each engine hears only of its own requests (and those already answered are skipped)
        live = set(self.ids)
        mine: dict[int, list[str]] = {}
        for m in msg_ids:
            req = self._store.get(m)
            if req is None or req.done:
                continue
            if req.engine_id is None:  # a task: the scheduler chose its engine, which we do not know
                for eid in live:
                    mine.setdefault(eid, []).append(req.wire_id)
            elif req.engine_id in live:
                mine.setdefault(req.engine_id, []).append(req.wire_id)
        if not mine:
            ar = AsyncResult(self, [], fname="abort")
            return None if (self.block if block is None else block) else ar
        per_target = {eid: {"msg_ids": ids} for eid, ids in mine.items()}
        return self._control("abort_request", {}, sorted(mine), block, per_target)

    def send_signal(
        self, sig: int | str = _signal.SIGINT, targets: Targets = None, block: bool | None = None
    ) -> AsyncResult | None:
        """Send a signal (number or name, default SIGINT) to the engine processes.

        SIGINT interrupts the running request with ``KeyboardInterrupt``; the engine keeps
        serving.

        Raises
        ------
        NoEnginesRegistered, IndexError
            If ``targets`` names no registered engine.
        TypeError
            If ``sig`` is not an int or a str.
        corral.wire.errors.TimeoutError
            When blocking, if an engine does not confirm within the client's timeout.
        """
        if not isinstance(sig, (int, str)) or isinstance(sig, bool):
            raise TypeError(f"sig must be a signal number or name, not {type(sig).__name__}")
        value: int | str = int(sig) if isinstance(sig, int) else sig
        return self._control("signal_request", {"signal": value}, targets, block)

    def shutdown(
        self, targets: Targets = "all", restart: bool = False, hub: bool = False, block: bool | None = None
    ) -> AsyncResult | None:
        """Stop engines, and with ``hub=True`` the controller too.

        With ``hub=True`` the engines are stopped first (waiting for them), then the hub is
        asked to stop; an empty cluster is fine then.

        Raises
        ------
        NoEnginesRegistered
            If there are no engines and ``hub`` is False.
        IndexError
            If ``targets`` names an engine that is not registered.
        corral.wire.errors.TimeoutError
            When waiting, if an engine or the hub does not answer within the client's timeout.
        """
        ar: AsyncResult | None = None
        if not (hub and not self.ids and targets in ("all", None)):
            ar = self._control("shutdown_request", {"restart": bool(restart)}, targets, True if hub else block)
        if hub:
            self._query("shutdown_request", {"hub": True})
        return ar

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the IO thread and close the sockets; results still pending fail. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._io.stop()
        self._finalizer.detach()
        self._store.fail_pending(lambda r: True, client_closed_error)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.ids)} engines"
        cid = self.connection_info.get("cluster_id") or "?"
        return f"<Client cluster={cid!r} {state}>"
