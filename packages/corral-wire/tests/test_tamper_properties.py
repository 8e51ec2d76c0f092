"""Property tests: any change to any frame, any frame dropped, added or moved, and any replay
is rejected and counted; nothing of a rejected message is ever returned."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.wire import MessageRejected, Session

pytestmark = pytest.mark.timeout(120)

KEY = os.urandom(32)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fresh_frames(nbuf: int, scheme: str = "blake3-gmac-v1") -> tuple[Session, list[bytes]]:
    sender, receiver = Session(KEY, scheme=scheme), Session(KEY, scheme=scheme)
    msg = sender.msg("apply_request", {"serializer": "pickle", "n": list(range(5))}, metadata={"after": []})
    buffers = [os.urandom(1 + 997 * i) for i in range(nbuf)]
    return receiver, [bytes(f) for f in sender.serialize(msg, buffers)[1:]]


def assert_rejected(receiver: Session, frames: list[Any]) -> None:
    before = sum(receiver.rejections.values())
    with pytest.raises(MessageRejected):
        receiver.deserialize(frames, channel="prop")
    assert sum(receiver.rejections.values()) == before + 1


@SETTINGS
@given(
    nbuf=st.integers(0, 3),
    scheme=st.sampled_from(["blake3-gmac-v1", "blake3-v1", "hmac-sha256-v1"]),
    data=st.data(),
)
def test_changing_any_byte_of_any_frame_is_rejected(nbuf: int, scheme: str, data: st.DataObject) -> None:
    receiver, frames = fresh_frames(nbuf, scheme)
    index = data.draw(st.integers(0, len(frames) - 1), label="frame")
    frame = bytearray(frames[index])
    pos = data.draw(st.integers(0, len(frame) - 1), label="byte")
    delta = data.draw(st.integers(1, 255), label="xor")
    frame[pos] ^= delta
    frames[index] = bytes(frame)
    assert_rejected(receiver, frames)


@SETTINGS
@given(nbuf=st.integers(0, 3), data=st.data())
def test_dropping_adding_or_reordering_frames_is_rejected(nbuf: int, data: st.DataObject) -> None:
    receiver, frames = fresh_frames(nbuf)
    action = data.draw(st.sampled_from(["drop", "add", "swap", "truncate", "extend"]), label="action")
    if action == "drop":
        del frames[data.draw(st.integers(0, len(frames) - 1))]
    elif action == "add":
        frames.insert(data.draw(st.integers(0, len(frames))), data.draw(st.binary(max_size=64)))
    elif action == "swap":
        i = data.draw(st.integers(0, len(frames) - 1))
        j = data.draw(st.integers(0, len(frames) - 1).filter(lambda j: frames[j] != frames[i]))
        frames[i], frames[j] = frames[j], frames[i]
    elif action == "truncate":
        i = data.draw(st.integers(0, len(frames) - 1).filter(lambda i: len(frames[i]) > 0))
        frames[i] = frames[i][: data.draw(st.integers(0, len(frames[i]) - 1))]
    else:
        i = data.draw(st.integers(0, len(frames) - 1))
        frames[i] = frames[i] + data.draw(st.binary(min_size=1, max_size=16))
    assert_rejected(receiver, frames)


@SETTINGS
@given(nbuf=st.integers(0, 2), replays=st.integers(1, 3))
def test_replay_is_rejected_every_time(nbuf: int, replays: int) -> None:
    receiver, frames = fresh_frames(nbuf)
    assert receiver.deserialize(frames).content["n"] == [0, 1, 2, 3, 4]
    for _ in range(replays):
        assert_rejected(receiver, list(frames))
    assert receiver.rejections[("prop", "replayed")] == replays


@SETTINGS
@given(junk=st.lists(st.binary(max_size=200), max_size=10))
def test_garbage_never_crashes_the_receiver(junk: list[bytes]) -> None:
    receiver = Session(KEY)
    with pytest.raises(MessageRejected):
        receiver.deserialize(junk)
