"""What the client has sent and what came back: requests, results, metadata, history.

The IO thread completes requests as replies arrive; user threads register requests before
they are sent and wait on them. One lock guards the pending set; results are handed to
whoever listens (an :class:`~corral.client.AsyncResult`) outside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from corral.client._metadata import Metadata, utcnow
from corral.wire.errors import ControllerLost, CorralError, RemoteError, TaskAborted, unwrap_exception
from corral.wire.message import Message
from corral.wire.serialize import get_serializer

__all__ = ["Request", "ResultStore"]

log = logging.getLogger(__name__)

# reply payloads: what each request's reply buffers hold
_DECODED = frozenset({"apply_request", "pull_request"})


class Request:
    """One message sent to one engine (or to the hub), and its outcome once it is done."""

    __slots__ = (
        "acked",
        "direct",
        "done",
        "engine_id",
        "engine_uuid",
        "error",
        "in_history",
        "listeners",
        "metadata",
        "msg_id",
        "msg_type",
        "value",
        "wire_id",
    )

    def __init__(
        self,
        msg_id: str,
        msg_type: str,
        engine_id: int | None,
        engine_uuid: str | None,
        metadata: Metadata,
        in_history: bool,
        wire_id: str | None = None,
    ) -> None:
        self.msg_id = msg_id
        #: the controller has stored it (a ``submission_ack`` or any reply said so)
        self.acked = False
        #: it went straight to its engine's own socket (its reply comes back there)
        self.direct = False
        #: the msg_id of the message on the wire, when several requests share one (broadcast)
        self.wire_id = wire_id or msg_id
        self.msg_type = msg_type
        self.engine_id = engine_id
        self.engine_uuid = engine_uuid
        self.metadata = metadata
        self.in_history = in_history
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.listeners: list[Callable[[Request], None]] | None = []

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"<Request {self.msg_type} {self.msg_id} engine={self.engine_id} {state}>"


def _decode(req: Request, msg: Message) -> Any:
    """The value a successful reply carries, unpickled from its buffers."""
    if req.msg_type in _DECODED or (req.msg_type == "execute_request" and msg.buffers):
        return get_serializer(str(msg.content.get("serializer", "pickle"))).loads(msg.buffers)
    if req.msg_type == "drops_request":
        return msg.content.get("drops") or {}  # plain JSON: the engine's drop counts
    return None


def remote_error(content: dict[str, Any], req: Request) -> RemoteError:
    """The error a failed or aborted reply carries, with the engine filled in when missing."""
    status = content.get("status")
    if "ename" in content:
        err = unwrap_exception(content)
    elif status == "aborted":
        err = TaskAborted("TaskAborted", f"request {req.msg_id} was aborted before it ran")
    else:
        err = RemoteError("RemoteError", f"the engine replied {status!r} without saying why")
    if req.engine_id is not None:
        err.engine_info.setdefault("engine_id", req.engine_id)
    if req.engine_uuid is not None:
        err.engine_info.setdefault("engine_uuid", req.engine_uuid)
    return err


class ResultStore:
    """Every request this client sent: pending ones, results, metadata and history."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[str, Request] = {}
        self._requests: dict[str, Request] = {}
        self._outstanding: set[str] = set()
        self._history: list[str] = []
        self._waiters = 0
        # broadcast msg_id -> {engine id: key of that engine's request}
        self._fanout: dict[str, dict[int, str]] = {}
        #: msg_id -> result value, or the exception it raised
        self.results: dict[str, Any] = {}
        #: msg_id -> Metadata
        self.metadata: dict[str, Metadata] = {}
        # msg_id -> callbacks told of each iopub message of that request (AsyncResult.add_output_callback)
        self._output_callbacks: dict[str, list[Callable[[str, str, dict[str, Any]], None]]] = {}
        #: while the connection to the controller is lost: the ControllerLost that waits raise
        self.lost: ControllerLost | None = None

    def set_lost(self, err: ControllerLost | None) -> None:
        """Mark the controller lost (``err``) or back (None); wake every waiter to look."""
        with self._cond:
            self.lost = err
            self._cond.notify_all()

    def raise_if_lost(self) -> None:
        """Raise a fresh :class:`ControllerLost` while the controller is lost."""
        err = self.lost
        if err is not None:
            raise ControllerLost(str(err))

    # -- user threads --------------------------------------------------------------------------

    def add(self, requests: Iterable[Request]) -> None:
        """Register requests before they are sent, so no reply can arrive unannounced."""
        with self._cond:
            for req in requests:
                self._pending[req.msg_id] = req
                self._requests[req.msg_id] = req
                self.metadata[req.msg_id] = req.metadata
                if req.in_history:
                    self._history.append(req.msg_id)
                    self._outstanding.add(req.msg_id)

    def add_broadcast(self, msg_id: str, requests: Iterable[Request]) -> None:
        """Register the per-engine requests of one broadcast message ``msg_id``.

        Each engine's reply names ``msg_id`` as its parent and its engine in its metadata;
        the requests' own keys are ``f"{msg_id}:{engine_id}"``.
        """
        reqs = list(requests)
        with self._cond:
            self._fanout[msg_id] = {r.engine_id: r.msg_id for r in reqs if r.engine_id is not None}
        self.add(reqs)

    def get(self, msg_id: str) -> Request | None:
        """The request with this msg_id, if this client sent it."""
        return self._requests.get(msg_id)

    def attach(self, requests: Iterable[Request], listener: Callable[[Request], None]) -> int:
        """Call ``listener(req)`` (in the IO thread) when each pending request completes.

        Returns the number of requests that were still pending, i.e. how many calls to expect.
        """
        n = 0
        with self._cond:
            for req in requests:
                if req.listeners is not None:
                    req.listeners.append(listener)
                    n += 1
        return n

    @property
    def outstanding(self) -> set[str]:
        """msg_ids of sent requests that have no reply yet (a copy)."""
        with self._cond:
            return set(self._outstanding)

    @property
    def history(self) -> list[str]:
        """msg_ids of every request sent to engines, oldest first (a copy)."""
        with self._cond:
            return list(self._history)

    def history_at(self, index: int) -> str:
        """``history[index]``.

        Raises
        ------
        IndexError
            If there is no such entry.
        """
        with self._cond:
            return self._history[index]

    def wait(self, msg_ids: Iterable[str], timeout: float | None) -> bool:
        """Block until none of ``msg_ids`` is pending; False if ``timeout`` passed first."""
        left = list(msg_ids)

        def done() -> bool:
            left[:] = [m for m in left if m in self._pending]
            return not left

        return self._wait_for(done, timeout)

    def pending_msg_ids(self) -> list[str]:
        """msg_ids of requests still waiting for a reply that the hub stores (broadcasts excluded)."""
        with self._cond:
            return [m for m, r in self._pending.items() if r.wire_id == m]

    def acknowledged(self, requests: Iterable[Request]) -> bool:
        """Whether the controller has stored every one of ``requests`` (a reply counts too)."""
        return all(r.acked or r.done for r in requests)

    def wait_for_ack(self, requests: Iterable[Request], timeout: float | None) -> bool:
        """Block until the controller has stored all ``requests``; False if ``timeout`` passed first.

        Raises
        ------
        ControllerLost
            If the connection to the controller is lost while waiting.
        """
        left = list(requests)

        def done() -> bool:
            left[:] = [r for r in left if not (r.acked or r.done)]
            return not left

        return self._wait_for(done, timeout)

    def _wait_for(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Wait on the store's condition until ``done()`` (checked under it); False at ``timeout``.

        Raises
        ------
        ControllerLost
            If the connection to the controller is lost while waiting.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if done():
                return True
            self._waiters += 1
            try:
                while True:
                    self.raise_if_lost()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                    if done():
                        return True
            finally:
                self._waiters -= 1

    def handle_ack(self, msg: Message) -> None:
        """A ``submission_ack``: the controller stored the msg_ids it lists (IO thread)."""
        msg_ids = msg.content.get("msg_ids")
        if not isinstance(msg_ids, list):
            log.debug("ignoring a submission_ack without a list of msg_ids")
            return
        with self._cond:
            for msg_id in msg_ids:
                req = self._requests.get(msg_id) if isinstance(msg_id, str) else None
                if req is not None:
                    req.acked = True
            if self._waiters:
                self._cond.notify_all()

    def add_output_callback(self, msg_id: str, callback: Callable[[str, str, dict[str, Any]], None]) -> None:
        """Call ``callback(msg_id, msg_type, content)`` for each iopub message of request ``msg_id``."""
        with self._cond:
            self._output_callbacks.setdefault(msg_id, []).append(callback)

    def remove_output_callback(self, msg_id: str, callback: Callable[[str, str, dict[str, Any]], None]) -> None:
        """Stop calling ``callback`` for request ``msg_id`` (no error if it was not registered)."""
        with self._cond:
            callbacks = self._output_callbacks.get(msg_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._output_callbacks.pop(msg_id, None)

    # -- IO thread -----------------------------------------------------------------------------

    def handle_reply(self, msg: Message) -> None:
        """Complete the request a reply (from an engine or the controller) answers."""
        msg_id = msg.parent_header.get("msg_id")
        req = self._pending.get(msg_id) if isinstance(msg_id, str) else None
        if req is None and msg_id in self._fanout:
            req = self._broadcast_part(msg_id, msg)
        if req is None:
            log.debug("reply %s to unknown or finished request %s", msg.msg_type, msg_id)
            return
        md = req.metadata
        md.merge_reply(msg.metadata)
        md["received"] = utcnow()
        if req.engine_id is None and isinstance(md.get("engine_id"), int):
            # a task: now we know where the scheduler ran it
            req.engine_id = md["engine_id"]
            req.engine_uuid = md.get("engine_uuid")
        content = msg.content
        status = content.get("status", "ok")
        if status == "ok":
            try:
                value = _decode(req, msg)
            except Exception as err:  # an undecodable result fails this request, not the loop
                if req.msg_type == "execute_request":
                    # a cell's value is a convenience (its text is in execute_result): a class
                    # that exists only on the engine makes it None, not the cell a failure
                    log.debug("the value of %s does not unpickle here: %s", req.msg_id, err)
                    value = None
                else:
                    md["status"] = "error"
                    self.complete(req, error=err)
                    return
            if req.msg_type == "execute_request":
                md["execute_result"] = content.get("execute_result")
                md["execution_count"] = content.get("execution_count")
            md["status"] = "ok"
            self.complete(req, value=value)
        else:
            md["status"] = status
            self.complete(req, error=remote_error(content, req))

    def _broadcast_part(self, msg_id: str, msg: Message) -> Request | None:
        eid = msg.metadata.get("engine_id")
        if not isinstance(eid, int):
            info = msg.content.get("engine_info")
            eid = info.get("engine_id") if isinstance(info, dict) else None
        parts = self._fanout[msg_id]
        key = parts.get(eid) if isinstance(eid, int) else None
        req = self._pending.get(key) if key is not None else None
        if req is not None:
            with self._cond:
                parts.pop(eid, None)  # type: ignore[arg-type]
                if not parts:
                    del self._fanout[msg_id]
        return req

    def handle_output(self, msg: Message) -> None:
        """Record engine output (iopub) in the metadata of the request that produced it."""
        msg_id = msg.parent_header.get("msg_id")
        md = self.metadata.get(msg_id) if isinstance(msg_id, str) else None
        if md is None and msg_id in self._fanout:
            key = self._fanout[msg_id].get(msg.metadata.get("engine_id"))  # type: ignore[arg-type]
            md = self.metadata.get(key) if key is not None else None
        if md is None:
            return  # another client's request
        kind = msg.msg_type
        content = msg.content
        if kind == "stream":
            req = self._requests.get(str(md.get("msg_id")))
            name = content.get("name")
            # once the reply is in, its metadata holds the request's whole output
            if req is not None and not req.done and name in ("stdout", "stderr"):
                md[name] = md.get(name, "") + str(content.get("text", ""))
        elif kind == "display_data":
            req = self._requests.get(str(md.get("msg_id")))
            # the reply's metadata carries every output too: after it, this one is there already
            if req is None or not req.done:
                md["outputs"].append({"data": content.get("data", {}), "metadata": content.get("metadata", {})})
        elif kind == "execute_result":
            md["execute_result"] = content
            if "execution_count" in content:
                md["execution_count"] = content["execution_count"]
        callbacks = self._output_callbacks.get(str(md.get("msg_id")))
        for callback in list(callbacks or ()):
            try:
                callback(str(md.get("msg_id")), kind, content)
            except Exception:  # a broken callback must not stop the IO thread
                log.exception("error in an output callback of %s", md.get("msg_id"))

    def complete(self, req: Request, *, value: Any = None, error: BaseException | None = None) -> None:
        """Mark ``req`` done with a value or an error and tell its listeners (first call wins)."""
        with self._cond:
            if self._pending.pop(req.msg_id, None) is None:
                return
            req.value = value
            req.error = error
            req.done = True
            self._outstanding.discard(req.msg_id)
            self.results[req.msg_id] = error if error is not None else value
            listeners = req.listeners or []
            req.listeners = None
            if self._waiters:
                self._cond.notify_all()
        if error is not None and req.metadata.get("status") is None:
            req.metadata["status"] = "error"
        for listener in listeners:
            try:
                listener(req)
            except Exception:  # one broken listener must not starve the others
                log.exception("error delivering the result of %s", req.msg_id)

    def purge(self, predicate: Callable[[Request], bool] | None = None, history: bool = False) -> list[str]:
        """Forget finished requests (all, or those ``predicate`` picks); return their msg_ids.

        Their results and metadata leave :attr:`results` and :attr:`metadata`; AsyncResults
        that hold them still work. Pending requests are never forgotten. With ``history``,
        every msg_id that is not pending leaves the history. The dicts are rebuilt, so their memory is
        released, not just their entries.
        """
        with self._cond:
            gone = [m for m, r in self._requests.items() if r.done and (predicate is None or predicate(r))]
            drop = set(gone)
            self._requests = {m: r for m, r in self._requests.items() if m not in drop}
            self.results = {m: v for m, v in self.results.items() if m not in drop}
            self.metadata = {m: v for m, v in self.metadata.items() if m not in drop}
            if history:
                # also entries whose requests were forgotten by an earlier purge
                self._history = [m for m in self._history if m in self._pending]
        return gone

    def pending(self, predicate: Callable[[Request], bool] = lambda r: True) -> list[Request]:
        """Pending requests for which ``predicate`` holds."""
        with self._cond:
            return [r for r in self._pending.values() if predicate(r)]

    def fail_pending(self, predicate: Callable[[Request], bool], error: Callable[[Request], BaseException]) -> int:
        """Complete every pending request matching ``predicate`` with ``error(req)``."""
        reqs = self.pending(predicate)
        for req in reqs:
            self.complete(req, error=error(req))
        return len(reqs)


def client_closed_error(req: Request) -> CorralError:
    """The error of a request still pending when its client closes."""
    return CorralError(f"the client was closed before request {req.msg_id} ({req.msg_type}) was answered")
