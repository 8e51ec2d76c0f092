"""Turn Python objects into frames and back: pickle protocol 5 with out-of-band buffers.

An object becomes one pickle frame plus one frame per large buffer it holds (numpy arrays,
bytes, bytearrays, memoryviews, anything exporting the buffer protocol through pickle 5).
Sending those frames with ``copy=False`` copies nothing; on receipt numpy arrays and
memoryviews are read-only views of the received frames, so a received array's memory *is*
the frame's memory. ``bytes`` and ``bytearray`` own their memory, so they arrive as a copy. Buffers
smaller than ``inline_threshold`` go inside the pickle, where copying them is cheaper than a
frame of their own.

Which pickler runs is chosen per :class:`Serializer` (``Serializer(use_dill=True)``), never by a
process-wide switch; the receiver learns it from :attr:`Serializer.name`, which senders put in
their message content.
"""

from __future__ import annotations

import importlib
import io
import pickle
import types
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, Final

from corral.wire.canning import reduce_function, use_namespace
from corral.wire.errors import SerializationError

__all__ = [
    "DEFAULT_INLINE_THRESHOLD",
    "SERIALIZERS",
    "Serializer",
    "get_serializer",
    "pack_apply_message",
    "unpack_apply_message",
]

#: Buffers smaller than this many bytes travel inside the pickle frame.
DEFAULT_INLINE_THRESHOLD: Final = 64 * 1024

#: Names a receiver accepts in a message's ``serializer`` field.
SERIALIZERS: Final = ("pickle", "dill")


class _OOBBytes:
    """Carry a large ``bytes`` or ``bytearray`` out of band (pickle sends them in-band, and
    its C fast path never asks ``reducer_override`` about them)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # received as a copy: bytes and bytearray own their memory
        return (type(self.data), (pickle.PickleBuffer(self.data),))


# formats memoryview.cast accepts (native, single character)
_CASTABLE = frozenset("bBhHiIlLqQnNfd?cPe")


def _rebuild_memoryview(buf: Any, fmt: str, shape: tuple[int, ...]) -> memoryview:
    view = memoryview(buf).cast("B")
    if fmt == "B" and len(shape) == 1:
        return view
    rebuilt: memoryview = view.cast(fmt, shape)  # type: ignore[call-overload]  # fmt is known only at run time
    return rebuilt


def _rebuild_ndarray(buf: Any, dtype: Any, shape: tuple[int, ...], order: str) -> Any:
    import numpy as np

    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)  # type: ignore[call-overload]


def _reduce_ndarray(arr: Any, threshold: int) -> Any:
    """Send any contiguous, non-object array as one raw buffer (numpy's own pickle sends
    datetime and structured arrays in-band, i.e. copied)."""
    dtype = arr.dtype
    if dtype.hasobject or dtype.itemsize == 0 or arr.nbytes < threshold:
        return NotImplemented
    if arr.flags.c_contiguous:
        order = "C"
    elif arr.flags.f_contiguous:
        order = "F"
    else:
        return NotImplemented
    # a flat byte view (no copy): the buffer protocol cannot describe datetime dtypes
    raw = arr.reshape(-1, order=order).view("u1")
    return (_rebuild_ndarray, (pickle.PickleBuffer(raw), dtype, arr.shape, order))


def _reduce_special(obj: Any, threshold: int) -> Any:
    kind = type(obj)
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        return _reduce_ndarray(obj, threshold)
    if kind is types.FunctionType:
        reduced = reduce_function(obj)
        return NotImplemented if reduced is None else reduced
    if kind is memoryview:
        if obj.format not in _CASTABLE and not (obj.format == "B" and obj.ndim == 1):
            raise SerializationError(
                f"a memoryview of format {obj.format!r} cannot be rebuilt on the receiving side "
                "(memoryview.cast takes native single-character formats only); send a numpy array "
                "or .cast('B') it first"
            )
        if obj.nbytes >= threshold and obj.c_contiguous:
            return (_rebuild_memoryview, (pickle.PickleBuffer(obj), obj.format, obj.shape))
        return (_rebuild_memoryview, (obj.tobytes(), obj.format, obj.shape))

    if kind is types.ModuleType:
        return (importlib.import_module, (obj.__name__,))
    return NotImplemented


def _wrap_large_bytes(obj: Any, threshold: int) -> Any:
    """Mark large bytes at the top level and one container down for out-of-band sending."""

    def one(x: Any) -> Any:
        return _OOBBytes(x) if type(x) in (bytes, bytearray) and len(x) >= threshold else x

    kind = type(obj)
    if kind is bytes or kind is bytearray:
        return one(obj)
    if kind is tuple:
        return tuple(one(x) for x in obj)
    if kind is list:
        return [one(x) for x in obj]
    if kind is dict:
        return {k: one(v) for k, v in obj.items()}
    return obj


def _make_pickler_class(base: type[Any]) -> type[Any]:
    class _Pickler(base):  # type: ignore[misc, valid-type]
        threshold = DEFAULT_INLINE_THRESHOLD

        def reducer_override(self, obj: Any) -> Any:
            return _reduce_special(obj, self.threshold)

    return _Pickler


_PicklePickler = _make_pickler_class(pickle.Pickler)


class Serializer:
    """Serialize objects to frames and back, with pickle or dill.

    Parameters
    ----------
    use_dill
        Pickle with dill (classes, generators and other objects plain pickle refuses).
        Functions defined interactively go by value either way. dill must be installed
        where objects are serialized and where they are deserialized.
    inline_threshold
        Buffers smaller than this travel inside the pickle frame instead of their own frame.

    Raises
    ------
    SerializationError
        If ``use_dill`` is set and dill is not installed.

    Examples
    --------
    >>> s = Serializer()
    >>> frames = s.dumps({"x": [1, 2, 3]})
    >>> s.loads([memoryview(f) for f in frames])
    {'x': [1, 2, 3]}
    """

    def __init__(self, *, use_dill: bool = False, inline_threshold: int = DEFAULT_INLINE_THRESHOLD) -> None:
        self.use_dill = use_dill
        self.inline_threshold = inline_threshold
        self._pickler: type[Any]
        if use_dill:
            dill = _import_dill()
            self._pickler = _make_pickler_class(dill.Pickler)
        else:
            self._pickler = _PicklePickler

    @property
    def name(self) -> str:
        """``"dill"`` or ``"pickle"``: what a receiver needs to unpack these frames."""
        return "dill" if self.use_dill else "pickle"

    def __repr__(self) -> str:
        return f"Serializer(use_dill={self.use_dill}, inline_threshold={self.inline_threshold})"

    def dumps(self, obj: Any) -> list[Any]:
        """Serialize ``obj`` into ``[pickle_frame, *buffers]`` without copying large buffers.

        The returned buffers reference ``obj``'s memory: do not modify it until sent (or send
        with ``track=True`` and wait on the tracker).

        Raises
        ------
        SerializationError
            If ``obj`` (or something inside it) cannot be serialized; the message names the
            type and the reason.
        """
        buffers: list[Any] = []
        threshold = self.inline_threshold

        def callback(buf: pickle.PickleBuffer) -> bool:
            try:
                raw = buf.raw()
            except BufferError:
                return True  # not contiguous: serialize in-band
            if raw.nbytes < threshold:
                return True
            buffers.append(raw)
            return False

        out = io.BytesIO()
        pickler = self._pickler(out, protocol=5, buffer_callback=callback)
        pickler.threshold = threshold
        try:
            pickler.dump(_wrap_large_bytes(obj, threshold))
        except SerializationError:
            raise
        except RecursionError:
            raise SerializationError(
                f"cannot serialize {type(obj).__name__}: it nests too deeply or refers to itself "
                "through a function sent by value"
            ) from None
        except Exception as err:
            hint = "" if self.use_dill else "; view.use_dill() sends more kinds of objects"
            raise SerializationError(f"cannot serialize {_describe(obj)}: {err}{hint}") from err
        return [out.getbuffer(), *buffers]

    def loads(self, frames: Sequence[Any], namespace: MutableMapping[str, Any] | None = None) -> Any:
        """Rebuild an object from ``[pickle_frame, *buffers]``; buffers are used in place.

        Parameters
        ----------
        frames
            As made by :meth:`dumps`; buffer frames may be read-only views of received frames,
            and arrays built on them share their memory (and are read-only).
        namespace
            Interactive functions and :class:`~corral.wire.canning.Reference` objects resolve
            against this namespace (an engine's), else against ``__main__``.

        Raises
        ------
        SerializationError
            If the frames cannot be unpickled (truncated data, a missing module, a class
            unknown on this side).
        """
        if not frames:
            raise SerializationError("no frames to deserialize")
        loads: Callable[..., Any] = _import_dill().loads if self.use_dill else pickle.loads
        try:
            if namespace is not None:
                with use_namespace(namespace):
                    return loads(frames[0], buffers=frames[1:])
            return loads(frames[0], buffers=frames[1:])
        except SerializationError:
            raise
        except Exception as err:
            raise SerializationError(f"cannot deserialize the payload: {type(err).__name__}: {err}") from err


def _describe(obj: Any) -> str:
    kind = type(obj)
    name = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__
    return f"an object of type {name}"


def _import_dill() -> Any:
    try:
        import dill  # type: ignore[import-untyped]
    except ImportError:
        raise SerializationError(
            "dill is not installed here, and this payload needs it: pip install dill "
            "(on the client and on every engine)"
        ) from None
    return dill


_SERIALIZERS: dict[str, Serializer] = {}


def get_serializer(name: str) -> Serializer:
    """Return the shared :class:`Serializer` for a received ``serializer`` field.

    Raises
    ------
    SerializationError
        If ``name`` is not one of :data:`SERIALIZERS`, or dill is needed and missing.
    """
    ser = _SERIALIZERS.get(name)
    if ser is None:
        if name not in SERIALIZERS:
            raise SerializationError(f"unknown serializer {name!r}; expected one of {SERIALIZERS}")
        ser = _SERIALIZERS[name] = Serializer(use_dill=name == "dill")
    return ser


def pack_apply_message(
    f: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    serializer: Serializer | None = None,
) -> list[Any]:
    """Serialize a call ``f(*args, **kwargs)`` into frames for an apply request.

    Raises
    ------
    TypeError
        If ``f`` is not callable.
    SerializationError
        If the function or an argument cannot be serialized.
    """
    if not callable(f):
        raise TypeError(f"apply needs a callable, not {type(f).__name__}")
    ser = serializer or get_serializer("pickle")
    big = ser.inline_threshold
    packed_args = tuple(_OOBBytes(a) if type(a) in (bytes, bytearray) and len(a) >= big else a for a in args)
    packed_kwargs = {
        k: _OOBBytes(v) if type(v) in (bytes, bytearray) and len(v) >= big else v for k, v in (kwargs or {}).items()
    }
    try:
        return ser.dumps((f, packed_args, packed_kwargs))
    except SerializationError as err:
        raise SerializationError(f"{_culprit(ser, f, args, kwargs or {})}: {err}") from err.__cause__


def _culprit(ser: Serializer, f: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """Name the part of a call that cannot be serialized (only run once serializing failed)."""
    name = getattr(f, "__qualname__", None) or type(f).__name__
    parts: list[tuple[str, Any]] = [(f"the function {name}", f)]
    parts += [(f"argument {i} of {name}()", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r} of {name}()", v) for k, v in kwargs.items()]
    for label, part in parts:
        try:
            ser.dumps(part)
        except SerializationError:
            return f"cannot send {label}"
    return f"cannot send the call of {name}()"


def unpack_apply_message(
    frames: Sequence[Any],
    namespace: MutableMapping[str, Any] | None = None,
    serializer: Serializer | None = None,
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """Rebuild ``(f, args, kwargs)`` from an apply request's frames.

    Raises
    ------
    SerializationError
        If the frames do not hold a call.
    """
    ser = serializer or get_serializer("pickle")
    call = ser.loads(frames, namespace)
    if not (isinstance(call, tuple) and len(call) == 3 and callable(call[0])):
        raise SerializationError("the apply request does not hold (function, args, kwargs)")
    f, args, kwargs = call
    return f, tuple(args), dict(kwargs)
