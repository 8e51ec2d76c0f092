"""AsyncHubResult: results of requests another client sent, fetched from the hub's store.

The hub keeps every request routed through it and its reply (docs/messages.md, "The result
store"). A client that did not send a request asks for it with a ``result_request``; the
replies it gets back are handed to the client's result store exactly as if they had arrived
from the engine, so values, errors and metadata are decoded by the same code.

Requests still pending on the hub are polled from the client's IO thread (every 50 ms at
first, backing off to 1 s), so ``get()``, ``wait()``, done-callbacks and ``await`` all work
without the caller polling. Each poll is one round trip to the controller: cheap, but not
free, which is why results this client sent itself never come this way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Final

from corral.client._asyncresult import AsyncResult
from corral.client._metadata import Metadata, parse_date
from corral.client._store import Request
from corral.wire.errors import ResultExpired
from corral.wire.message import Message

if TYPE_CHECKING:
    from corral.client._client import Client

__all__ = ["AsyncHubResult", "fetch"]

log = logging.getLogger(__name__)

#: First and longest pause between two polls of the hub for pending results, in seconds.
POLL_FIRST: Final = 0.05
POLL_MAX: Final = 1.0
#: Seconds :func:`fetch` keeps asking about a msg_id the hub does not know yet.
RECORD_GRACE: Final = 1.0
_RECORD_POLL: Final = 0.02


def _request_for(msg_id: str, entry: dict[str, Any], client: Client) -> Request:
    header = entry.get("request_header") or {}
    uuid = entry.get("engine_uuid") or None
    eid = client._engines.id_of(uuid) if uuid else None
    md = Metadata(msg_id=msg_id, submitted=parse_date(header.get("date")), engine_id=eid, engine_uuid=uuid)
    sched = header.get("sched")
    if isinstance(sched, dict):
        for key in ("after", "follow"):
            dep = sched.get(key)
            if isinstance(dep, dict):
                md[key] = list(dep.get("msg_ids") or [])
    return Request(msg_id, str(header.get("msg_type", "unknown")), eid, uuid, md, False)


def _deliver(client: Client, msg_id: str, entry: dict[str, Any], buffers: Sequence[Any]) -> None:
    """Hand a completed entry of a ``result_reply`` to the client's store as a reply."""
    msg = Message(
        header=entry.get("header") or {},  # type: ignore[arg-type]
        parent_header={"msg_id": msg_id},
        metadata=dict(entry.get("metadata") or {}),
        content=dict(entry.get("content") or {}),
        buffers=[memoryview(b) for b in buffers],
    )
    client._store.handle_reply(msg)


def _split_buffers(msg_ids: Sequence[str], results: dict[str, Any], buffers: Sequence[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    pos = 0
    for msg_id in msg_ids:
        entry = results.get(msg_id) or {}
        n = int(entry.get("buffer_count") or 0) if entry.get("state") == "completed" else 0
        out[msg_id] = list(buffers[pos : pos + n])
        pos += n
    return out


def fetch(client: Client, msg_ids: Sequence[str]) -> tuple[list[Request], dict[str, Any]]:
    """Ask the hub for ``msg_ids``; return a request per msg_id (completed ones already done).

    A msg_id the hub does not know is asked about again for up to :data:`RECORD_GRACE`
    seconds before it counts as unknown: the hub hears of a direct request from its engine's
    record, which follows the request by up to tens of milliseconds.

    Raises
    ------
    ResultExpired
        If the hub dropped any of them (retention limit, or trimmed after collection).
    ValueError
        If the hub never had (or was told to purge) any of them.
    corral.wire.errors.TimeoutError
        If the hub does not answer within the client's timeout.
    """
    deadline = time.monotonic() + RECORD_GRACE
    while True:
        reply = client._query("result_request", result_request(client, list(msg_ids)))
        results: dict[str, Any] = reply.content.get("results") or {}
        if time.monotonic() >= deadline or all(
            (results.get(m) or {}).get("state") in ("pending", "completed", "expired") for m in msg_ids
        ):
            break
        # a request sent straight to an engine reaches the hub with the engine's record of it,
        # some milliseconds later (docs/messages.md): ask again before calling it unknown
        time.sleep(_RECORD_POLL)
    expired = [m for m in msg_ids if (results.get(m) or {}).get("state") == "expired"]
    if expired:
        raise ResultExpired(
            f"the hub no longer holds the result of {', '.join(expired)}: it passed the result store's "
            "retention limit (or was trimmed after it was collected) and was dropped",
            expired,
        )
    unknown = [m for m in msg_ids if (results.get(m) or {}).get("state") not in ("pending", "completed")]
    if unknown:
        raise ValueError(
            f"the hub has no record of {', '.join(unknown)}: never sent through this controller, or purged"
        )
    buffers = _split_buffers(msg_ids, results, reply.buffers)
    requests = [_request_for(m, results[m], client) for m in msg_ids]
    client._store.add(requests)
    for req in requests:
        entry = results[req.msg_id]
        if entry["state"] == "completed":
            _deliver(client, req.msg_id, entry, buffers[req.msg_id])
    return requests, results


def result_request(client: Client, msg_ids: list[str]) -> dict[str, Any]:
    """The content of a ``result_request`` for ``msg_ids``.

    With shared memory on, it carries this client's address (``shm_host``): the hub then
    answers with references to the segments it keeps large results in, mapped here without a
    copy, when this client is on its host (``docs/data.md``).
    """
    content: dict[str, Any] = {"msg_ids": msg_ids}
    shm = client.session.shm
    if shm is not None:
        content["shm_host"] = shm.address
    return content


class AsyncHubResult(AsyncResult):
    """The result of requests fetched from the hub (``Client.get_result`` of another client's msg_ids).

    It behaves as an :class:`AsyncResult` (``get``, ``wait``, ``metadata``, ``await`` ...). While
    some of its requests are still pending, the client's IO thread asks the hub for them
    (every 50 ms at first, then less often, at most every second) until they are done, so
    waiting on many pending hub results costs one small round trip to the controller per poll.
    """

    def __init__(
        self,
        client: Client,
        requests: Sequence[Request],
        fname: str = "get_result",
        targets: Sequence[int] | None = None,
        single: bool = False,
        tracker: Any = None,
        sent: threading.Event | None = None,
    ) -> None:
        super().__init__(client, requests, fname, targets, single, tracker, sent)
        self._interval = POLL_FIRST
        if not self.done():
            client._io.reactor.call_soon_threadsafe(self._schedule)

    # -- polling (IO thread) -------------------------------------------------------------------

    def _schedule(self) -> None:
        if not self.done() and not self._client._closed:
            self._client._io.reactor.call_later(self._interval, self._poll)
            self._interval = min(self._interval * 2, POLL_MAX)

    def _poll(self) -> None:
        pending = [r.msg_id for r in self._requests if not r.done]
        if not pending or self._client._closed:
            return
        query_id, fut = self._client._io.query("result_request", result_request(self._client, pending))
        timer = self._client._io.reactor.call_later(self._client.timeout, self._poll_timed_out, query_id, fut)
        fut.add_done_callback(lambda f: self._polled(pending, f, timer))

    def _poll_timed_out(self, query_id: str, fut: Future[Message]) -> None:
        if not fut.done():
            self._client._io.forget(query_id)
            log.warning("the hub did not answer a result_request within %g s; asking again", self._client.timeout)
            self._schedule()

    def _polled(self, pending: list[str], fut: Future[Message], timer: Any) -> None:
        timer.cancel()
        if fut.cancelled() or fut.exception() is not None:
            return  # the client closed: its pending requests fail there
        reply = fut.result()
        results: dict[str, Any] = reply.content.get("results") or {}
        buffers = _split_buffers(pending, results, reply.buffers)
        for msg_id in pending:
            entry = results.get(msg_id) or {}
            state = entry.get("state")
            req = self._client._store.get(msg_id)
            if req is None or req.done:
                continue
            if state == "completed":
                _deliver(self._client, msg_id, entry, buffers[msg_id])
            elif state in ("expired", "unknown"):
                why = "expired" if state == "expired" else "was purged"
                self._client._store.complete(
                    req, error=ResultExpired(f"the result of {msg_id} {why} on the hub before it arrived", [msg_id])
                )
        self._schedule()
