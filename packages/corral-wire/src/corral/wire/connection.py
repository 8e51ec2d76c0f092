"""Connection files: where a controller listens, and the key that lets a peer in.

A connection file is JSON, written atomically with mode 0600 inside a 0700 directory, and holds
a random 256-bit key per cluster. Whoever can read it can run code on the cluster's engines, so
reading one that group or others can read is refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from corral.wire.errors import ConnectionFileError
from corral.wire.paths import private_dir
from corral.wire.protocol import (
    DEFAULT_BUFFER_FRAME_SIZE,
    MIN_BUFFER_FRAME_SIZE,
    PROTOCOL_VERSION,
    check_protocol_version,
)
from corral.wire.signing import DEFAULT_SCHEME, SCHEMES

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired

__all__ = [
    "ConnectionInfo",
    "KEY_BYTES",
    "buffer_frame_size",
    "channel_url",
    "new_connection_info",
    "new_key",
    "read_connection_file",
    "validate_connection_info",
    "write_connection_file",
]

#: Bytes of randomness in every cluster key (256 bits).
KEY_BYTES: Final = 32


class ConnectionInfo(TypedDict):
    """What a connection file holds."""

    #: corral protocol version of the controller, "MAJOR.MINOR"
    version: str
    #: which cluster this is (also names the file)
    cluster_id: str
    #: "tcp" (default) or "ipc"
    transport: Literal["tcp", "ipc"]
    #: address the controller listens on (127.0.0.1 unless told otherwise); for "ipc", the
    #: path prefix of the socket files (channel URLs are ``ipc://<ip>-<port>``)
    ip: str
    #: port of each channel, by channel name (see corral.wire.protocol.CHANNELS)
    ports: dict[str, int]
    #: the shared key as hex ("" means unsigned)
    key: str
    #: e.g. "blake3-gmac-v1"
    signature_scheme: str
    #: the controller's CurveZMQ public key (Z85), when transport encryption is on
    curve_public_key: NotRequired[str]
    #: largest frame the controller's data channels take, in bytes; senders split larger
    #: buffers into frames of this size (absent: :data:`DEFAULT_BUFFER_FRAME_SIZE`)
    max_frame_size: NotRequired[int]


def new_key() -> str:
    """Return a new random 256-bit key as hex."""
    return secrets.token_hex(KEY_BYTES)


def new_connection_info(
    ports: Mapping[str, int],
    *,
    cluster_id: str = "",
    ip: str = "127.0.0.1",
    transport: Literal["tcp", "ipc"] = "tcp",
    key: str | None = None,
    signature_scheme: str = DEFAULT_SCHEME,
) -> ConnectionInfo:
    """Return a :class:`ConnectionInfo` with a fresh key (unless ``key`` is given).

    Raises
    ------
    ConnectionFileError
        If a field is invalid (see :func:`validate_connection_info`).
    """
    info: ConnectionInfo = {
        "version": PROTOCOL_VERSION,
        "cluster_id": cluster_id,
        "transport": transport,
        "ip": ip,
        "ports": dict(ports),
        "key": new_key() if key is None else key,
        "signature_scheme": signature_scheme,
    }
    return validate_connection_info(info, source="new connection info")


def channel_url(info: ConnectionInfo, channel: str) -> str:
    """Return the ZeroMQ URL of ``channel``, e.g. ``tcp://127.0.0.1:5555``.

    Raises
    ------
    ConnectionFileError
        If the connection info has no port for ``channel``.
    """
    try:
        port = info["ports"][channel]
    except KeyError:
        raise ConnectionFileError(
            f"the connection info has no port for channel {channel!r} "
            f"(it has {', '.join(sorted(info['ports'])) or 'none'}); the controller that wrote "
            "it is older or newer than this side"
        ) from None
    ip = info["ip"]
    if info["transport"] == "ipc":  # "ip" is a path prefix: one socket file per channel
        return f"ipc://{ip}-{port}"
    if ":" in ip:  # IPv6 literal
        ip = f"[{ip}]"
    return f"tcp://{ip}:{port}"


def _fail(source: str, problem: str, fix: str) -> ConnectionFileError:
    return ConnectionFileError(f"{source}: {problem}. {fix}")


def buffer_frame_size(info: ConnectionInfo) -> int:
    """The largest frame to put a buffer in when talking to this controller."""
    return info.get("max_frame_size", DEFAULT_BUFFER_FRAME_SIZE)


def validate_connection_info(data: Any, *, source: str = "connection info") -> ConnectionInfo:
    """Check every field of a connection file's contents and return them typed.

    Raises
    ------
    ConnectionFileError
        Naming the first field that is missing or wrong, and what to do.
    """
    regenerate = "Restart the controller to write a fresh connection file."
    if not isinstance(data, dict):
        raise _fail(source, f"holds JSON {type(data).__name__}, not an object", regenerate)
    for field, kind in (
        ("version", str),
        ("cluster_id", str),
        ("transport", str),
        ("ip", str),
        ("ports", dict),
        ("key", str),
        ("signature_scheme", str),
    ):
        if field not in data:
            raise _fail(source, f"the field {field!r} is missing", regenerate)
        if not isinstance(data[field], kind):
            raise _fail(
                source, f"the field {field!r} should be a {kind.__name__}, not {type(data[field]).__name__}", regenerate
            )
    try:
        check_protocol_version(data["version"], peer=f"the controller that wrote {source}")
    except Exception as err:
        raise ConnectionFileError(str(err)) from None
    if data["transport"] not in ("tcp", "ipc"):
        raise _fail(source, f"transport {data['transport']!r} is not 'tcp' or 'ipc'", regenerate)
    if data["transport"] == "tcp":
        try:
            ipaddress.ip_address(data["ip"])
        except ValueError:
            if not data["ip"] or any(c.isspace() for c in data["ip"]):
                raise _fail(source, f"ip {data['ip']!r} is not an address or host name", regenerate) from None
    for channel, port in data["ports"].items():
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise _fail(source, f"port {port!r} of channel {channel!r} is not between 1 and 65535", regenerate)
    if data["key"]:
        try:
            raw = bytes.fromhex(data["key"])
        except ValueError:
            raise _fail(source, "the key is not hex digits", regenerate) from None
        if len(raw) < 16:
            raise _fail(source, f"the key has {len(raw) * 8} bits, at least 128 are needed", regenerate)
    if data["signature_scheme"] not in SCHEMES:
        raise _fail(
            source,
            f"signature_scheme {data['signature_scheme']!r} is unknown (known: {', '.join(SCHEMES)})",
            "Upgrade corral-wire here, or restart the controller with a scheme both sides know.",
        )
    if "curve_public_key" in data and not isinstance(data["curve_public_key"], str):
        raise _fail(source, "curve_public_key should be a Z85 string", regenerate)
    if "max_frame_size" in data and not (
        type(data["max_frame_size"]) is int and data["max_frame_size"] >= MIN_BUFFER_FRAME_SIZE
    ):
        raise _fail(
            source,
            f"max_frame_size {data['max_frame_size']!r} is not a number of bytes >= {MIN_BUFFER_FRAME_SIZE}",
            regenerate,
        )
    return data  # type: ignore[return-value]


def write_connection_file(path: str | os.PathLike[str], info: ConnectionInfo) -> Path:
    """Write ``info`` to ``path`` atomically, mode 0600, creating its directory with mode 0700.

    Readers never see a half-written file: the JSON goes to a temporary file in the same
    directory that is then renamed over ``path``.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ConnectionFileError
        If ``info`` is invalid.
    OSError
        If the directory cannot be created or written.
    """
    validate_connection_info(dict(info), source=str(path))
    target = Path(path)
    directory = target.parent
    private_dir(directory)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def read_connection_file(path: str | os.PathLike[str], *, check_permissions: bool = True) -> ConnectionInfo:
    """Read and check a connection file.

    Parameters
    ----------
    path
        The file, as written by :func:`write_connection_file`.
    check_permissions
        Refuse a file that group or others can read (the default, and what users should keep).

    Raises
    ------
    ConnectionFileError
        If the file is missing, unreadable, readable by others, not JSON, or has a missing or
        invalid field; the message says which and what to do.
    """
    target = Path(path)
    try:
        st = target.stat()
    except FileNotFoundError:
        raise ConnectionFileError(
            f"no connection file at {target}: is the controller running? Start a cluster with "
            "`corral start`, or pass the path or cluster id it printed."
        ) from None
    except OSError as err:
        raise ConnectionFileError(f"cannot read connection file {target}: {err.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConnectionFileError(f"{target} is not a regular file; pass the connection file's path")
    if check_permissions and st.st_mode & 0o077:
        raise ConnectionFileError(
            f"connection file {target} is accessible to group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"its key lets anyone run code on the cluster. Run `chmod 600 {target}` and, if others "
            "may have read it, restart the controller for a new key."
        )
    try:
        text = target.read_text(encoding="utf-8")
    except PermissionError:
        raise ConnectionFileError(f"no permission to read connection file {target}; run as its owner") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConnectionFileError(f"cannot read connection file {target}: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConnectionFileError(
            f"connection file {target} is corrupt (not JSON: {err.msg} at line {err.lineno}); "
            "delete it and restart the controller"
        ) from None
    return validate_connection_info(data, source=str(target))
