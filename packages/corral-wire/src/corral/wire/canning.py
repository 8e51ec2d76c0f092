"""Send functions defined interactively by value, and run them in the engine's namespace.

Plain pickle sends a function by reference (module and name), which fails for functions
defined in ``__main__``, in a notebook, as lambdas or inside other functions: the engine has no
such module attribute. corral sends those by value instead (code, defaults, closure cells) and
rebuilds them with the *engine's namespace* as their globals, as IPython.parallel did, so a
function that reads a global name reads it from the engine (see seed 002, "Closures").
Functions importable on both sides keep going by reference.

The namespace used while unpickling is set with :func:`use_namespace`; outside it, rebuilt
interactive functions see ``__main__``'s globals.
"""

from __future__ import annotations

import contextvars
import importlib
import marshal
import sys
import types
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TypeVar

from corral.wire.errors import SerializationError

__all__ = [
    "Reference",
    "current_namespace",
    "interactive",
    "reduce_function",
    "use_namespace",
]

F = TypeVar("F", bound=Callable[..., Any])

_namespace: contextvars.ContextVar[MutableMapping[str, Any] | None] = contextvars.ContextVar(
    "corral_namespace", default=None
)
_PY = sys.version_info[:2]


@contextmanager
def use_namespace(namespace: MutableMapping[str, Any]) -> Iterator[MutableMapping[str, Any]]:
    """Unpickle interactive functions and :class:`Reference` objects against ``namespace``.

    Examples
    --------
    >>> ns = {"a": 5}
    >>> with use_namespace(ns):
    ...     pass  # deserialize requests here
    """
    token = _namespace.set(namespace)
    try:
        yield namespace
    finally:
        _namespace.reset(token)


def current_namespace() -> MutableMapping[str, Any]:
    """Return the namespace set by :func:`use_namespace`, or ``__main__``'s globals."""
    ns = _namespace.get()
    if ns is None:
        return vars(sys.modules["__main__"])
    return ns


def interactive(f: F) -> F:
    """Mark a function to be sent by value and run in the engine's namespace.

    Functions defined in ``__main__`` are treated so already; use this on functions defined
    in modules that should nonetheless see the engine's globals.

    Examples
    --------
    >>> @interactive
    ... def get_a():
    ...     return a  # noqa: F821 - resolved in the engine namespace
    """
    f.__corral_interactive__ = True  # type: ignore[attr-defined]
    return f


class Reference:
    """A name to look up in the engine's namespace when a request is unpacked there.

    Parameters
    ----------
    name
        The global name on the engine.

    Examples
    --------
    >>> view.apply_sync(len, Reference("data"))  # doctest: +SKIP
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"Reference needs an identifier, not {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"Reference({self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_resolve_reference, (self.name,))


def _resolve_reference(name: str) -> Any:
    ns = current_namespace()
    try:
        return ns[name]
    except KeyError:
        raise NameError(f"name {name!r} is not defined in the engine namespace") from None


def _is_interactive(f: types.FunctionType) -> bool:
    return f.__module__ == "__main__" or bool(getattr(f, "__corral_interactive__", False))


def _importable(f: types.FunctionType) -> bool:
    module = sys.modules.get(f.__module__ or "")
    if module is None:
        return False
    obj: Any = module
    for part in f.__qualname__.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return obj is f


def reduce_function(f: types.FunctionType) -> tuple[Any, ...] | None:
    """Return a by-value pickle reduction of ``f``, or None to pickle it by reference.

    Raises
    ------
    SerializationError
        If ``f``'s code cannot be marshalled.
    """
    if not _is_interactive(f) and _importable(f):
        return None
    try:
        code = marshal.dumps(f.__code__)
    except ValueError as err:
        raise SerializationError(f"cannot send function {f.__qualname__!r} by value: {err}") from None
    cells: tuple[Any, ...] | None = None
    if f.__closure__ is not None:
        cells = tuple(_cell_value(c) for c in f.__closure__)
    state = {
        "name": f.__name__,
        "qualname": f.__qualname__,
        "module": f.__module__,
        "defaults": f.__defaults__,
        "kwdefaults": f.__kwdefaults__,
        "doc": f.__doc__,
        "dict": {k: v for k, v in f.__dict__.items() if k != "__wrapped__"},
        "interactive": _is_interactive(f),
        "annotations": {},
    }
    return (_rebuild_function, (code, _PY, cells, state))


class _EmptyCell:
    def __reduce__(self) -> str:
        return "_EMPTY"


_EMPTY = _EmptyCell()


def _cell_value(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return _EMPTY


def _rebuild_function(
    code_bytes: bytes, py: tuple[int, int], cells: tuple[Any, ...] | None, state: dict[str, Any]
) -> Any:
    if tuple(py) != _PY:
        raise SerializationError(
            f"function {state['qualname']!r} was sent by value from Python {py[0]}.{py[1]}, "
            f"and this is Python {_PY[0]}.{_PY[1]}: bytecode differs between versions. Run the "
            "same Python version on clients and engines, or define the function in a module "
            "installed on both sides."
        )
    code = marshal.loads(code_bytes)
    if state["interactive"]:
        globs: Any = current_namespace()
    else:
        try:
            globs = vars(importlib.import_module(state["module"]))
        except Exception:
            globs = current_namespace()
    closure = None
    if cells is not None:
        closure = tuple(types.CellType() if v is _EMPTY else types.CellType(v) for v in cells)
    f = types.FunctionType(code, globs, state["name"], state["defaults"], closure)
    f.__qualname__ = state["qualname"]
    f.__module__ = state["module"]
    f.__kwdefaults__ = state["kwdefaults"]
    f.__doc__ = state["doc"]
    f.__dict__.update(state["dict"])
    return f
