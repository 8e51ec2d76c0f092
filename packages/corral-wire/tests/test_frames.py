"""recv_frames / send_frames: the same frames as pyzmq's multipart calls, small ones as bytes."""

from __future__ import annotations

from typing import Any

import pytest
import zmq

from corral.wire import DELIM
from corral.wire.frames import COPY_BELOW, recv_frames, send_frames
from corral.wire.testing import session_pair, socket_pair

pytestmark = pytest.mark.timeout(30)


def _roundtrip(frames: list[Any]) -> list[Any]:
    with socket_pair(zmq.DEALER, zmq.DEALER) as (a, b):
        send_frames(a, frames)
        assert b.poll(5000)
        return recv_frames(b)


def test_a_signed_message_has_bytes_up_to_content_and_zero_copy_buffers() -> None:
    sender, receiver = session_pair()
    big = bytes(range(256)) * (COPY_BELOW // 256 + 1)
    wire = sender.serialize(sender.msg("apply_request", {"n": 1}), [b"small", big], [b"engine", b"client"])
    got = _roundtrip(wire)
    assert [bytes(f) for f in got] == wire
    head = wire.index(DELIM) + 6  # idents, delimiter, signature, 4 JSON frames
    assert all(type(f) is bytes for f in got[:head])
    assert all(isinstance(f, zmq.Frame) for f in got[head:])
    msg = receiver.deserialize(got[got.index(DELIM) + 1 :], idents=got[:2])
    assert msg.content == {"n": 1}
    assert [bytes(b) for b in msg.buffers] == [b"small", big]


def test_a_message_without_delimiter_comes_back_whole_as_bytes() -> None:
    frames = [b"a", b"", b"c" * 100]
    got = _roundtrip(frames)
    assert got == frames
    assert all(type(f) is bytes for f in got)


def test_single_frame_and_frames_of_every_kind() -> None:
    assert _roundtrip([b"only"]) == [b"only"]
    payload = bytearray(b"x" * (2 * COPY_BELOW))
    frames = [DELIM, b"s", memoryview(b"h"), bytearray(b"p"), b"m", b"c", payload, zmq.Frame(b"frame")]
    got = _roundtrip(frames)
    assert [bytes(f) for f in got] == [bytes(f) for f in frames]


def test_a_frame_that_is_no_buffer_sends_nothing() -> None:
    with socket_pair(zmq.DEALER, zmq.DEALER) as (a, b):
        with pytest.raises(TypeError, match="frame 1"):
            send_frames(a, [b"first", 42, b"third"])
        send_frames(a, [b"next", b"message"])  # the socket holds no half-sent message
        assert b.poll(5000)
        assert recv_frames(b) == [b"next", b"message"]


def test_nonblocking_receive_raises_again() -> None:
    with socket_pair(zmq.DEALER, zmq.DEALER) as (_, b), pytest.raises(zmq.Again):
        recv_frames(b, zmq.NOBLOCK)


def test_tracked_frames_are_sent_without_copy() -> None:
    data = b"t" * (2 * COPY_BELOW)
    with socket_pair(zmq.DEALER, zmq.DEALER) as (a, b):
        frame = zmq.Frame(data, track=True, copy=False)
        tracker = zmq.MessageTracker(frame)
        send_frames(a, [b"head", frame])
        del frame  # ZeroMQ is done with the data once it sent it and this Frame is gone
        assert b.poll(5000)
        assert bytes(recv_frames(b)[1]) == data
        tracker.wait(5)
        assert tracker.done
