"""What each request type does to the namespace: apply, execute, push and pull.

Each handler takes the verified request and the engine's namespace and returns an
:class:`Outcome` (the reply's type-specific content and buffers), or raises whatever went wrong;
the executor turns exceptions into error replies and adds status and metadata. Objects travel
with the serializer the request names (``content["serializer"]``, ``"pickle"`` by default), and
the reply uses the same one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from corral.engine.cells import NO_VALUE, run_cell
from corral.engine.display import mime_bundle
from corral.wire import Message, SerializationError, Serializer, get_serializer, unpack_apply_message

__all__ = ["HANDLERS", "Outcome", "handle_apply", "handle_execute", "handle_pull", "handle_push", "serializer_of"]

log = logging.getLogger(__name__)

#: How much of a ``repr`` goes into an ``execute_result``'s ``text/plain``.
_REPR_LIMIT: Final = 1024 * 1024


@dataclass(slots=True)
class Outcome:
    """A request's successful result.

    Attributes
    ----------
    content
        Reply content fields besides ``status``.
    buffers
        Reply buffers (serialized objects).
    result_data
        For ``execute_request``: the mimebundle of the last expression's value, or None.
    """

    content: dict[str, Any]
    buffers: list[Any] = field(default_factory=list)
    result_data: dict[str, Any] | None = None


def serializer_of(msg: Message) -> Serializer:
    """Return the serializer a request names in ``content["serializer"]`` (``"pickle"`` if none).

    Raises
    ------
    SerializationError
        If the name is unknown, or is ``"dill"`` and dill is not installed here.
    """
    name = msg.content.get("serializer", "pickle")
    if not isinstance(name, str):
        raise SerializationError(f"the serializer field must be a name, not {type(name).__name__}")
    return get_serializer(name)


def handle_apply(msg: Message, namespace: dict[str, Any], execution_count: int) -> Outcome:
    """Call ``f(*args, **kwargs)`` from the request's buffers; reply with the serialized result.

    Interactive functions (defined in ``__main__`` or marked ``@interactive``) run with the
    namespace as their globals.

    Raises
    ------
    SerializationError
        If the call cannot be unpacked or its result cannot be serialized.
    BaseException
        Whatever the function raises.
    """
    ser = serializer_of(msg)
    f, args, kwargs = unpack_apply_message(msg.buffers, namespace, ser)
    result = f(*args, **kwargs)
    return Outcome({"serializer": ser.name}, ser.dumps(result))


def _plain_text(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as err:  # a broken __repr__ must not turn a success into an error
        text = f"<repr() of {type(value).__name__} failed: {type(err).__name__}: {err}>"
    if len(text) > _REPR_LIMIT:
        text = text[:_REPR_LIMIT] + f"... [{len(text) - _REPR_LIMIT} more characters]"
    return text


def _has_rich_repr(value: Any) -> bool:
    # only objects that ask for it pay for the extra representations
    return not isinstance(value, type) and any(
        name.startswith("_repr_") and name.endswith("_") for name in dir(type(value))
    )


def handle_execute(msg: Message, namespace: dict[str, Any], execution_count: int) -> Outcome:
    """Run ``content["code"]``; the value of a final expression is the result.

    The reply content holds ``execution_count`` and ``execute_result`` (``{"data": {"text/plain":
    repr(value)}}``, plus every other representation when the value has ``_repr_*_`` methods;
    None when the code does not end with an expression or its value is None); the value itself
    is serialized into the buffers when it can be.

    Raises
    ------
    TypeError
        If ``code`` is missing or not a str.
    SyntaxError
        If the code does not parse.
    BaseException
        Whatever the code raises.
    """
    ser = serializer_of(msg)
    code = msg.content.get("code")
    if not isinstance(code, str):
        raise TypeError(f"execute_request needs a code string, not {type(code).__name__}")
    value = run_cell(code, namespace, f"<corral-cell-{execution_count}>")
    content: dict[str, Any] = {"execution_count": execution_count, "execute_result": None, "serializer": ser.name}
    if value is NO_VALUE or value is None:
        return Outcome(content)
    data = {"text/plain": _plain_text(value)}
    if _has_rich_repr(value):
        rich, md = mime_bundle(value)
        rich["text/plain"] = data["text/plain"]
        data = rich
        content["execute_result"] = {"data": data, "metadata": md}
    else:
        content["execute_result"] = {"data": data}
    try:
        buffers = ser.dumps(value)
    except SerializationError as err:
        log.debug("the value of cell %d does not serialize: %s", execution_count, err)
        buffers = []
    return Outcome(content, buffers, data)


def handle_push(msg: Message, namespace: dict[str, Any], execution_count: int) -> Outcome:
    """Update the namespace with the dict serialized in the request's buffers.

    Raises
    ------
    SerializationError
        If the buffers do not hold a dict.
    TypeError
        If a key is not a str.
    """
    ser = serializer_of(msg)
    values = ser.loads(msg.buffers, namespace)
    if not isinstance(values, dict):
        raise SerializationError(f"push_request needs a dict of names to values, not {type(values).__name__}")
    bad = [k for k in values if not isinstance(k, str)]
    if bad:
        raise TypeError(f"pushed names must be str, not {', '.join(repr(k) for k in bad[:5])}")
    namespace.update(values)
    return Outcome({})


def handle_pull(msg: Message, namespace: dict[str, Any], execution_count: int) -> Outcome:
    """Reply with the values of ``content["names"]``: one value if ``single``, else a list.

    Raises
    ------
    NameError
        If a name is not defined in the namespace.
    TypeError
        If ``names`` is not a list of str.
    SerializationError
        If a value cannot be serialized.
    """
    ser = serializer_of(msg)
    names = msg.content.get("names")
    single = msg.content.get("single")
    if isinstance(names, str):
        names, single = [names], True if single is None else single
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"pull_request needs names as a list of str, not {names!r}")
    values = []
    for name in names:
        try:
            values.append(namespace[name])
        except KeyError:
            raise NameError(f"name {name!r} is not defined") from None
    if single is None:
        single = len(names) == 1
    if single:
        if len(values) != 1:
            raise TypeError(f"pull_request with single=true needs exactly one name, not {len(values)}")
        return Outcome({"serializer": ser.name}, ser.dumps(values[0]))
    return Outcome({"serializer": ser.name}, ser.dumps(values))


#: The request types an engine serves, and their handlers.
HANDLERS: Final[dict[str, Callable[[Message, dict[str, Any], int], Outcome]]] = {
    "apply_request": handle_apply,
    "execute_request": handle_execute,
    "push_request": handle_push,
    "pull_request": handle_pull,
}
