"""The corral wire protocol version and the channels a cluster listens on.

The protocol version is kept apart from every package version: two peers can talk when their
protocol *major* versions are equal, whatever their package versions are. A minor bump adds
message types or optional fields that older peers may ignore; a major bump changes something an
older peer would misread, and peers refuse each other with :class:`ProtocolVersionError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Final

from corral.wire._env import env_switch
from corral.wire.errors import ProtocolVersionError

__all__ = [
    "CHANNELS",
    "DEFAULT_BUFFER_FRAME_SIZE",
    "DIRECT_ENV",
    "DIRECT_REPLY_RECORD",
    "DIRECT_REQUEST_RECORD",
    "direct_enabled",
    "valid_direct_url",
    "ENVELOPE_VERSION",
    "MIN_BUFFER_FRAME_SIZE",
    "PROTOCOL_VERSION",
    "check_protocol_version",
    "protocol_major",
]

#: The protocol version this package speaks, as ``"MAJOR.MINOR"``.
PROTOCOL_VERSION: Final = "1.0"

#: Largest frame a buffer travels in (256 MiB), and what a controller's data channels accept
#: from anyone by default: a larger buffer is split into frames of this size and joined again
#: by the receiver (``header["chunks"]``, docs/protocol.md), so no peer needs a socket that
#: takes frames of any size, and a stranger cannot make the controller allocate one.
DEFAULT_BUFFER_FRAME_SIZE: Final = 256 * 1024 * 1024

#: The smallest frame limit a controller may set for its data channels (1 MiB).
MIN_BUFFER_FRAME_SIZE: Final = 1024 * 1024

#: Routing marks of the records an engine sends the controller about the direct path (clients
#: reach engines' own ``direct`` sockets without the controller, docs/messages.md): on
#: ``mux_engine`` a message with identities ``[client, DIRECT_REQUEST_RECORD]`` records a request
#: the engine took in directly (header only), one with ``[client, DIRECT_REPLY_RECORD]`` the reply
#: it handed to that client. The controller stores them and forwards neither.
DIRECT_REQUEST_RECORD: Final = b"corral.direct.request"
DIRECT_REPLY_RECORD: Final = b"corral.direct.reply"

#: Environment variable that turns the direct path off (``0``) in an engine or a client.
DIRECT_ENV: Final = "CORRAL_DIRECT"

_DIRECT_URL: Final = re.compile(r"(tcp://(\[[0-9a-fA-F:.]+\]|[0-9.]+):[0-9]{1,5}|ipc://[^\x00]{1,200})")


def direct_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``CORRAL_DIRECT`` allows the direct path (the default: yes).

    Raises
    ------
    ValueError
        If ``CORRAL_DIRECT`` is set to something other than on/off words.
    """
    return env_switch(
        DIRECT_ENV,
        os.environ if environ is None else environ,
        "clients reach engines directly",
        "every request goes through the controller",
    )


def valid_direct_url(url: object) -> str | None:
    """Return ``url`` if it is an address an engine's direct socket may have, else None.

    A ``tcp://`` address with a literal IP and a port, or an ``ipc://`` path: anything else
    (host names, other transports, overlong strings) is ignored rather than connected to.
    """
    if isinstance(url, str) and _DIRECT_URL.fullmatch(url):
        return url
    return None


#: The version byte at the start of every signature frame (see ``docs/protocol.md``).
ENVELOPE_VERSION: Final = 1

#: Every channel a controller listens on, by the name used in connection files. Channels ending
#: in ``_engine`` face engines; the others face clients (see ``docs/protocol.md``).
CHANNELS: Final = (
    "registration",  # ROUTER: registration and queries (hub)
    "heartbeat_ping",  # PUB: the hub's heartbeat pings
    "heartbeat_pong",  # ROUTER: engines' echoed pings
    "mux",  # ROUTER: direct requests from clients
    "mux_engine",  # ROUTER: direct requests to engines
    "task",  # ROUTER: load-balanced tasks from clients
    "task_engine",  # ROUTER: load-balanced tasks to engines
    "broadcast",  # ROUTER: broadcast requests from clients
    "broadcast_engine",  # ROUTER: broadcast requests to engines
    "control",  # ROUTER: abort, clear, shutdown, signals from clients
    "control_engine",  # ROUTER: control requests to engines
    "iopub",  # PUB: engine output, relayed to clients
    "iopub_engine",  # SUB: engine output, from engines
    "notification",  # PUB: engines joining and leaving
)


def protocol_major(version: str) -> int:
    """Return the major number of a ``"MAJOR.MINOR"`` protocol version string.

    Raises
    ------
    ProtocolVersionError
        If ``version`` is not of the form ``"MAJOR.MINOR"`` with integer parts.
    """
    major, sep, minor = str(version).partition(".")
    if not sep or not major.isdigit() or not minor.isdigit():
        raise ProtocolVersionError(
            f"malformed protocol version {version!r}: expected 'MAJOR.MINOR', e.g. {PROTOCOL_VERSION!r}",
            peer_version=str(version),
        )
    return int(major)


def check_protocol_version(peer_version: str, *, peer: str = "peer") -> None:
    """Check that a peer speaking ``peer_version`` can talk to this package.

    Parameters
    ----------
    peer_version
        The ``version`` field of the peer's message header or connection file.
    peer
        How to name the peer in the error message (``"engine 3"``, ``"client"``).

    Raises
    ------
    ProtocolVersionError
        If the peer's protocol major version differs from :data:`PROTOCOL_VERSION`'s.
    """
    if protocol_major(peer_version) != protocol_major(PROTOCOL_VERSION):
        raise ProtocolVersionError(
            f"{peer} speaks corral protocol {peer_version}, this side speaks {PROTOCOL_VERSION}: "
            "major versions differ, so the two cannot talk. Install matching corral versions "
            "on both sides (`corral --version` lists them).",
            peer_version=str(peer_version),
        )
