"""The corral wire protocol version and the channels a cluster listens on.

The protocol version is kept apart from every package version: two peers can talk when their
protocol *major* versions are equal, whatever their package versions are. A minor bump adds
message types or optional fields that older peers may ignore; a major bump changes something an
older peer would misread, and peers refuse each other with :class:`ProtocolVersionError`.
"""

from __future__ import annotations

from typing import Final

from corral.wire.errors import ProtocolVersionError

__all__ = [
    "CHANNELS",
    "DEFAULT_BUFFER_FRAME_SIZE",
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
