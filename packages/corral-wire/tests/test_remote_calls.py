"""Helpers a client sends to engines by reference: they round-trip and run on the other side."""

from __future__ import annotations

import pickle

import pytest

from corral.wire import Serializer, pack_apply_message, unpack_apply_message
from corral.wire.remote_calls import map_chunk

pytestmark = pytest.mark.timeout(30)


def test_map_chunk_maps_over_several_chunks_in_order() -> None:
    assert map_chunk(pow, [1, 2, 3], [2, 2, 2]) == [1, 4, 9]
    assert map_chunk(str, range(3)) == ["0", "1", "2"]
    assert map_chunk(abs, []) == []


def test_map_chunk_lets_errors_through() -> None:
    with pytest.raises(ZeroDivisionError):
        map_chunk(lambda x: 1 / x, [1, 0])


def test_map_chunk_travels_by_reference_and_runs_after_unpacking() -> None:
    frames = pack_apply_message(map_chunk, (lambda x: x * 10, [1, 2]), {}, Serializer())
    # the helper itself is named, not marshalled: any engine with corral.wire can load it
    assert b"corral.wire.remote_calls" in bytes(frames[0])
    f, args, kwargs = unpack_apply_message([memoryview(b) for b in frames], {})
    assert f is map_chunk
    assert f(*args, **kwargs) == [10, 20]
    assert pickle.loads(pickle.dumps(map_chunk)) is map_chunk
