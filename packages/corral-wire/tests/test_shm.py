"""Large buffers through shared memory: the segment replaces the frame, the signature still holds.

Everything runs against the real ``/dev/shm`` and real ZeroMQ sockets where a relay is involved.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
import warnings
from typing import Any

import pytest
import zmq

from corral.wire import MessageRejected, Session
from corral.wire import shm as shm_module
from corral.wire.shm import SHM_DIR, SharedMemory, domain, segment_tag, shm_enabled, sweep_segments
from corral.wire.testing import session_pair, socket_pair

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(domain() is None, reason="needs a writable /dev/shm and Linux /proc"),
]

MB = 1 << 20


def segments(session: Session) -> list[str]:
    """This cluster's segments now in /dev/shm that are in flight or in use (not free)."""
    prefix = f"corral-{segment_tag(session.key)}-"
    return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix) and "-free-" not in n)


def free_segments(session: Session) -> list[str]:
    """This cluster's free segments (the pool) now in /dev/shm."""
    prefix = f"corral-{segment_tag(session.key)}-"
    return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix) and "-free-" in n)


@pytest.fixture
def pair() -> tuple[Session, Session]:
    """A client-like sender routing to ``b"engine"`` in this process, and a receiver."""
    a, b = session_pair()
    assert a.enable_shm()
    assert b.enable_shm()
    assert a.shm is not None
    assert a.add_shm_route(b"engine", a.shm.address)
    yield a, b
    sweep_segments(a.key, everything=True)


def send(a: Session, buffers: list[Any], ident: bytes = b"engine") -> tuple[Any, list[Any]]:
    msg = a.msg("apply_request", {"x": 1})
    return msg, a.serialize(msg, buffers, idents=[ident])


def test_a_large_buffer_arrives_as_a_read_only_map_of_a_segment(pair: tuple[Session, Session]) -> None:
    a, b = pair
    data = os.urandom(3 * MB)
    msg, frames = send(a, [b"small", data])
    # on the wire: the small buffer as a frame, the large one as an empty frame and a reference
    assert bytes(frames[-2]) == b"small"
    assert bytes(frames[-1]) == b""
    assert sum(len(memoryview(f)) for f in frames) < 10_000
    assert len(segments(a)) == 1
    idents, rest = b.feed_identities(frames)
    got = b.deserialize(rest, idents=idents)
    assert bytes(got.buffers[0]) == b"small"
    big = got.buffers[1]
    assert big.readonly
    assert big == data
    assert type(big.obj).__name__ == "Segment"
    assert "shm" not in got.header
    assert got.header["shm_host"] == a.shm.address  # type: ignore[union-attr]
    assert got.header["msg_id"] == msg.msg_id


def test_a_tampered_segment_is_rejected_as_tampered_buffer(pair: tuple[Session, Session]) -> None:
    a, b = pair
    _, frames = send(a, [os.urandom(2 * MB)])
    (name,) = segments(a)
    with open(os.path.join(SHM_DIR, name), "r+b") as f:
        f.seek(MB)
        byte = f.read(1)
        f.seek(MB)
        f.write(bytes([byte[0] ^ 1]))
    _, rest = b.feed_identities(frames)
    with pytest.raises(MessageRejected) as err:
        b.deserialize(rest)
    assert err.value.reason == "tampered_buffer"
    assert b.rejections[("default", "tampered_buffer")] == 1
    del err  # its traceback holds the mapped buffers
    gc.collect()
    assert segments(a) == []  # nothing in use: the refused segment went back to the pool


def test_a_released_segment_is_reused_by_the_next_send_of_its_size(pair: tuple[Session, Session]) -> None:
    a, b = pair
    assert a.shm is not None
    first = os.urandom(3 * MB)
    got = b.deserialize(b.feed_identities(send(a, [first])[1])[1])
    assert len(segments(a)) == 1  # in use while the receiver holds the buffer
    assert free_segments(a) == []
    del got
    gc.collect()
    assert segments(a) == []
    assert len(free_segments(a)) == 1  # released into the pool
    second = os.urandom(3 * MB - 100)  # a little smaller: the free one fits
    got = b.deserialize(b.feed_identities(send(a, [second])[1])[1])
    assert a.shm.reused == 1
    assert free_segments(a) == []
    assert got.buffers[0] == second  # the reused pages hold the new bytes, and only them
    assert got.buffers[0].nbytes == len(second)
    # a buffer more than twice as small does not take a big free segment
    del got
    gc.collect()
    send(a, [os.urandom(MB)])
    assert a.shm.reused == 1


def test_the_pool_is_bounded_and_idle_free_segments_are_swept(
    pair: tuple[Session, Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    monkeypatch.setattr(shm_module, "POOL_MAX_BYTES", 5 * MB)
    got = [b.deserialize(b.feed_identities(send(a, [os.urandom(2 * MB)])[1])[1]) for _ in range(3)]
    assert len(segments(a)) == 3
    del got
    gc.collect()
    assert segments(a) == []
    assert len(free_segments(a)) == 2  # the third would pass 5 MB: removed instead
    assert sweep_segments(a.key) == 0  # not idle yet
    old = time.time() - shm_module.POOL_IDLE_SECONDS - 1
    for name in free_segments(a):
        os.utime(os.path.join(SHM_DIR, name), (old, old))
    assert sweep_segments(a.key) == 2
    assert free_segments(a) == []


def test_a_swapped_segment_reference_breaks_the_mac(pair: tuple[Session, Session]) -> None:
    a, b = pair
    _, frames = send(a, [os.urandom(2 * MB)])
    _idents, rest = b.feed_identities(frames)
    rest[1] = rest[1].replace(b'"shm":[[0,"corral-', b'"shm":[[0,"corral_')
    with pytest.raises(MessageRejected) as err:
        b.deserialize(rest)
    assert err.value.reason == "bad_signature"
    # nothing unauthenticated is acted on: the segment is still there for its receiver
    assert len(segments(a)) == 1


def test_a_missing_segment_is_a_clear_rejection(pair: tuple[Session, Session]) -> None:
    a, b = pair
    _, frames = send(a, [os.urandom(2 * MB)])
    sweep_segments(a.key, everything=True)
    _, rest = b.feed_identities(frames)
    with pytest.raises(MessageRejected, match="cannot be opened") as err:
        b.deserialize(rest)
    assert err.value.reason == "malformed"


def test_small_buffers_and_unknown_peers_keep_using_frames(pair: tuple[Session, Session]) -> None:
    a, _b = pair
    small = os.urandom(MB - 1)
    _, frames = send(a, [small])
    assert bytes(frames[-1]) == small
    _, frames = send(a, [os.urandom(2 * MB)], ident=b"remote-engine")
    assert len(frames[-1]) == 2 * MB
    assert segments(a) == []
    # a peer of another host (another domain) gets no route
    assert not a.add_shm_route(b"remote-engine", "0123456789abcdef:1")
    assert not a.add_shm_route(b"remote-engine", None)
    assert b"remote-engine" not in a.shm_routes


def test_the_reply_to_a_local_request_comes_back_through_memory_and_iopub_never_does(
    pair: tuple[Session, Session],
) -> None:
    client, engine = pair
    _, frames = send(client, [b"pull"])
    request = engine.deserialize(engine.feed_identities(frames)[1])
    data = os.urandom(2 * MB)
    reply = engine.msg("apply_reply", {"status": "ok"}, parent=request)
    frames = engine.serialize(reply, [data], idents=[b"client"])
    assert bytes(frames[-1]) == b""
    got = client.deserialize(client.feed_identities(frames)[1])
    assert got.buffers[0] == data
    assert "shm" not in got.parent_header  # the request's references do not travel back
    # an iopub message fans out to every client: it never goes through memory
    output = engine.msg("display_data", {}, parent=request)
    frames = engine.serialize(output, [data])
    assert len(frames[-1]) == 2 * MB
    del got
    gc.collect()
    assert segments(client) == []


def test_a_relay_forwards_the_reference_untouched_over_real_sockets(pair: tuple[Session, Session]) -> None:
    client, engine = pair
    relay = Session(client.key)  # the controller's session: shared memory never enabled
    data = os.urandom(4 * MB)
    with socket_pair(zmq.DEALER, zmq.ROUTER) as (c, r1), socket_pair(zmq.DEALER, zmq.ROUTER) as (e, r2):
        e.send_multipart([b"hello"])
        engine_id = r2.recv_multipart()[0]
        msg = client.msg("apply_request", {})
        c.send_multipart(client.serialize(msg, [data], idents=[b"engine"]), copy=False)
        frames = r1.recv_multipart(copy=False)
        raw = relay.route(frames, stream=r1)
        assert [len(f) for f in raw.frames[4:]] == [0]  # no payload bytes reach the relay
        relay.forward(r2, raw, idents=[engine_id])
        assert e.poll(10_000)
        got = engine.recv(e)
    assert got.buffers[0] == data
    del got
    gc.collect()
    assert segments(client) == []


def test_a_segment_for_another_process_is_refused_and_left_alone(pair: tuple[Session, Session]) -> None:
    a, b = pair
    assert a.shm is not None
    a.add_shm_route(b"other", f"{a.shm.domain}:{os.getppid()}")
    _, frames = send(a, [os.urandom(2 * MB)], ident=b"other")
    with pytest.raises(MessageRejected, match="addressed to pid"):
        b.deserialize(b.feed_identities(frames)[1])
    assert len(segments(a)) == 1


def test_sweep_removes_segments_of_dead_receivers_only(pair: tuple[Session, Session]) -> None:
    a, _ = pair
    assert a.shm is not None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=30)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (dead.pid, live.pid):
            a.add_shm_route(b"peer", f"{a.shm.domain}:{pid}")
            send(a, [os.urandom(2 * MB)], ident=b"peer")
        assert len(segments(a)) == 2
        assert sweep_segments(a.key) == 1
        (left,) = segments(a)
        assert f"-{live.pid}-" in left
        live.send_signal(signal.SIGKILL)
        live.wait(timeout=30)
        assert sweep_segments(a.key) == 1
        assert segments(a) == []
    finally:
        live.kill()
        live.wait(timeout=30)


def test_a_full_or_missing_directory_falls_back_to_frames(tmp_path: Any) -> None:
    directory = tmp_path / "shm"
    directory.mkdir()
    shm = SharedMemory(b"k" * 32, directory=str(directory))
    directory.rmdir()
    assert shm.put(os.urandom(2 * MB), os.getpid()) is None


def test_corral_shm_turns_it_off_and_bad_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert shm_enabled({"CORRAL_SHM": "0"}) is False
    assert shm_enabled({}) is True
    with pytest.raises(ValueError, match="CORRAL_SHM='maybe'"):
        shm_enabled({"CORRAL_SHM": "maybe"})
    monkeypatch.setenv("CORRAL_SHM", "off")
    a, _ = session_pair()
    assert a.enable_shm() is False
    assert a.shm is None
    with pytest.raises(ValueError, match="at least 1 byte"):
        a.enable_shm(threshold=0)


def test_a_forked_child_dropping_an_inherited_segment_does_not_free_it(pair: tuple[Session, Session]) -> None:
    a, b = pair
    data = os.urandom(2 * MB)
    got = b.deserialize(b.feed_identities(send(a, [data])[1])[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() in a threaded process
        pid = os.fork()
    if pid == 0:  # the child drops its copy of the buffers and exits through atexit
        try:
            del got
            gc.collect()
        finally:
            os._exit(0 if not free_segments(a) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert free_segments(a) == []  # the parent still uses it: not in the pool
    assert got.buffers[0] == data


def test_a_fifo_or_link_under_a_segment_name_is_refused_without_blocking(pair: tuple[Session, Session]) -> None:
    a, _ = pair
    assert a.shm is not None
    tag = segment_tag(a.key)
    fifo = f"corral-{tag}-{a.shm.domain}-{os.getpid()}-1-{'0' * 16}"
    link = f"corral-{tag}-{a.shm.domain}-{os.getpid()}-1-{'1' * 16}"
    os.mkfifo(os.path.join(SHM_DIR, fifo), 0o600)
    os.symlink("/etc/passwd", os.path.join(SHM_DIR, link))
    try:
        with pytest.raises(shm_module.SegmentError, match="not a regular file"):
            shm_module.take_segment(fifo, 10, tag)
        with pytest.raises(shm_module.SegmentError, match="cannot be opened"):
            shm_module.take_segment(link, 10, tag)
    finally:
        for name in (fifo, link):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(SHM_DIR, name))


def kept(session: Session) -> list[str]:
    """This cluster's kept segments (replies', owned by the hub) now in /dev/shm."""
    prefix = f"corral-{segment_tag(session.key)}-"
    return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix) and "-kept-" in n)


def test_an_engines_reply_goes_in_a_kept_segment_that_no_receiver_pools_or_removes(
    pair: tuple[Session, Session],
) -> None:
    client, engine = pair
    assert engine.shm is not None
    engine.shm.keep_replies = True
    _, frames = send(client, [b"pull"])
    request = engine.deserialize(engine.feed_identities(frames)[1])
    data = os.urandom(2 * MB)
    reply = engine.msg("apply_reply", {"status": "ok"}, parent=request)
    frames = engine.serialize(reply, [data], idents=[b"client"])
    (name,) = kept(client)
    got = client.deserialize(client.feed_identities(frames)[1])
    again = shm_module.take_segment(name, 2 * MB, segment_tag(client.key))  # and maps it again
    assert got.buffers[0] == data
    assert again == data
    del got, again
    gc.collect()
    assert kept(client) == [name], "neither removed nor renamed into the pool by its readers"
    assert free_segments(client) == []
    # a sender of the same size never gets it: it is not in the pool
    assert client.shm is not None
    client.shm.put(os.urandom(2 * MB), os.getpid())
    assert client.shm.reused == 0


def test_the_sweep_keeps_held_kept_segments_and_pools_the_rest_once_nobody_maps_them(
    pair: tuple[Session, Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    assert a.shm is not None
    held = a.shm.put(os.urandom(MB), os.getpid(), kept=True)
    mapped_name = a.shm.put(os.urandom(MB), os.getpid(), kept=True)
    loose = a.shm.put(os.urandom(MB), os.getpid(), kept=True)
    assert held is not None
    assert mapped_name is not None
    assert loose is not None
    assert sweep_segments(a.key) == 0, "without the hub's list, kept segments are left alone"
    assert sweep_segments(a.key, kept={held}) == 0, "young ones wait for their readers"
    data = bytes(shm_module.open_kept(mapped_name, MB, a.shm.tag))
    mapping = shm_module.open_kept(mapped_name, MB, a.shm.tag)  # a reader still using it
    monkeypatch.setattr(shm_module, "KEPT_GRACE_SECONDS", 0.0)
    time.sleep(0.05)
    shm_module.touch_kept(held)
    assert sweep_segments(a.key, kept={held}) == 1, "only the one nobody maps"
    assert kept(a) == sorted([held, mapped_name])
    assert len(free_segments(a)) == 1, "into the pool: its pages are reused by the next sender"
    assert bytes(mapping) == data
    mapping.close()
    assert sweep_segments(a.key, kept={held}) == 1
    assert kept(a) == [held]
    assert len(free_segments(a)) == 2
    before = a.shm.reused
    a.shm.put(os.urandom(MB), os.getpid())
    assert a.shm.reused == before + 1
    with pytest.raises(shm_module.SegmentError, match="cannot be opened"):
        shm_module.open_kept(loose, MB, a.shm.tag)


def test_a_kept_segment_given_as_a_buffer_travels_as_the_same_reference(pair: tuple[Session, Session]) -> None:
    a, b = pair
    assert a.shm is not None
    data = os.urandom(2 * MB)
    name = a.shm.put(data, os.getpid(), kept=True)
    assert name is not None
    mapped = shm_module.open_kept(name, 2 * MB, a.shm.tag)
    hub = Session(a.key)
    assert hub.enable_shm()
    request = b.msg("result_request", {})
    parent = {**request.header, "shm_host": b.shm.address if b.shm else ""}
    reply = hub.msg("result_reply", {"status": "ok"}, parent=parent)
    frames = hub.serialize(reply, [mapped], idents=[b"client"])
    assert bytes(frames[-1]) == b""
    got = b.deserialize(b.feed_identities(frames)[1])
    assert got.buffers[0] == data
    assert kept(a) == [name], "no new segment was written"
    # to a receiver in another domain, the same buffer goes as a frame
    remote = {**request.header, "shm_host": "0123456789abcdef:1"}
    frames = hub.serialize(hub.msg("result_reply", {"status": "ok"}, parent=remote), [mapped], idents=[b"c"])
    assert bytes(frames[-1]) == data
    del got
    with pytest.raises(shm_module.SegmentError, match="not a kept segment"):
        shm_module.open_kept(name.replace("-kept-", "-free-"), 2 * MB, a.shm.tag)
