"""Catching up when the controller answers again: replies it has for requests still pending here.

A controller restarted from its SQLite store (``--restore``) answers, from its store, every
request the old one had stored; requests that were queued or running when it stopped are
stored as failed with an ``EngineError`` saying so. None of those answers is sent to the client
on its own: the new controller does not know which client waits for what. So when the client's
connection comes back after :class:`~corral.client.ControllerLost`, its IO thread asks the hub
once, in one ``result_request``, about every request still pending here, and completes each
request the hub has an answer for. A request the hub has no record of (a controller restarted
without its store, or a request lost before it was stored, i.e. never acknowledged) fails with
:class:`~corral.client.ControllerLost` saying so, instead of waiting forever. Requests the hub
still has pending keep waiting for their replies, which arrive the usual way.
"""

from __future__ import annotations

import logging
import weakref
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from corral.client._hubresult import AsyncHubResult, _deliver, _split_buffers, result_request
from corral.wire.errors import ControllerLost
from corral.wire.message import Message

if TYPE_CHECKING:
    from corral.client._client import Client

__all__ = ["resync"]

log = logging.getLogger(__name__)


def resync(ref: weakref.ref[Client]) -> None:
    """Ask the hub about every request still pending in the client ``ref`` points to (IO thread)."""
    client = ref()
    if client is None or client._closed:
        return
    pending = client._store.pending_msg_ids()
    if not pending:
        return
    query_id, fut = client._io.query("result_request", result_request(client, pending))
    timer = client._io.reactor.call_later(client.timeout, _timed_out, client, query_id, fut)
    fut.add_done_callback(lambda f: _answered(client, pending, f, timer))


def _timed_out(client: Client, query_id: str, fut: Future[Message]) -> None:
    if not fut.done():
        client._io.forget(query_id)
        log.warning(
            "the controller did not say within %g s what became of the requests pending when it was lost; "
            "they keep waiting for their replies",
            client.timeout,
        )


def _answered(client: Client, pending: list[str], fut: Future[Message], timer: Any) -> None:
    timer.cancel()
    if fut.cancelled() or fut.exception() is not None:
        return  # the client closed: its pending requests fail there
    reply = fut.result()
    results: dict[str, Any] = reply.content.get("results") or {}
    buffers = _split_buffers(pending, results, reply.buffers)
    store = client._store
    caught_up = lost = 0
    still = []
    for msg_id in pending:
        req = store.get(msg_id)
        if req is None or req.done:
            continue
        entry = results.get(msg_id) or {}
        state = entry.get("state")
        if state == "completed":
            _deliver(client, msg_id, entry, buffers[msg_id])
            caught_up += 1
        elif state in ("unknown", "expired"):
            store.complete(
                req,
                error=ControllerLost(
                    f"the controller came back without a record of {msg_id} (it restarted without its SQLite "
                    "store, or the request was lost before it was stored: it was never acknowledged); send it again"
                ),
            )
            lost += 1
        else:
            still.append(req)
    if still:
        AsyncHubResult(client, still)  # polls the hub until they are done; the reactor keeps it
    if caught_up or lost:
        log.warning(
            "after the controller came back: %d pending result(s) answered from its store, %d unknown to it",
            caught_up,
            lost,
        )
