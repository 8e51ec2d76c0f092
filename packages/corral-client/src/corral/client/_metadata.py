"""Per-request metadata: a dict with attribute access, filled in as a request progresses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final

__all__ = ["DATE_KEYS", "Metadata", "parse_date", "utcnow"]

#: Keys whose values are timestamps (``datetime`` in UTC once received).
DATE_KEYS: Final = ("submitted", "started", "completed", "received")

# seed-era names still found in user code
_ALIASES: Final = {"pyout": "execute_result", "pyerr": "error"}


def utcnow() -> datetime:
    """Return the current time as an aware UTC ``datetime``."""
    return datetime.now(timezone.utc)


def parse_date(value: Any) -> Any:
    """Return ``value`` as a ``datetime`` if it is an ISO 8601 string, else unchanged."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


class Metadata(dict[str, Any]):
    """What is known about one request: timestamps, engine, status, output.

    A ``dict`` whose keys are also attributes (``md.engine_id`` is ``md["engine_id"]``).

    Notes
    -----
    The keys: msg_id, submitted, started, completed, received (``datetime`` in UTC or None),
    engine_id, engine_uuid, status (``"ok"``, ``"error"``, ``"aborted"`` or None while
    pending), stdout, stderr (the request's whole output), outputs (display data, in order),
    execute_result, execution_count, error (the wrapped exception or None), follow, after.
    ``pyout`` and ``pyerr`` are read-only aliases of ``execute_result`` and ``error``.

    Examples
    --------
    >>> md = Metadata(msg_id="m1")
    >>> md.msg_id, md.status
    ('m1', None)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            msg_id=None,
            submitted=None,
            started=None,
            completed=None,
            received=None,
            engine_id=None,
            engine_uuid=None,
            status=None,
            stdout="",
            stderr="",
            outputs=[],
            execute_result=None,
            execution_count=None,
            error=None,
            follow=[],
            after=[],
        )
        self.update(*args, **kwargs)

    def __getattr__(self, key: str) -> Any:
        try:
            return self[_ALIASES.get(key, key)]
        except KeyError:
            raise AttributeError(f"metadata has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.keys()})

    def merge_reply(self, reply_metadata: Mapping[str, Any]) -> None:
        """Take what an engine reported in a reply, parsing its timestamps."""
        for key, value in reply_metadata.items():
            self[key] = parse_date(value) if key in DATE_KEYS else value
