"""Serialization: round trips, functions by value, namespaces, buffers, errors."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.wire import Reference, SerializationError, Serializer, interactive, pack_apply_message, unpack_apply_message
from corral.wire.serialize import get_serializer

pytestmark = pytest.mark.timeout(60)


def round_trip(obj: Any, ser: Serializer | None = None, namespace: dict[str, Any] | None = None) -> Any:
    ser = ser or Serializer()
    frames = ser.dumps(obj)
    # what a receiver has: read-only views of the received frames
    return ser.loads([memoryview(bytes(f)).toreadonly() for f in frames], namespace)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(max_size=300_000),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=10), children, max_size=5)
        | st.tuples(children, children)
        | st.frozensets(st.integers(), max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(obj=json_like)
def test_nested_objects_round_trip(obj: Any) -> None:
    assert round_trip(obj) == obj


@settings(max_examples=50, deadline=None)
@given(data=st.binary(min_size=0, max_size=200_000))
def test_memoryviews_and_bytearrays_round_trip(data: bytes) -> None:
    view = round_trip(memoryview(data))
    assert isinstance(view, memoryview)
    assert view.tobytes() == data
    assert round_trip(bytearray(data)) == bytearray(data)


def test_large_buffers_travel_out_of_band() -> None:
    ser = Serializer()
    big = b"x" * 1_000_000
    frames = ser.dumps([big, memoryview(bytearray(2_000_000)), b"small"])
    assert len(frames) == 3  # pickle + two out-of-band buffers; "small" stays inline
    assert frames[1].obj is big or bytes(frames[1]) == big
    assert len(bytes(frames[0])) < 1000


def test_memoryview_receive_is_zero_copy() -> None:
    ser = Serializer()
    frames = ser.dumps(memoryview(bytearray(b"q" * 200_000)))
    received = memoryview(bytes(frames[1])).toreadonly()
    view = ser.loads([frames[0], received])
    assert view.readonly
    assert view.obj is received.obj


def test_function_from_main_runs_in_the_given_namespace() -> None:
    code = "def f(x):\n    return x + offset\n"
    main: dict[str, Any] = {"__name__": "__main__"}
    exec(code, main)
    f = main["f"]
    assert f.__module__ == "__main__"
    engine_ns = {"offset": 100}
    g = round_trip(f, namespace=engine_ns)
    assert g(1) == 101
    assert g.__globals__ is engine_ns


def test_closures_and_lambdas_are_sent_by_value() -> None:
    def outer(a: int) -> Any:
        def inner(b: int) -> int:
            return a * b

        return inner

    assert round_trip(outer(3))(4) == 12
    assert round_trip(lambda x: x * 2)(21) == 42


def test_interactive_decorator_uses_engine_globals() -> None:
    @interactive
    def get_value() -> Any:
        return value  # type: ignore[name-defined]  # noqa: F821

    assert round_trip(get_value, namespace={"value": "engine"})() == "engine"


def test_reference_resolves_on_unpack() -> None:
    frames = pack_apply_message(len, (Reference("data"),))
    f, args, kwargs = unpack_apply_message([memoryview(bytes(x)) for x in frames], {"data": [1, 2, 3]})
    assert f(*args, **kwargs) == 3
    with pytest.raises(SerializationError, match="not defined in the engine namespace"):
        unpack_apply_message([memoryview(bytes(x)) for x in frames], {})
    with pytest.raises(TypeError):
        Reference("not a name")


def test_importable_functions_go_by_reference() -> None:
    frames = Serializer().dumps(pickle.dumps)
    assert len(bytes(frames[0])) < 100


def test_apply_message_round_trip_with_kwargs_and_large_bytes() -> None:
    payload = b"p" * 500_000
    frames = pack_apply_message(sorted, ([3, 1, 2],), {"reverse": True})
    f, args, kwargs = unpack_apply_message(frames)
    assert f(*args, **kwargs) == [3, 2, 1]
    frames = pack_apply_message(len, (payload,))
    assert len(frames) == 2
    f, args, _ = unpack_apply_message([memoryview(bytes(x)) for x in frames])
    assert f(*args) == 500_000
    with pytest.raises(TypeError, match="callable"):
        pack_apply_message(5)  # type: ignore[arg-type]


def test_unserializable_object_names_its_type() -> None:
    with pytest.raises(SerializationError, match=r"lock.*use_dill|_thread\.lock") as info:
        Serializer().dumps({"x": threading.Lock()})
    assert "dict" in str(info.value)


def test_truncated_payload_is_a_serialization_error() -> None:
    frames = Serializer().dumps({"a": list(range(100))})
    with pytest.raises(SerializationError, match="cannot deserialize"):
        Serializer().loads([bytes(frames[0])[:20]])
    with pytest.raises(SerializationError):
        Serializer().loads([])


def test_unknown_serializer_name() -> None:
    with pytest.raises(SerializationError, match="unknown serializer"):
        get_serializer("marshal")
    assert get_serializer("pickle").name == "pickle"


def test_dill_is_chosen_per_serializer() -> None:
    dill = pytest.importorskip("dill")

    class Local:
        def __init__(self) -> None:
            self.v = 7

    with pytest.raises(SerializationError):
        Serializer().dumps(Local())
    ser = Serializer(use_dill=True)
    assert ser.name == "dill"
    assert round_trip(Local(), ser).v == 7
    # the plain serializer is unaffected: no global switch
    assert Serializer().name == "pickle"
    assert dill is not None


def test_dill_missing_gives_a_clear_error() -> None:
    try:
        import dill  # noqa: F401
    except ImportError:
        with pytest.raises(SerializationError, match="pip install dill"):
            Serializer(use_dill=True)
    else:
        pytest.skip("dill is installed in this environment (the `wire` tox env runs this without it)")


def test_memoryview_formats_that_cannot_be_rebuilt_are_refused_when_sent() -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(SerializationError, match="cannot be rebuilt"):
        Serializer().dumps(memoryview(np.arange(4, dtype=">i4")))


def test_large_bytearray_is_sent_out_of_band() -> None:
    data = bytearray(b"z" * 200_000)
    frames = Serializer().dumps(data)
    assert len(frames) == 2
    data[0] = ord("Q")  # the frame is the bytearray's own memory, not a copy
    assert bytes(memoryview(frames[1])[:1]) == b"Q"
    back = round_trip(data)
    assert back == data
    assert type(back) is bytearray


def test_an_unsendable_apply_argument_is_named_by_position_or_keyword() -> None:
    def fit(data: object, lock: object = None) -> None:
        pass

    with pytest.raises(SerializationError, match=r"^cannot send argument 1 of .*fit\(\): .*_thread\.lock"):
        pack_apply_message(fit, (1, threading.Lock()), {})
    with pytest.raises(SerializationError, match=r"^cannot send keyword argument 'lock' of .*fit\(\)"):
        pack_apply_message(fit, (1,), {"lock": threading.Lock()})
