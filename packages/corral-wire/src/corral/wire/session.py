"""The Session: the one place corral messages are packed, signed, checked and unpacked.

A message on the wire is a list of ZeroMQ frames::

    [ident, ..., b"<IDS|MSG>", signature, header, parent_header, metadata, content, buffer, ...]

The signature frame is a small binary envelope (version, sender session id, counter, sender
clock, buffer count), a MAC, and one digest per buffer. The MAC covers the envelope, the four
JSON frames with their lengths, and the buffer digests, so changing, dropping, adding or
reordering any frame, or replaying a message, is detected. ``docs/protocol.md`` has the layout.
"""

from __future__ import annotations

import getpass
import hmac
import itertools
import json
import json.scanner
import logging
import os
import struct
import time
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

import zmq

from corral.wire.errors import MessageRejected, ProtocolVersionError
from corral.wire.frames import DELIM, recv_frames, send_frames
from corral.wire.message import Header, Message, RawMessage, parent_header_of
from corral.wire.protocol import DEFAULT_BUFFER_FRAME_SIZE, ENVELOPE_VERSION, PROTOCOL_VERSION, protocol_major
from corral.wire.replay import ReplayGuard
from corral.wire.shm import DEFAULT_SHM_THRESHOLD, SharedMemory, segment_tag, shm_enabled, take_references
from corral.wire.signing import DEFAULT_SCHEME, Signer, make_signer

__all__ = [
    "DEFAULT_BUFFER_FRAME_SIZE",
    "DEFAULT_MAX_FRAME_SIZE",
    "DELIM",
    "InsecureSessionWarning",
    "Session",
    "json_frame",
    "parent_msg_id",
]

log = logging.getLogger(__name__)

#: Largest frame accepted from a peer that has not authenticated (64 MiB).
DEFAULT_MAX_FRAME_SIZE: Final = 64 * 1024 * 1024

_SIGNED: Final = 1
# version, flags, sender session id, counter, sender clock, buffer count
_ENVELOPE: Final = struct.Struct("<BB16sQdI")
_LENGTHS: Final = struct.Struct("<4Q")
_MAJOR: Final = protocol_major(PROTOCOL_VERSION)
_HEADER_KEYS: Final = frozenset(Header.__required_keys__)

# MAC input: the four JSON frames and the buffer digests are joined and fed in one update
# below this many bytes (fewer hasher calls), fed one by one above it (no copy of big frames).
_JOIN_MAC_INPUT_BELOW: Final = 64 * 1024


def _json_default(obj: object) -> object:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if getattr(obj, "ndim", 0):  # arrays belong in buffers, and __index__ below would misreport them
        raise TypeError(f"{type(obj).__name__} cannot go in a JSON message frame; send it as a buffer")
    if hasattr(obj, "__index__"):
        return obj.__index__()  # numpy integers
    if hasattr(obj, "__float__"):
        return float(obj)  # type: ignore[arg-type]
    raise TypeError(f"{type(obj).__name__} cannot go in a JSON message frame; send it as a buffer")


def _make_dumps() -> Callable[[Mapping[str, Any]], bytes]:
    """Return compact, ASCII-only ``json.dumps``, as fast as the stdlib allows.

    ``JSONEncoder.encode`` re-reads its options and builds a C encoder on every call; this
    builds the C encoder directly (with a fresh ``markers`` dict per call, as the stdlib
    does, so circular references are still caught and threads do not share state). Where
    the C encoder is missing or does not behave as expected, the encoder itself is used.
    """
    # allow_nan=False: NaN and Infinity are not JSON, and peers in other languages refuse them
    encoder = json.JSONEncoder(separators=(",", ":"), default=lambda o: _json_default(o), allow_nan=False)

    def slow(obj: Mapping[str, Any]) -> bytes:
        return encoder.encode(obj).encode()

    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return slow
    options = (encoder.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)

    def fast(obj: Mapping[str, Any]) -> bytes:
        return "".join(make({}, *options)(obj, 0)).encode()

    probe = {"a": [1, 2.5, None, True, "\u00e9\n"], "b": {"c": datetime(2020, 1, 1), "d": frozenset({3})}, "e": {}}
    try:
        same = fast(probe) == slow(probe)
    except Exception:
        same = False
    return fast if same else slow


_dumps = _make_dumps()

# The stdlib's scanner (C where available) with json.loads's default options.
_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[attr-defined, arg-type]


def _loads(frame: Any) -> Any:
    """``json.loads(frame)``, quicker for what corral sends: UTF-8 without surrounding space.

    Anything else (other encodings, a BOM, whitespace, errors) goes to ``json.loads``, so
    the same frames are accepted, with the same results and errors.
    """
    buf = frame if type(frame) is bytes else _view(frame)
    try:
        text = str(buf, "utf-8")
        obj, end = _scan_json(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError):
        pass
    else:
        if end == len(text):
            return obj
    return json.loads(_as_bytes(frame))


def json_frame(frame: Any) -> Any:
    """Decode one JSON frame as corral sends them (bytes, a memoryview or a ``zmq.Frame``).

    Relays use this for the one or two small frames they must read (a reply's parent header),
    with the Session's own fast path.

    Raises
    ------
    ValueError
        If the frame is not UTF-8 JSON (``RecursionError`` if it nests absurdly deep).
    """
    return _loads(frame)


def parent_msg_id(raw: RawMessage) -> str | None:
    """The ``msg_id`` of the request a relayed message answers, or None if unreadable."""
    try:
        parent = _loads(raw.frames[1])
    except (ValueError, RecursionError):
        return None
    msg_id = parent.get("msg_id") if isinstance(parent, dict) else None
    return msg_id if isinstance(msg_id, str) else None


def _view(frame: Any) -> memoryview:
    if isinstance(frame, zmq.Frame):
        return frame.buffer
    return memoryview(frame)


def _as_bytes(frame: Any) -> bytes:
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, zmq.Frame):
        return frame.bytes
    return bytes(frame)


def _loads_object(frame: Any, what: str) -> dict[str, Any]:
    try:
        obj = _loads(frame)
    except (UnicodeDecodeError, ValueError) as err:
        raise MessageRejected("malformed", f"the {what} frame is not JSON: {err}") from None
    except RecursionError:
        raise MessageRejected("malformed", f"the {what} frame nests too deeply") from None
    if not isinstance(obj, dict):
        raise MessageRejected("malformed", f"the {what} frame is JSON {type(obj).__name__}, not an object")
    return obj


def _mac_update(mac: Any, envelope: Any, lengths: bytes, small: Sequence[Any], size: int, digests: bytes) -> None:
    """Feed the MAC input, in its wire order: envelope, lengths, the four JSON frames, digests."""
    if size + len(digests) < _JOIN_MAC_INPUT_BELOW:
        mac.update(b"".join((envelope, lengths, *small, digests)))
        return
    mac.update(envelope)
    mac.update(lengths)
    for frame in small:
        mac.update(frame)
    mac.update(digests)


def _nbytes(buf: Any) -> int:
    if type(buf) is bytes:
        return len(buf)
    return _view(buf).nbytes


def _check_chunks(chunks: Any, nbuf: int, nframes: int) -> None:
    """Check that ``header["chunks"]`` splits ``nframes`` buffer frames into ``nbuf`` buffers."""
    if chunks is None:
        raise MessageRejected("malformed", f"{nbuf} buffers signed but {nframes} frames received")
    if (
        not isinstance(chunks, list)
        or len(chunks) != nbuf
        or not all(type(c) is int and c > 0 for c in chunks)
        or sum(chunks) != nframes
    ):
        raise MessageRejected(
            "malformed", f"header chunks {chunks!r} do not split {nframes} frames into {nbuf} buffers"
        )


def _join_chunks(frames: list[memoryview], chunks: Sequence[int]) -> list[memoryview]:
    """Join each buffer's frames into one (a copy, only for buffers sent in several frames)."""
    out: list[memoryview] = []
    i = 0
    for n in chunks:
        if n == 1:
            out.append(frames[i])
        else:
            parts = frames[i : i + n]
            joined = bytearray(sum(p.nbytes for p in parts))
            pos = 0
            for p in parts:
                joined[pos : pos + p.nbytes] = p
                pos += p.nbytes
            out.append(memoryview(joined).toreadonly())
        i += n
    return out


class InsecureSessionWarning(UserWarning):
    """A Session was made with an empty key: messages are neither signed nor checked."""


class _RateLimitedLog:
    """Log each (channel, reason) at most once per ``interval`` seconds, without a traceback."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}

    def __call__(self, channel: str, err: MessageRejected, total: int) -> None:
        now = time.monotonic()
        key = (channel, err.reason)
        if now - self._last.get(key, -self.interval) >= self.interval:
            self._last[key] = now
            log.warning("dropped a message on %s: %s (%d %s so far)", channel, err, total, err.reason)


class Session:
    """Pack, sign, send, receive, check and unpack corral messages.

    Parameters
    ----------
    key
        The cluster's shared key (bytes, or a hex string as in connection files). An
        explicitly empty key means unsigned: nothing is signed or checked, and
        :class:`InsecureSessionWarning` is issued.
    scheme
        The signature scheme, one of :data:`corral.wire.signing.SCHEMES`.
    username
        Put in every header; defaults to the login name.
    session
        This sender's id (32 hex digits); a random one by default.
    max_frame_size
        Refuse JSON frames larger than this; also what :func:`corral.wire.sockets.harden`
        applies to listening sockets, before any allocation.
    replay_window
        Seconds a sender's clock may differ from ours before its messages are ``stale``;
        ``0`` turns the age check off (counters still stop replays).
    buffer_frame_size
        Send a buffer larger than this in several frames of at most this size (the
        receiver joins them); clients and engines take it from the connection file's
        ``max_frame_size``, the limit of the controller's data channels.

    Raises
    ------
    ValueError
        If ``scheme`` is unknown, ``key`` is not bytes or hex, ``session`` is not 32 hex digits,
        or ``buffer_frame_size`` is not positive.

    Examples
    --------
    >>> from corral.wire import Session
    >>> a, b = Session(key=b"k" * 32), Session(key=b"k" * 32)
    >>> frames = a.serialize(a.msg("ping", {"n": 1}))
    >>> b.deserialize(frames).content
    {'n': 1}
    """

    def __init__(
        self,
        key: bytes | str,
        *,
        scheme: str = DEFAULT_SCHEME,
        username: str | None = None,
        session: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        replay_window: float = 600.0,
        buffer_frame_size: int = DEFAULT_BUFFER_FRAME_SIZE,
    ) -> None:
        if isinstance(key, str):
            try:
                key = bytes.fromhex(key)
            except ValueError:
                raise ValueError("a str key must be hex digits, as in connection files") from None
        if not isinstance(key, (bytes, bytearray)):
            raise ValueError(f"key must be bytes or a hex str, not {type(key).__name__}")
        self.key = bytes(key)
        self.signer: Signer = make_signer(scheme, self.key)
        #: the scheme in force: ``"none"`` for an empty key, whatever was asked
        self.scheme = self.signer.scheme
        if not self.key:
            warnings.warn(
                "corral Session with an empty key: messages are not signed, so anyone who can "
                "reach the sockets can run code. Use the connection file's key.",
                InsecureSessionWarning,
                stacklevel=2,
            )
        if session is None:
            sid = os.urandom(16)
        else:
            try:
                sid = bytes.fromhex(session)
            except ValueError:
                sid = b""
            if len(sid) != 16:
                raise ValueError(f"session must be 32 hex digits, not {session!r}")
        self._sid = sid
        self.session = sid.hex()
        if username is None:
            try:
                username = getpass.getuser()
            except Exception:  # no login name in some containers
                username = "corral"
        self.username = username
        self.max_frame_size = int(max_frame_size)
        self.replay = ReplayGuard(max_age=replay_window)
        if not (isinstance(buffer_frame_size, int) and buffer_frame_size > 0):
            raise ValueError(f"buffer_frame_size must be a positive number of bytes, not {buffer_frame_size!r}")
        #: buffers larger than this go out in several frames (see ``buffer_frame_size``)
        self.buffer_frame_size = buffer_frame_size
        #: messages dropped, by (channel, reason)
        self.rejections: Counter[tuple[str, str]] = Counter()
        self._log_rejection = _RateLimitedLog()
        self._msg_counter = itertools.count()
        self._env_counter = itertools.count(1)
        self._signed = self.signer.mac_size > 0
        self._flags = _SIGNED if self._signed else 0
        self._mac_end = _ENVELOPE.size + self.signer.mac_size
        #: the sending side of shared memory (:meth:`enable_shm`); None: buffers go in frames
        self.shm: SharedMemory | None = None
        #: routing identity (an engine's uuid) -> pid of a peer in this host's shared-memory
        #: domain; requests to these go through shared memory (:meth:`add_shm_route`)
        self.shm_routes: dict[bytes, int] = {}
        self._shm_tag = segment_tag(self.key)

    # -- shared memory ---------------------------------------------------------------------

    def enable_shm(self, threshold: int = DEFAULT_SHM_THRESHOLD) -> bool:
        """Send buffers of ``threshold`` bytes or more through shared memory to local peers.

        Which peers are local: engines added with :meth:`add_shm_route` (a client learns them
        from the hub), and the sender of a request whose header carries ``shm_host`` (an
        engine answering a local client). Receiving needs nothing enabled. See
        :mod:`corral.wire.shm`.

        Returns
        -------
        bool
            Whether shared memory is on: False where this process cannot share memory (no
            writable ``/dev/shm``) or ``CORRAL_SHM=0`` turns it off.

        Raises
        ------
        ValueError
            If ``threshold`` is below 1, or ``CORRAL_SHM`` holds something else than 0 or 1.
        """
        if threshold < 1:
            raise ValueError(f"the shared-memory threshold must be at least 1 byte, not {threshold}")
        if not shm_enabled():
            self.shm = None
            return False
        try:
            self.shm = SharedMemory(self.key, threshold)
        except ValueError as err:
            log.info("shared memory is off: %s", err)
            self.shm = None
        return self.shm is not None

    def add_shm_route(self, ident: bytes, address: object) -> bool:
        """Send to routing identity ``ident`` through shared memory if ``address`` is local.

        ``address`` is the peer's :attr:`SharedMemory.address` (an engine reports it at
        registration). Returns whether the route was added; a route once added stays (an
        engine's uuid is never reused).
        """
        pid = self.shm.local_pid(address) if self.shm is not None else None
        if pid is None:
            return False
        self.shm_routes[ident] = pid
        return True

    # -- building --------------------------------------------------------------------------

    def msg_id(self) -> str:
        """Return a new message id, unique to this session."""
        return f"{self.session}_{next(self._msg_counter)}"

    def msg_header(self, msg_type: str) -> Header:
        """Return a new header for a message of ``msg_type``."""
        return {
            "msg_id": self.msg_id(),
            "msg_type": msg_type,
            "session": self.session,
            "username": self.username,
            "date": datetime.now(timezone.utc).isoformat(),
            "version": PROTOCOL_VERSION,
        }

    def msg(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        parent: Message | RawMessage | Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        header: Header | None = None,
    ) -> Message:
        """Return a new :class:`Message` (not yet sent).

        Parameters
        ----------
        msg_type
            e.g. ``"apply_request"``.
        content
            The JSON payload.
        parent
            The message this one answers (its header becomes ``parent_header``).
        metadata
            JSON facts about the message.
        header
            Use this header instead of a new one.
        """
        return Message(
            header=header if header is not None else self.msg_header(msg_type),
            parent_header=parent_header_of(parent),
            metadata=dict(metadata or {}),
            content=dict(content or {}),
        )

    def _envelope(self, small: Sequence[Any], digests: bytes, nbuf: int) -> bytes:
        prefix = _ENVELOPE.pack(ENVELOPE_VERSION, self._flags, self._sid, next(self._env_counter), time.time(), nbuf)
        if not self._signed:
            return prefix
        lengths = (len(small[0]), len(small[1]), len(small[2]), len(small[3]))
        mac = self.signer.new_mac()
        _mac_update(mac, prefix, _LENGTHS.pack(*lengths), small, sum(lengths), digests)
        return prefix + mac.digest() + digests

    def serialize(
        self,
        msg: Message,
        buffers: Sequence[Any] = (),
        idents: Sequence[bytes] = (),
    ) -> list[Any]:
        """Return the signed frames of ``msg`` followed by ``buffers``, ready to send.

        Buffers are not copied: any object with the buffer protocol goes out as its own frame.

        Raises
        ------
        TypeError
            If header, parent, metadata or content hold something JSON cannot encode
            (including NaN and Infinity, which are not JSON).
        """
        bufs = list(buffers) if buffers else list(msg.buffers)
        header: Mapping[str, Any] = msg.header
        out = bufs
        if self.shm is not None:
            route = self.shm_routes.get(idents[0]) if idents else None
            header, out = self.shm.outgoing(msg.header, msg.parent_header, bufs, route)
        header, out = self._split(header, out)
        try:
            small = [_dumps(header), _dumps(msg.parent_header), _dumps(msg.metadata), _dumps(msg.content)]
        except ValueError as err:  # NaN or Infinity, refused by allow_nan=False
            raise TypeError(f"{err}: send such numbers as strings, or in a buffer") from None
        digests = b"".join([self.signer.digest(b) for b in bufs]) if self._signed else b""
        return [*idents, DELIM, self._envelope(small, digests, len(bufs)), *small, *out]

    def _split(self, header: Mapping[str, Any], out: list[Any]) -> tuple[Mapping[str, Any], list[Any]]:
        """Split buffers larger than :attr:`buffer_frame_size` into frames (views, no copy)."""
        limit = self.buffer_frame_size
        sizes = [_nbytes(b) for b in out]
        if not sizes or max(sizes) <= limit:
            return header, out
        frames: list[Any] = []
        chunks: list[int] = []
        for buf, size in zip(out, sizes, strict=True):
            if size <= limit:
                frames.append(buf)
                chunks.append(1)
                continue
            view = _view(buf)
            if view.ndim != 1 or view.format != "B":
                view = view.cast("B")
            pieces = [view[i : i + limit] for i in range(0, size, limit)]
            frames.extend(pieces)
            chunks.append(len(pieces))
        return {**header, "chunks": chunks}, frames

    def send(
        self,
        socket: zmq.Socket[Any],
        msg_or_type: Message | str,
        content: Mapping[str, Any] | None = None,
        parent: Message | RawMessage | Mapping[str, Any] | None = None,
        ident: bytes | Sequence[bytes] | None = None,
        buffers: Sequence[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        track: bool = False,
    ) -> tuple[Message, zmq.MessageTracker | None]:
        """Build (if given a type), sign and send a message on ``socket``.

        Buffers are sent without copying; with ``track=True`` the returned
        :class:`zmq.MessageTracker` tells when ZeroMQ is done with all of them.

        Returns
        -------
        (Message, MessageTracker or None)
            The tracker when ``track=True`` (already done if there were no buffers).

        Raises
        ------
        TypeError
            If a JSON part holds something JSON cannot encode.
        zmq.ZMQError
            If ZeroMQ refuses the send.
        """
        msg = self.msg(msg_or_type, content, parent, metadata) if isinstance(msg_or_type, str) else msg_or_type
        idents: Sequence[bytes] = [] if ident is None else ([ident] if isinstance(ident, bytes) else ident)
        frames = self.serialize(msg, buffers or (), idents)
        tracker = zmq.MessageTracker() if track else None  # no buffers: nothing to wait for
        if track and (buffers or msg.buffers):
            nsmall = len(idents) + 6
            tracked = [zmq.Frame(b, track=True, copy=False) for b in frames[nsmall:]]
            send_frames(socket, frames[:nsmall] + tracked)
            tracker = zmq.MessageTracker(*tracked)
        else:
            send_frames(socket, frames)
        return msg, tracker

    # -- receiving -------------------------------------------------------------------------

    @staticmethod
    def feed_identities(frames: Sequence[Any]) -> tuple[list[bytes], list[Any]]:
        """Split received frames into routing identities and the message frames.

        Raises
        ------
        MessageRejected
            ``malformed`` if there is no delimiter.
        """
        for i, frame in enumerate(frames):
            if len(frame) == len(DELIM) and _as_bytes(frame) == DELIM:
                return [_as_bytes(f) for f in frames[:i]], list(frames[i + 1 :])
        raise MessageRejected("malformed", "no <IDS|MSG> delimiter among the frames")

    def reject(self, channel: str, err: MessageRejected) -> None:
        """Count a dropped message under (``channel``, ``err.reason``) and log it at a bounded rate.

        Receivers call this for drops they decide on themselves (e.g. a message with the wrong
        routing identities); :meth:`deserialize` and friends call it for theirs.
        """
        key = (channel, err.reason)
        self.rejections[key] += 1
        self._log_rejection(channel, err, self.rejections[key])

    def _check(self, frames: Sequence[Any], stream: Hashable) -> tuple[Header, bytes, int]:
        """Check envelope, MAC and replay; decode the header. Returns (header, digests, nbuf)."""
        if len(frames) < 5:
            raise MessageRejected("malformed", f"{len(frames)} frames after the delimiter, at least 5 needed")
        sig = frames[0]
        if type(sig) is not bytes:
            sig = _view(sig)
        if len(sig) == 0:
            if self._signed:
                raise MessageRejected("unsigned", "the signature frame is empty")
            raise MessageRejected("malformed", "the signature frame is empty")
        if len(sig) < _ENVELOPE.size:
            raise MessageRejected("malformed", f"signature frame of {len(sig)} bytes is too short")
        version, flags, sid, counter, stamp, nbuf = _ENVELOPE.unpack_from(sig)
        if version != ENVELOPE_VERSION:
            raise ProtocolVersionError(f"envelope version {version}, this side reads {ENVELOPE_VERSION}")
        if nbuf > len(frames) - 5:
            raise MessageRejected("malformed", f"{nbuf} buffers signed but {len(frames) - 5} frames received")
        small = [f if type(f) is bytes else _view(f) for f in frames[1:5]]
        lengths = (len(small[0]), len(small[1]), len(small[2]), len(small[3]))
        if max(lengths) > self.max_frame_size:
            size = max(lengths)
            raise MessageRejected("oversized", f"a {size}-byte JSON frame exceeds {self.max_frame_size}")
        digests = b""
        if self._signed:
            if not flags & _SIGNED:
                raise MessageRejected("unsigned", "the sender did not sign this message")
            dsize = self.signer.digest_size
            if len(sig) != self._mac_end + nbuf * dsize:
                raise MessageRejected("malformed", f"signature frame of {len(sig)} bytes for {nbuf} buffers")
            digests = bytes(sig[self._mac_end :])
            mac = self.signer.new_mac()
            _mac_update(mac, sig[: _ENVELOPE.size], _LENGTHS.pack(*lengths), small, sum(lengths), digests)
            if not hmac.compare_digest(mac.digest(), sig[_ENVELOPE.size : self._mac_end]):
                raise MessageRejected("bad_signature", "the MAC does not match: wrong key or altered frames")
            self.replay.check(stream, sid, counter, stamp)
        elif flags & _SIGNED:
            digests = bytes(sig[_ENVELOPE.size + 32 :])  # keep what the sender signed when relaying
        header = _loads_object(small[0], "header")
        if not header.keys() >= _HEADER_KEYS:
            missing = ", ".join(sorted(_HEADER_KEYS - header.keys()))
            raise MessageRejected("malformed", f"the header lacks {missing}")
        if nbuf != len(frames) - 5:
            _check_chunks(header.get("chunks"), nbuf, len(frames) - 5)
        if header["version"] == PROTOCOL_VERSION:
            return header, digests, nbuf  # type: ignore[return-value]
        try:
            major = protocol_major(header["version"])
        except ProtocolVersionError as err:
            raise ProtocolVersionError(str(err), peer_version=str(header["version"]), header=header) from None
        if major != _MAJOR:
            raise ProtocolVersionError(
                f"the sender speaks corral protocol {header['version']}, this side {PROTOCOL_VERSION}; "
                "install matching corral versions on both sides",
                peer_version=str(header["version"]),
                header=header,
            )
        return header, digests, nbuf  # type: ignore[return-value]

    def deserialize(
        self,
        frames: Sequence[Any],
        *,
        stream: Hashable = 0,
        channel: str = "default",
        verify_buffers: bool = True,
        idents: Sequence[bytes] = (),
    ) -> Message:
        """Check and unpack the frames that follow the delimiter.

        Buffers come back as read-only views of the received frames (no copy).

        Parameters
        ----------
        frames
            signature, header, parent, metadata, content, buffers.
        stream
            Replay counters are tracked per (stream, sender); receivers pass the socket.
        channel
            Name to count and log rejections under (``"mux"``, ``"registration"``).
        verify_buffers
            Check each buffer against its signed digest (only relays that never read the
            buffers turn this off; they check the MAC all the same).
        idents
            Routing identities to attach to the returned message.

        Raises
        ------
        MessageRejected
            With a ``reason`` from :data:`corral.wire.errors.REJECT_REASONS`; it was counted in
            :attr:`rejections` and logged at a bounded rate.
        """
        buffers: list[memoryview] = []
        try:
            header, digests, _nbuf = self._check(frames, stream)
            parent = _loads_object(frames[2], "parent header")
            metadata = _loads_object(frames[3], "metadata")
            content = _loads_object(frames[4], "content")
            buffers = [_view(f).toreadonly() for f in frames[5:]]
            if len(buffers) != _nbuf:  # checked against header["chunks"] by _check
                buffers = _join_chunks(buffers, header["chunks"])  # type: ignore[typeddict-item]
            if verify_buffers and "shm" in header:
                problem = take_references(header, buffers, self._shm_tag)
                if problem:
                    raise MessageRejected("malformed", problem)
            if verify_buffers and self._signed:
                dsize = self.signer.digest_size
                for i in range(len(buffers)):  # no loop variable: a failure's traceback holds no buffer
                    want = digests[i * dsize : (i + 1) * dsize]
                    if not self.signer.verify(buffers[i], want):
                        # the MAC checked out, so the header is the sender's: say which message
                        raise MessageRejected(
                            "tampered_buffer",
                            f"buffer {i} does not match its signed digest",
                            header=dict(header),
                            idents=idents,
                        )
        except MessageRejected as err:
            buffers.clear()  # the error's traceback must not keep mapped segments in use
            self.reject(channel, err)
            raise
        return Message(header, parent, metadata, content, buffers, list(idents))

    def recv(
        self,
        socket: zmq.Socket[Any],
        flags: int = 0,
        *,
        channel: str = "default",
        verify_buffers: bool = True,
    ) -> Message:
        """Receive, check and unpack one message from ``socket``, without copying buffers.

        Raises
        ------
        MessageRejected
            The message was dropped (and counted); receive the next one.
        zmq.Again
            With ``flags=zmq.NOBLOCK`` when nothing is waiting.
        """
        frames = recv_frames(socket, flags)
        try:
            idents, rest = self.feed_identities(frames)
        except MessageRejected as err:
            self.reject(channel, err)
            raise
        return self.deserialize(rest, stream=socket, channel=channel, verify_buffers=verify_buffers, idents=idents)

    # -- relaying --------------------------------------------------------------------------

    def deserialize_raw(
        self,
        frames: Sequence[Any],
        *,
        stream: Hashable = 0,
        channel: str = "default",
        idents: Sequence[bytes] = (),
    ) -> RawMessage:
        """Check the signature of a message and decode only its header, for routing.

        Buffers are neither hashed nor copied; the engine or client that unpacks them checks
        them against the digests this MAC covers.

        Raises
        ------
        MessageRejected
            As :meth:`deserialize`.
        """
        try:
            header, digests, _ = self._check(frames, stream)
        except MessageRejected as err:
            self.reject(channel, err)
            raise
        return RawMessage(list(idents), header, list(frames[1:]), digests)

    def route(self, frames: Sequence[Any], *, stream: Hashable = 0, channel: str = "default") -> RawMessage:
        """Split routing identities off received frames and :meth:`deserialize_raw` the rest.

        Raises
        ------
        MessageRejected
            As :meth:`deserialize_raw`, also for frames without a delimiter; always counted.
        """
        try:
            idents, rest = self.feed_identities(frames)
        except MessageRejected as err:
            self.reject(channel, err)
            raise
        return self.deserialize_raw(rest, stream=stream, channel=channel, idents=idents)

    def forward_header(self, socket: zmq.Socket[Any], header: Any, idents: Sequence[bytes] = ()) -> None:
        """Send only the header frame of a checked message on, signed as coming from this session.

        Parent, metadata and content go as empty objects, and there are no buffers: a record
        of a message for someone who needs its header alone (an engine telling the hub about a
        request that reached it directly, docs/messages.md).

        Raises
        ------
        zmq.ZMQError
            If ZeroMQ refuses the send.
        """
        small = [header if type(header) is bytes else _view(header), b"{}", b"{}", b"{}"]
        send_frames(socket, [*idents, DELIM, self._envelope(small, b"", 0), *small])

    def forward(self, socket: zmq.Socket[Any], raw: RawMessage, idents: Sequence[bytes] = ()) -> None:
        """Send a checked :class:`RawMessage` on, re-signed as coming from this session.

        The header, content and buffer frames go out as they came in, without a copy; only
        the envelope is new, so the receiver's replay counters see this relay's stream.

        Raises
        ------
        zmq.ZMQError
            If ZeroMQ refuses the send.
        """
        frames = raw.frames
        small = [f if type(f) is bytes else _view(f) for f in frames[:4]]
        chunks = raw.header.get("chunks")
        nbuf = len(chunks) if isinstance(chunks, list) else len(frames) - 4
        env = self._envelope(small, raw.digests, nbuf)
        send_frames(socket, [*idents, DELIM, env, *frames])
