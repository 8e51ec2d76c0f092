"""Session: packing, signing, checking and counting, over real sockets where it matters."""

from __future__ import annotations

import json
import logging
import struct
from typing import Any

import pytest
import zmq

from corral.wire import DELIM, InsecureSessionWarning, MessageRejected, ProtocolVersionError, Session
from corral.wire.testing import session_pair, socket_pair

pytestmark = pytest.mark.timeout(30)


def frames_of(sender: Session, **kw: Any) -> list[Any]:
    msg = sender.msg(kw.pop("msg_type", "apply_request"), kw.pop("content", {"a": 1}), metadata={"m": True})
    return [bytes(f) for f in sender.serialize(msg, kw.pop("buffers", [b"x" * 100, b"y" * 5000]))]


def test_round_trip_keeps_every_part(pair: tuple[Session, Session]) -> None:
    a, b = pair
    request = a.msg("execute_request", {"code": "1+1"})
    reply = a.msg("execute_reply", {"status": "ok"}, parent=request, metadata={"engine_id": 3})
    frames = a.serialize(reply, [b"payload"], idents=[b"route"])
    idents, rest = b.feed_identities(frames)
    got = b.deserialize(rest, idents=idents)
    assert got.idents == [b"route"]
    assert got.header == reply.header
    assert got.parent_header == request.header
    assert got.metadata == {"engine_id": 3}
    assert got.content == {"status": "ok"}
    assert [bytes(x) for x in got.buffers] == [b"payload"]
    assert got.msg_type == "execute_reply"
    assert got.header["session"] == a.session
    assert set(got.header) == {"msg_id", "msg_type", "session", "username", "date", "version"}


def test_msg_ids_are_unique_per_session() -> None:
    a, b = session_pair()
    ids = {a.msg_id() for _ in range(1000)} | {b.msg_id() for _ in range(1000)}
    assert len(ids) == 2000


def test_send_and_recv_over_a_socket(sockets: tuple[zmq.Socket[Any], zmq.Socket[Any]]) -> None:
    a, b = session_pair()
    dealer, router = sockets
    a.send(dealer, "ping", {"n": 1}, buffers=[b"z" * 100_000])
    msg = b.recv(router, channel="test")
    assert msg.content == {"n": 1}
    assert len(msg.idents) == 1  # the dealer's routing id
    assert bytes(msg.buffers[0]) == b"z" * 100_000
    b.send(router, "pong", {"n": 2}, parent=msg, ident=msg.idents)
    back = a.recv(dealer)
    assert back.parent_header["msg_id"] == msg.msg_id


def test_track_returns_a_tracker_that_completes(sockets: tuple[zmq.Socket[Any], zmq.Socket[Any]]) -> None:
    a, b = session_pair()
    dealer, router = sockets
    data = bytearray(1 << 20)
    _, tracker = a.send(dealer, "push", {}, buffers=[data], track=True)
    assert tracker is not None
    b.recv(router)
    tracker.wait(10)
    assert tracker.done


def test_wrong_key_is_rejected_and_counted() -> None:
    a, _ = session_pair()
    _, b = session_pair()
    with pytest.raises(MessageRejected) as info:
        b.deserialize(frames_of(a)[1:], channel="mux")
    assert info.value.reason == "bad_signature"
    assert b.rejections[("mux", "bad_signature")] == 1


def test_unsigned_message_is_rejected_by_a_keyed_session() -> None:
    with pytest.warns(InsecureSessionWarning):
        open_session = Session(b"")
    _, b = session_pair()
    with pytest.raises(MessageRejected) as info:
        b.deserialize(frames_of(open_session)[1:])
    assert info.value.reason == "unsigned"
    frames = frames_of(b)
    frames[1] = b""
    with pytest.raises(MessageRejected) as info:
        b.deserialize(frames[1:])
    assert info.value.reason == "unsigned"


def test_empty_key_session_talks_to_itself_and_warns() -> None:
    with pytest.warns(InsecureSessionWarning):
        a = Session(b"")
    with pytest.warns(InsecureSessionWarning):
        b = Session("")
    assert b.deserialize(frames_of(a)[1:]).content == {"a": 1}


def test_replay_is_rejected(pair: tuple[Session, Session]) -> None:
    a, b = pair
    frames = frames_of(a)
    b.deserialize(frames[1:])
    with pytest.raises(MessageRejected) as info:
        b.deserialize(frames[1:])
    assert info.value.reason == "replayed"
    # the same message on another stream (another socket) is not a replay on this one
    b.deserialize(frames[1:], stream="other")


def test_reordering_within_the_window_is_accepted_once() -> None:
    a, b = session_pair()
    batches = [frames_of(a) for _ in range(50)]
    for frames in reversed(batches):
        b.deserialize(frames[1:])
    for frames in batches:
        with pytest.raises(MessageRejected):
            b.deserialize(frames[1:])


def test_stale_message_is_rejected() -> None:
    a, b = session_pair()
    frames = frames_of(a)
    # rewrite the sender clock a day back and re-sign as a key holder would: still stale
    sig = bytearray(frames[1])
    struct.pack_into("<d", sig, 26, struct.unpack_from("<d", sig, 26)[0] - 86400)
    msg = a.msg("x")
    small = [bytes(f) for f in frames[2:6]]
    env = bytes(sig[:38])
    mac = a.signer.new_mac()
    mac.update(env)
    mac.update(struct.pack("<4Q", *map(len, small)))
    for f in small:
        mac.update(f)
    digests = bytes(sig[70:])
    mac.update(digests)
    frames[1] = env + mac.digest() + digests
    del msg
    with pytest.raises(MessageRejected) as info:
        b.deserialize(frames[1:])
    assert info.value.reason == "stale"


def test_incompatible_protocol_major_is_refused_with_its_header() -> None:
    a, b = session_pair()
    msg = a.msg("registration_request")
    msg.header["version"] = "2.0"
    with pytest.raises(ProtocolVersionError) as info:
        b.deserialize(a.serialize(msg)[1:], channel="registration")
    assert info.value.reason == "incompatible_version"
    assert info.value.header is not None
    assert info.value.header["msg_type"] == "registration_request"
    assert "2.0" in str(info.value)
    assert b.rejections[("registration", "incompatible_version")] == 1


def test_malformed_frames_are_rejected() -> None:
    a, b = session_pair()
    with pytest.raises(MessageRejected) as info:
        b.deserialize([b"junk"])
    assert info.value.reason == "malformed"
    with pytest.raises(MessageRejected) as info:
        b.feed_identities([b"a", b"b"])
    assert info.value.reason == "malformed"
    msg = a.msg("x")
    msg.content = []  # type: ignore[assignment]
    with pytest.raises(MessageRejected) as info:
        b.deserialize(a.serialize(msg)[1:])
    assert info.value.reason == "malformed"


def test_oversized_json_frame_is_rejected_before_it_is_parsed() -> None:
    a, _ = session_pair(key=b"k" * 32)
    b = Session(b"k" * 32, max_frame_size=1000)
    frames = a.serialize(a.msg("x", {"blob": "y" * 5000}))
    with pytest.raises(MessageRejected) as info:
        b.deserialize(frames[1:])
    assert info.value.reason == "oversized"


def test_tampered_buffer_is_rejected_unless_a_relay_skips_buffers() -> None:
    a, b = session_pair()
    frames = frames_of(a)
    frames[-1] = b"Y" + frames[-1][1:]
    relay = Session(a.key)
    raw = relay.deserialize_raw(frames[1:])  # a relay authenticates without hashing buffers
    assert raw.msg_type == "apply_request"
    with pytest.raises(MessageRejected) as info:
        b.deserialize(frames[1:])
    assert info.value.reason == "tampered_buffer"


def test_forward_resigns_without_touching_payload(sockets: tuple[zmq.Socket[Any], zmq.Socket[Any]]) -> None:
    key = b"s" * 32
    client, relay, engine = Session(key), Session(key), Session(key)
    frames = client.serialize(client.msg("apply_request", {"f": 1}), [b"A" * 200_000])
    raw = relay.deserialize_raw(frames[1:], idents=[b"client"])
    dealer, router = sockets
    # the relay forwards twice (a retry): the engine sees two fresh envelopes, no replay
    for _ in range(2):
        relay.forward(router, raw, idents=[dealer_ident(dealer, router)])
        got = engine.recv(dealer)
        assert got.header == raw.header
        assert bytes(got.buffers[0]) == b"A" * 200_000
    # a byte-for-byte replay of what the relay sent is caught
    relay_frames = relay.serialize(relay.msg("x"))
    engine.deserialize(relay_frames[1:], stream="s")
    with pytest.raises(MessageRejected):
        engine.deserialize(relay_frames[1:], stream="s")


def dealer_ident(dealer: zmq.Socket[Any], router: zmq.Socket[Any]) -> bytes:
    dealer.send_multipart([b"hello"])
    ident, _ = router.recv_multipart()
    return bytes(ident)


def test_rejections_are_logged_once_per_second_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    a, _ = session_pair()
    _, b = session_pair()
    caplog.set_level(logging.WARNING, logger="corral.wire.session")
    for _ in range(200):
        with pytest.raises(MessageRejected):
            b.deserialize(frames_of(a)[1:], channel="task")
    assert b.rejections[("task", "bad_signature")] == 200
    records = [r for r in caplog.records if r.name == "corral.wire.session"]
    assert len(records) == 1
    assert records[0].exc_info is None
    assert "task" in records[0].getMessage()


def test_json_parts_refuse_unencodable_values() -> None:
    a, _ = session_pair()
    with pytest.raises(TypeError, match="cannot go in a JSON message frame"):
        a.serialize(a.msg("x", {"obj": object()}))


def test_str_hex_key_and_bad_arguments() -> None:
    s = Session("ab" * 32)
    assert s.key == bytes.fromhex("ab" * 32)
    with pytest.raises(ValueError, match="hex"):
        Session("not hex")
    with pytest.raises(ValueError, match="unknown signature scheme"):
        Session(b"k", scheme="md5")
    with pytest.raises(ValueError, match="32 hex digits"):
        Session(b"k", session="abc")


def test_header_is_json_with_the_protocol_version() -> None:
    a, _ = session_pair()
    frames = a.serialize(a.msg("x"))
    assert frames[0] == DELIM
    header = json.loads(bytes(frames[2]))
    assert header["version"] == "1.0"


def test_nan_and_arrays_in_json_parts_get_clear_errors() -> None:
    a, _ = session_pair()
    with pytest.raises(TypeError, match=r"not JSON compliant.*strings, or in a buffer"):
        a.serialize(a.msg("x", {"v": float("nan")}))
    np = pytest.importorskip("numpy")
    with pytest.raises(TypeError, match="send it as a buffer"):
        a.serialize(a.msg("x", {"v": np.arange(3)}))
    assert b'"v":3' in a.serialize(a.msg("x", {"v": np.int64(3)}))[5]


def test_empty_key_session_reports_scheme_none_and_track_without_buffers() -> None:
    with pytest.warns(InsecureSessionWarning):
        s = Session(b"")
    assert s.scheme == "none"
    with socket_pair() as (dealer, _router):
        _, tracker = s.send(dealer, "x", {}, track=True)
        assert tracker is not None
        assert tracker.done


def test_hostile_error_content_unwraps_without_crashing() -> None:
    from corral.wire import unwrap_exception

    err = unwrap_exception({"ename": "E", "evalue": "v", "engine_info": ["not", "a", "dict"], "traceback": [1, 2]})
    assert err.engine_info == {}
    assert err.traceback == "12"


def test_gmac_tags_buffers_too_large_for_one_aesgcm_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # AESGCM takes at most 2**31 - 1 bytes per call; larger buffers are tagged in parts, with
    # the same tag as one call would give. A small limit exercises that path cheaply.
    from corral.wire import signing

    signer = signing.make_signer("blake3-gmac-v1", b"k" * 32)
    data = bytes(range(256)) * 41 + b"tail"  # not a whole number of parts or AES blocks
    whole = signer.digest(data)
    monkeypatch.setattr(signing, "_GMAC_ONE_CALL_MAX", 100)
    assert signer.verify(data, whole)
    parted = signer.digest(data)
    monkeypatch.undo()
    assert signer.verify(data, parted)
    tampered = bytearray(data)
    tampered[-1] ^= 1
    monkeypatch.setattr(signing, "_GMAC_ONE_CALL_MAX", 100)
    assert not signer.verify(bytes(tampered), whole)


def test_buffers_over_the_frame_size_travel_split_and_arrive_whole(
    sockets: tuple[zmq.Socket[Any], zmq.Socket[Any]],
) -> None:
    np = pytest.importorskip("numpy")
    a = Session(b"k" * 32, buffer_frame_size=1000)
    b = Session(b"k" * 32, buffer_frame_size=1000)
    relay = Session(b"k" * 32)
    arr = np.arange(700, dtype=np.float64)  # 5,600 bytes: six frames
    frames = a.serialize(a.msg("apply_request"), [b"small", arr, b"z" * 1000, b"q" * 1001])
    sizes = [memoryview(f).nbytes for f in frames[6:]]
    assert max(sizes) <= 1000
    assert len(sizes) == 1 + 6 + 1 + 2
    # a relay routes and forwards the frames untouched; the receiver gets the four buffers back
    tx, rx = sockets
    raw = relay.deserialize_raw(frames[1:], stream=1)
    relay.forward(tx, raw)
    msg = b.recv(rx)
    assert [buf.nbytes for buf in msg.buffers] == [5, 5600, 1000, 1001]
    assert np.array_equal(np.frombuffer(msg.buffers[1], dtype=np.float64), arr)
    assert bytes(msg.buffers[3]) == b"q" * 1001
    # a changed piece is a tampered buffer; a lie about the split is malformed
    bad = [bytes(memoryview(f)) for f in frames[1:]]
    bad[7] = b"X" + bad[7][1:]
    with pytest.raises(MessageRejected) as err:
        Session(b"k" * 32).deserialize(bad, stream=2)
    assert err.value.reason == "tampered_buffer"
    with pytest.raises(MessageRejected) as err:
        Session(b"k" * 32).deserialize([bytes(memoryview(f)) for f in frames[1:-1]], stream=3)
    assert err.value.reason == "malformed"
    with pytest.raises(ValueError, match="buffer_frame_size"):
        Session(b"k" * 32, buffer_frame_size=0)
