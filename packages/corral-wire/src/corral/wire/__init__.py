"""corral.wire: messages, signing, serialization and connection files.

The bottom layer of corral: every other corral package imports this one and nothing below it.

- :class:`Session` packs, signs, sends, receives and checks messages;
- :class:`Serializer` turns objects into frames (pickle 5, out-of-band buffers) and back;
- connection files are read and written by :func:`read_connection_file` and
  :func:`write_connection_file`;
- :mod:`corral.wire.errors` holds corral's error tree and the remote-error wire format;
- :mod:`corral.wire.testing` helps other packages' tests.
"""

from __future__ import annotations

from corral.wire._version import __version__
from corral.wire.canning import Reference, interactive, use_namespace
from corral.wire.connection import (
    ConnectionInfo,
    channel_url,
    new_connection_info,
    new_key,
    read_connection_file,
    write_connection_file,
)
from corral.wire.errors import (
    ConnectionFileError,
    CorralError,
    MessageRejected,
    ProtocolVersionError,
    RemoteError,
    SerializationError,
    unwrap_exception,
    wrap_exception,
)
from corral.wire.message import Header, Message, RawMessage
from corral.wire.protocol import CHANNELS, PROTOCOL_VERSION, check_protocol_version
from corral.wire.serialize import Serializer, get_serializer, pack_apply_message, unpack_apply_message
from corral.wire.session import DELIM, InsecureSessionWarning, Session
from corral.wire.signing import DEFAULT_SCHEME, SCHEMES
from corral.wire.sockets import harden

__all__ = [
    "CHANNELS",
    "DEFAULT_SCHEME",
    "DELIM",
    "PROTOCOL_VERSION",
    "SCHEMES",
    "ConnectionFileError",
    "ConnectionInfo",
    "CorralError",
    "Header",
    "InsecureSessionWarning",
    "Message",
    "MessageRejected",
    "ProtocolVersionError",
    "RawMessage",
    "Reference",
    "RemoteError",
    "SerializationError",
    "Serializer",
    "Session",
    "__version__",
    "channel_url",
    "check_protocol_version",
    "get_serializer",
    "harden",
    "interactive",
    "new_connection_info",
    "new_key",
    "pack_apply_message",
    "read_connection_file",
    "unpack_apply_message",
    "unwrap_exception",
    "use_namespace",
    "wrap_exception",
    "write_connection_file",
]
