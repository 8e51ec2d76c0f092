"""The parts of a corral message: header, parent header, metadata, content and buffers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, Union

if TYPE_CHECKING:
    import zmq

__all__ = ["Frame", "Header", "Message", "RawMessage", "parent_header_of"]

#: A frame as corral sends or receives it: bytes, a zero-copy view, or a pyzmq Frame.
Frame = Union[bytes, memoryview, "zmq.Frame"]


class _RequiredHeader(TypedDict):
    msg_id: str
    msg_type: str
    session: str
    username: str
    date: str
    version: str


class Header(_RequiredHeader, total=False):
    """The header every corral message carries (JSON on the wire).

    ``sched``, optional, holds a task's or broadcast's scheduling options
    (``docs/scheduling.md``): only schedulers read it. ``shm`` lists the buffers that travel
    through shared-memory segments (``[index, segment name, size]`` each) and ``shm_host`` is a
    local client's shared-memory address, for its replies (``corral.wire.shm``).
    """

    sched: dict[str, Any]
    shm: list[list[Any]]
    shm_host: str


@dataclass(slots=True, eq=False)
class Message:
    """A received (verified) or to-be-sent message.

    Attributes
    ----------
    header
        Who sent what, when: msg_id, msg_type, session, username, date, protocol version.
    parent_header
        The header of the request this message answers (empty for requests).
    metadata
        Facts about the message that are not its payload (timestamps, engine id, status).
    content
        The JSON payload.
    buffers
        Raw frames that follow the content, e.g. pickled objects and their out-of-band
        buffers; read-only views of the received frames, never copies.
    idents
        ZeroMQ routing identities that preceded the message.
    """

    header: Header
    parent_header: dict[str, Any]
    metadata: dict[str, Any]
    content: dict[str, Any]
    buffers: list[memoryview] = field(default_factory=list)
    idents: list[bytes] = field(default_factory=list)

    @property
    def msg_id(self) -> str:
        """The message's id, ``header["msg_id"]``."""
        return self.header["msg_id"]

    @property
    def msg_type(self) -> str:
        """The message's type, ``header["msg_type"]``."""
        return self.header["msg_type"]


@dataclass(slots=True, eq=False)
class RawMessage:
    """A message whose signature a relay has checked, with only its header decoded.

    Schedulers route on ``header`` and forward ``frames`` untouched and uncopied with
    :meth:`corral.wire.session.Session.forward`.

    Attributes
    ----------
    idents
        Routing identities that preceded the message.
    header
        The decoded header.
    frames
        header, parent header, metadata, content and buffer frames, as received.
    digests
        The buffer digests the original sender signed, carried on when forwarding.
    """

    idents: list[bytes]
    header: Header
    frames: list[Any]
    digests: bytes

    @property
    def msg_id(self) -> str:
        """The message's id."""
        return self.header["msg_id"]

    @property
    def msg_type(self) -> str:
        """The message's type."""
        return self.header["msg_type"]


def parent_header_of(parent: Message | RawMessage | Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the header to put in the ``parent_header`` of a reply to ``parent``.

    ``parent`` may be a :class:`Message`, a :class:`RawMessage`, a message dict with a
    ``"header"`` key, a header dict, or None (no parent).
    """
    if parent is None:
        return {}
    if isinstance(parent, (Message, RawMessage)):
        return dict(parent.header)
    if "header" in parent and isinstance(parent["header"], Mapping):
        return dict(parent["header"])
    return dict(parent)
