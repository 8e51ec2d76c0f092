"""Receive and send the frames of one multipart message with as little work per frame as possible.

pyzmq's ``recv_multipart``/``send_multipart`` cost several microseconds per frame on top of
ZeroMQ itself: they combine ``IntFlag`` flags in Python for every frame, and with ``copy=False``
wrap every frame in a :class:`zmq.Frame`, even the few-byte ones that pyzmq then copies anyway.
A corral message has 7 to 10 small frames, so on a relay that receives and forwards every
message this was most of the per-message cost. These helpers do the same with integer flags,
small frames as ``bytes`` and large ones zero-copy:

- :func:`recv_frames` returns the routing identities, the delimiter, the signature and the four
  JSON frames as ``bytes`` (copied: they are small, and bytes are what parsing wants) and every
  buffer frame after them as a :class:`zmq.Frame` (not copied);
- :func:`send_frames` copies ``bytes`` frames below :data:`COPY_BELOW` (what
  ``send_multipart(copy=False)`` does too, without making a Frame first) and sends everything
  else zero-copy, exactly as ``send_multipart(frames, copy=False)`` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import zmq

__all__ = ["COPY_BELOW", "DELIM", "recv_frames", "send_frames"]

#: Separates routing identities from the message proper.
DELIM: Final = b"<IDS|MSG>"

#: Frames smaller than this are copied into ZeroMQ rather than shared with it (pyzmq's default).
COPY_BELOW: Final = zmq.COPY_THRESHOLD

_SNDMORE: Final = int(zmq.SNDMORE)
# after the delimiter: the signature and the four JSON frames are small; buffers follow
_SMALL_AFTER_DELIM: Final = 5
# pyzmq's Socket.send only adds draft-API options on top of the backend's; sockets whose class
# does not override send (all but zmq.asyncio's and the like) are sent on with the backend's
_SUGAR_SEND: Final = zmq.Socket.send
_BACKEND_SEND: Final = zmq.backend.Socket.send


def recv_frames(socket: zmq.Socket[Any], flags: int = 0) -> list[Any]:
    """Receive one multipart message: small frames as ``bytes``, buffer frames as ``zmq.Frame``.

    Frames up to the fifth after the ``<IDS|MSG>`` delimiter (identities, delimiter, signature,
    header, parent header, metadata, content) are returned as ``bytes``; the frames after those
    (out-of-band buffers) as zero-copy :class:`zmq.Frame` objects. A message without a delimiter
    comes back as ``bytes`` only (it is malformed and will be refused).

    Raises
    ------
    zmq.Again
        With ``flags=zmq.NOBLOCK`` when no message is waiting.
    zmq.ZMQError
        As ``socket.recv``.
    """
    recv = socket.recv
    # Frame.more is read from the received message itself: cheaper than getsockopt(RCVMORE)
    frame = recv(int(flags), copy=False)
    part = frame.bytes
    parts: list[Any] = [part]
    # -1 until the delimiter is seen; then how many small frames are still to come
    small_left = _SMALL_AFTER_DELIM if part == DELIM else -1
    while frame.more:
        # the rest of a multipart message arrives with its first frame: no flags needed
        frame = recv(0, copy=False)
        if small_left == 0:
            parts.append(frame)
            continue
        part = frame.bytes
        parts.append(part)
        if small_left > 0:
            small_left -= 1
        elif part == DELIM:
            small_left = _SMALL_AFTER_DELIM
    return parts


def send_frames(socket: zmq.Socket[Any], frames: Sequence[Any], flags: int = 0) -> None:
    """Send ``frames`` as one multipart message, as ``send_multipart(frames, copy=False)`` does.

    Small ``bytes`` frames are copied, everything else (large frames, :class:`zmq.Frame`
    objects, tracked frames, numpy arrays and other buffers) is sent without a copy. Every frame
    is checked to be a buffer before the first one is sent, so a bad frame never leaves half a
    message in the socket.

    Raises
    ------
    TypeError
        If a frame does not support the buffer protocol (nothing was sent).
    zmq.ZMQError
        As ``socket.send`` (``EHOSTUNREACH`` from a ``ROUTER_MANDATORY`` socket, ``EAGAIN``).
    """
    for i, frame in enumerate(frames):
        if type(frame) is not bytes and not isinstance(frame, (zmq.Frame, memoryview)):
            try:
                memoryview(frame)
            except TypeError:
                raise TypeError(f"frame {i} ({type(frame).__name__}) does not support the buffer interface") from None
    send = _BACKEND_SEND.__get__(socket) if type(socket).send is _SUGAR_SEND else socket.send
    flags = int(flags)
    more = flags | _SNDMORE
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        # (data, flags, copy): positional, which Cython takes faster than keywords
        if type(frame) is bytes and len(frame) < COPY_BELOW:
            send(frame, flags if i == last else more)
        else:
            send(frame, flags if i == last else more, False)
