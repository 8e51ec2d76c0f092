"""corral's errors, and the wire format of an exception raised on an engine.

Every error corral raises derives from :class:`CorralError`::

    CorralError
    ├── WireError                  a message, payload or connection file is unusable
    │   ├── MessageRejected        dropped on receipt; ``.reason`` says why
    │   │   └── ProtocolVersionError
    │   ├── SerializationError
    │   └── ConnectionFileError
    ├── RemoteError                raised by user code (or on its behalf) on an engine
    │   ├── CompositeError         several engines raised
    │   ├── EngineError            the engine died or left while running the request
    │   ├── TaskAborted            the request was aborted before it ran
    │   ├── DependencyTimeout      its dependencies were not met in time
    │   └── ImpossibleDependency   its dependencies can never be met
    ├── TimeoutError               also a builtin :class:`TimeoutError`
    ├── NoEnginesRegistered
    ├── ControllerLost
    ├── ResultExpired              the hub dropped a result past its retention limit
    └── UnmetDependency            raised on an engine by ``@depend``/``@require`` wrappers;
                                   the engine replies ``status: "unmet"`` (docs/scheduling.md)

The engine turns an exception into a plain dict with :func:`wrap_exception` (type name, message,
formatted traceback, engine id and uuid); the client turns that dict back into a
:class:`RemoteError` with :func:`unwrap_exception`. Remote exceptions are never unpickled: a
client does not need the remote exception's class, and a hostile engine cannot make a client
run code by raising.
"""

from __future__ import annotations

import builtins
import traceback as _traceback
from collections.abc import Sequence
from typing import Any, ClassVar, TypedDict

__all__ = [
    "CompositeError",
    "ConnectionFileError",
    "ControllerLost",
    "CorralError",
    "DependencyTimeout",
    "EngineError",
    "EngineInfo",
    "ImpossibleDependency",
    "MessageRejected",
    "NoEnginesRegistered",
    "ProtocolVersionError",
    "REJECT_REASONS",
    "RemoteError",
    "ResultExpired",
    "SerializationError",
    "TaskAborted",
    "TimeoutError",
    "UnmetDependency",
    "WireError",
    "WrappedException",
    "error_reply",
    "unwrap_exception",
    "wrap_exception",
]


class CorralError(Exception):
    """Root of every error corral raises."""


class WireError(CorralError):
    """A message, a payload or a connection file cannot be used."""


#: Every reason a received message can be dropped for; receivers count drops by these names.
REJECT_REASONS = (
    "unsigned",  # no signature where one is required
    "bad_signature",  # the MAC over the message frames does not match
    "tampered_buffer",  # a buffer frame does not match the digest the sender signed
    "replayed",  # this (sender, counter) was already accepted
    "stale",  # the sender's timestamp is outside the replay window
    "malformed",  # frames missing, added, undecodable or of the wrong shape
    "oversized",  # a frame larger than the receiver accepts
    "incompatible_version",  # the peer speaks another protocol major version
)


class MessageRejected(WireError):
    """A received message was dropped without being acted on.

    Parameters
    ----------
    reason
        One of :data:`REJECT_REASONS`; receivers count drops per reason.
    detail
        A human-readable explanation.
    header, idents
        The dropped message's header and routing identities, when they could be read (and, but
        for a version mismatch, authenticated: only a tampered buffer is dropped after its MAC
        checked out), so that a receiver can still answer the sender; None and empty otherwise.
    """

    def __init__(
        self, reason: str, detail: str = "", *, header: dict[str, Any] | None = None, idents: Sequence[bytes] = ()
    ) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}; expected one of {REJECT_REASONS}")
        self.reason = reason
        self.detail = detail
        self.header = header
        self.idents = list(idents)
        super().__init__(f"{reason}: {detail}" if detail else reason)


class ProtocolVersionError(MessageRejected):
    """A peer speaks an incompatible corral protocol version."""

    def __init__(self, detail: str, *, peer_version: str = "", header: dict[str, Any] | None = None) -> None:
        self.peer_version = peer_version
        # header: the peer's decoded header when one could be read, so a receiver can still reply
        super().__init__("incompatible_version", detail, header=header)


class SerializationError(WireError):
    """An object cannot be serialized or deserialized; the message names its type and why."""


class ConnectionFileError(WireError):
    """A connection file is missing, unreadable, corrupt or unsafe; the message says what to do."""


class EngineInfo(TypedDict, total=False):
    """Where a remote exception was raised."""

    engine_id: int
    engine_uuid: str
    method: str


class WrappedException(TypedDict):
    """The wire format of an exception (the ``content`` of an error reply)."""

    status: str
    ename: str
    evalue: str
    traceback: list[str]
    engine_info: EngineInfo


class RemoteError(CorralError):
    """An exception raised on an engine, or on its behalf by the controller.

    Attributes
    ----------
    ename : str
        The remote exception's type name, e.g. ``"ZeroDivisionError"``.
    evalue : str
        ``str()`` of the remote exception.
    traceback : str
        The remote traceback, formatted.
    engine_info : dict
        ``engine_id``, ``engine_uuid`` and ``method`` where known.
    """

    def __init__(
        self,
        ename: str,
        evalue: str = "",
        traceback: str | Sequence[str] = "",
        engine_info: EngineInfo | None = None,
    ) -> None:
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback if isinstance(traceback, str) else "".join(traceback)
        self.engine_info: EngineInfo = engine_info or {}
        super().__init__(ename, evalue)

    @property
    def engine_id(self) -> int | None:
        """The id of the engine that raised, or None if not known."""
        return self.engine_info.get("engine_id")

    def _where(self) -> str:
        eid = self.engine_info.get("engine_id")
        method = self.engine_info.get("method", "")
        if eid is None:
            return f"[{method}]" if method else ""
        return f"[{eid}:{method}]" if method else f"[engine {eid}]"

    def __str__(self) -> str:
        where = self._where()
        head = f"{where} {self.ename}: {self.evalue}".strip() if self.evalue else f"{where} {self.ename}".strip()
        if self.traceback:
            return f"{head}\n\nRemote traceback:\n{self.traceback.rstrip()}"
        return head

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ename!r}, {self.evalue!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.ename, self.evalue, self.traceback, self.engine_info))

    def _render_traceback_(self) -> list[str]:
        """Render the remote traceback in IPython instead of the local one."""
        return [str(self)]

    def print_traceback(self) -> None:
        """Print the remote traceback."""
        print(self.traceback)


class CompositeError(RemoteError):
    """Several engines raised; ``elist`` holds one :class:`RemoteError` per failure.

    Parameters
    ----------
    message
        What was running, e.g. ``"one or more exceptions from call to method: f"``.
    elist
        The individual remote errors, in target order.
    """

    tb_limit: ClassVar[int] = 4

    def __init__(self, message: str, elist: Sequence[RemoteError]) -> None:
        self.message = message
        self.elist = list(elist)
        super().__init__("CompositeError", message, "", {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.elist))

    def __str__(self) -> str:
        lines = [f"{self.message} ({len(self.elist)} errors)"]
        for err in self.elist:
            lines.append(f"  {err._where()} {err.ename}: {err.evalue}".rstrip())
        if self.elist and self.elist[0].traceback:
            lines.append("")
            lines.append("First remote traceback:")
            lines.append(self.elist[0].traceback.rstrip())
        return "\n".join(lines)

    def raise_exception(self, excid: int = 0) -> None:
        """Raise the ``excid``-th remote error on its own.

        Raises
        ------
        IndexError
            If there is no error number ``excid``.
        RemoteError
            The selected error.
        """
        if not 0 <= excid < len(self.elist):
            raise IndexError(f"an index between 0 and {len(self.elist) - 1} is required, not {excid}")
        raise self.elist[excid]


class EngineError(RemoteError):
    """The engine died or left the cluster while the request was queued or running.

    The message names the engine and, when known, how it ended (``killed by SIGKILL``,
    ``exited with code 3``).
    """


class TaskAborted(RemoteError):
    """The request was aborted (``abort()``) before it ran."""


class DependencyTimeout(RemoteError):
    """The task's dependencies were not met within its ``timeout``."""


class ImpossibleDependency(RemoteError):
    """The task's dependencies can never be met (a prerequisite failed, or its engines left)."""


class TimeoutError(CorralError, builtins.TimeoutError):  # noqa: A001 - same name as the builtin on purpose
    """A wait ran out of time; also a builtin :class:`TimeoutError`."""


class NoEnginesRegistered(CorralError):
    """No engines are registered with the controller, so nothing can run."""


class ControllerLost(CorralError):
    """The controller stopped answering; pending results raise this instead of hanging."""


class ResultExpired(CorralError):
    """The hub no longer holds a result: it passed the store's retention limit and was dropped.

    Raised when fetching a result (``Client.get_result``, ``AsyncHubResult.get``) that the
    hub's store dropped, as opposed to one it never had (a ``ValueError``) or one a client
    purged. ``msg_ids`` lists the expired requests.
    """

    def __init__(self, message: str, msg_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        #: the msg_ids whose results expired
        self.msg_ids: list[str] = list(msg_ids)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.msg_ids))


class UnmetDependency(CorralError):
    """A task's own dependency (``@depend``, ``@require``) is not met on this engine.

    Raised on the engine by the wrappers in :mod:`corral.wire.dependencies`; the engine
    answers such a task with ``status: "unmet"`` so the scheduler can try another engine (and
    fail it with :class:`ImpossibleDependency` when none is left).
    """


_REMOTE_CLASSES: dict[str, type[RemoteError]] = {
    cls.__name__: cls for cls in (EngineError, TaskAborted, DependencyTimeout, ImpossibleDependency)
}


def wrap_exception(
    exc: BaseException | None = None,
    engine_info: EngineInfo | None = None,
) -> WrappedException:
    """Turn an exception into the plain dict that travels on the wire.

    Parameters
    ----------
    exc
        The exception; defaults to the one being handled.
    engine_info
        ``engine_id``, ``engine_uuid`` and ``method`` of the engine that raised.

    Returns
    -------
    WrappedException
        ``{"status": "error", "ename", "evalue", "traceback", "engine_info"}``.

    Raises
    ------
    ValueError
        If no exception is given and none is being handled.
    """
    if exc is None:
        import sys

        exc = sys.exc_info()[1]
        if exc is None:
            raise ValueError("wrap_exception() needs an exception, and none is being handled")
    if isinstance(exc, RemoteError):
        # a corral error raised on an engine keeps the name users catch it by
        ename = exc.ename if type(exc) is RemoteError else type(exc).__name__
        evalue = exc.evalue
    else:
        ename = type(exc).__name__
        try:
            evalue = str(exc)
        except Exception as err:  # a broken __str__ must not hide the original error
            evalue = f"<str() of the exception failed: {type(err).__name__}>"
    tb = _traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "status": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": tb,
        "engine_info": dict(engine_info or {}),  # type: ignore[typeddict-item]
    }


def unwrap_exception(content: dict[str, Any]) -> RemoteError:
    """Turn the wire format of an exception back into a :class:`RemoteError`.

    corral's own remote errors (``EngineError``, ``TaskAborted``, ``DependencyTimeout``,
    ``ImpossibleDependency``) come back as their own classes, so ``except EngineError`` works.

    Parameters
    ----------
    content
        A dict made by :func:`wrap_exception` (extra keys are ignored).

    Returns
    -------
    RemoteError
        Not raised: the caller decides.
    """
    ename = str(content.get("ename", "UnknownError"))
    cls = _REMOTE_CLASSES.get(ename, RemoteError)
    tb = content.get("traceback", "")
    if isinstance(tb, (list, tuple)):
        tb = "".join(str(line) for line in tb)
    elif not isinstance(tb, str):
        tb = str(tb)
    info = content.get("engine_info")
    # the content comes from another process: never let its shape turn into a crash here
    safe_info = {str(k): v for k, v in info.items()} if isinstance(info, dict) else {}
    return cls(ename, str(content.get("evalue", "")), tb, safe_info)  # type: ignore[arg-type]


def error_reply(
    err: RemoteError,
    request_header: dict[str, Any],
    engine_info: EngineInfo | None = None,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Build the reply to a request that failed without running, e.g. on a dead engine.

    The controller uses this to answer on an engine's behalf, with the same content and
    metadata keys an engine's own error reply has (see ``docs/messages.md``).

    Parameters
    ----------
    err
        The error, e.g. ``EngineError("EngineError", "engine 3 killed by SIGKILL")``.
    request_header
        The header of the request being answered.
    engine_info
        ``engine_id``, ``engine_uuid`` and ``method``, where known.

    Returns
    -------
    (msg_type, content, metadata)
        ``msg_type`` is the request's with ``_request`` replaced by ``_reply``.
    """
    req_type = str(request_header.get("msg_type", "request"))
    msg_type = req_type[: -len("_request")] + "_reply" if req_type.endswith("_request") else req_type + "_reply"
    info: EngineInfo = dict(engine_info or {})  # type: ignore[assignment]
    info.setdefault("method", req_type.removesuffix("_request"))
    wrapped = wrap_exception(err, info)
    wrapped["traceback"] = [err.traceback] if err.traceback else []
    status = "aborted" if isinstance(err, TaskAborted) else "error"
    content: dict[str, Any] = dict(wrapped)
    content["status"] = status
    metadata: dict[str, Any] = {
        "status": status,
        "engine_id": info.get("engine_id"),
        "engine_uuid": info.get("engine_uuid"),
        "msg_id": request_header.get("msg_id"),
        "error": dict(wrapped),
        "stdout": "",
        "stderr": "",
        "started": None,
        "completed": None,
    }
    return msg_type, content, metadata
