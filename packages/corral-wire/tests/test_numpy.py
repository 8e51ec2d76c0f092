"""numpy arrays: round trips of any dtype, shape and memory order; zero-copy, read-only receive."""

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

np = pytest.importorskip("numpy")
hnp = pytest.importorskip("hypothesis.extra.numpy")

from corral.wire import InsecureSessionWarning, Serializer, Session, pack_apply_message, unpack_apply_message  # noqa: E402
from corral.wire.testing import session_pair, socket_pair  # noqa: E402

pytestmark = pytest.mark.timeout(120)

dtypes = (
    hnp.scalar_dtypes()
    | hnp.byte_string_dtypes()
    | hnp.unicode_string_dtypes()
    | hnp.nested_dtypes(max_leaves=3)
    | st.just(np.dtype("complex128"))
)


def transmit(obj: Any, threshold: int = 1024, frames_out: list[Any] | None = None) -> Any:
    """Serialize, sign, verify and deserialize, as one client/engine hop does."""
    ser = Serializer(inline_threshold=threshold)
    a, b = session_pair(key=b"n" * 32)
    frames = [bytes(f) for f in a.serialize(a.msg("push", {"serializer": ser.name}), ser.dumps(obj))]
    msg = b.deserialize(frames[1:])
    if frames_out is not None:
        frames_out.extend(msg.buffers[1:])
    return ser.loads(msg.buffers)


def inside_a_frame(x: Any, frames: list[Any]) -> bool:
    start = x.__array_interface__["data"][0]
    for f in frames:
        base = np.frombuffer(f, dtype=np.uint8).ctypes.data if len(f) else -1
        if base <= start < base + len(f):
            return True
    return False


def same(x: Any, y: Any) -> bool:
    """Equal to what plain pickle 5 gives (numpy's pickle drops the byte order of datetimes)."""
    exact = x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    ref = pickle.loads(pickle.dumps(y, protocol=5))
    return bool(exact or (x.dtype == ref.dtype and x.shape == ref.shape and x.tobytes() == ref.tobytes()))


@settings(max_examples=150, deadline=None)
@given(
    arr=hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)),
    order=st.sampled_from(["C", "F", "strided", "transposed"]),
)
def test_any_array_round_trips(arr: Any, order: str) -> None:
    if order == "F":
        arr = np.asfortranarray(arr)
    elif order == "strided" and arr.ndim:
        arr = arr[::2]
    elif order == "transposed":
        arr = arr.T
    frames: list[Any] = []
    got = transmit({"a": arr, "nested": [arr, (arr,)]}, frames_out=frames)
    for x in (got["a"], got["nested"][0], got["nested"][1][0]):
        assert same(x, arr)
        if x.nbytes and inside_a_frame(x, frames):
            assert not x.flags.writeable  # a view of the received frame is read-only
        contiguous = arr.flags.c_contiguous or arr.flags.f_contiguous
        if contiguous and arr.nbytes >= 1024 and not arr.dtype.hasobject:
            assert inside_a_frame(x, frames)  # plain contiguous arrays travel out of band: zero copy


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.one_of(st.integers(), st.text(), st.none()), max_size=20))
def test_object_arrays_round_trip(values: list[Any]) -> None:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    got = transmit(arr)
    assert got.dtype == object
    assert list(got) == values


def test_zero_size_and_scalar_arrays() -> None:
    for arr in (np.zeros((0, 3)), np.zeros(0, dtype="U5"), np.float32(3.5), np.array(7)):
        got = transmit(arr)
        assert np.array_equal(got, arr)
        assert got.dtype == arr.dtype


def test_received_array_is_the_received_frame_buffer_and_read_only() -> None:
    """Zero copy: after the socket, the array's memory is the ZeroMQ frame's memory."""
    a, b = session_pair()
    arr = np.random.default_rng(0).random((1000, 1000))  # 8 MB
    with socket_pair() as (dealer, router):
        a.send(dealer, "apply_request", {}, buffers=pack_apply_message(np.sum, (arr,)))
        raw = router.recv_multipart(copy=False)
        idents, rest = b.feed_identities(raw)
        msg = b.deserialize(rest, idents=idents)
        _, args, _ = unpack_apply_message(msg.buffers)
        got = args[0]
        frame_address = np.frombuffer(raw[-1].buffer, dtype=np.uint8).ctypes.data
        assert got.ctypes.data == frame_address
        assert not got.flags.writeable
        assert not got.flags.owndata
        assert np.array_equal(got, arr)
        with pytest.raises(ValueError, match="read-only"):
            got[0, 0] = 1.0


def test_sending_does_not_copy_the_array() -> None:
    arr = np.arange(1_000_000, dtype=np.float64)
    frames = Serializer().dumps(arr)
    assert np.frombuffer(frames[1], dtype=np.uint8).ctypes.data == arr.ctypes.data


def test_tracked_send_tells_when_the_array_may_be_changed() -> None:
    a, b = session_pair()
    arr = np.ones(2_000_000)
    with socket_pair() as (dealer, router):
        _, tracker = a.send(dealer, "push", {}, buffers=Serializer().dumps(arr), track=True)
        assert tracker is not None
        b.recv(router)
        tracker.wait(10)
        assert tracker.done


def test_unsigned_session_still_round_trips_arrays() -> None:
    with pytest.warns(InsecureSessionWarning):
        s = Session(b"")
    arr = np.arange(100_000)
    frames = [bytes(f) for f in s.serialize(s.msg("x"), Serializer().dumps(arr))]
    with pytest.warns(InsecureSessionWarning):
        r = Session(b"")
    assert np.array_equal(Serializer().loads(r.deserialize(frames[1:]).buffers), arr)
    assert os.environ is not None
