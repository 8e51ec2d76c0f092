"""Task dependencies: what the task scheduler waits for, and what an engine checks first.

Two kinds, as in IPython.parallel (seed 002):

- **Scheduler dependencies**, a :class:`Dependency` (a set of msg_ids with ``all``/``any`` and
  ``success``/``failure`` flags), given as a load-balanced view's ``after`` (run only once these
  tasks finished) or ``follow`` (run only where they ran). They travel in the request header as
  :meth:`Dependency.as_json` (``docs/scheduling.md``).
- **Functional dependencies**, checked on the engine just before the task runs: :func:`depend`
  (a function that must return true there) and :func:`require` (modules that must import
  there). When one is not met the wrapper raises :class:`~corral.wire.errors.UnmetDependency`;
  the engine replies ``status: "unmet"`` and the scheduler tries another engine.

The wrappers live in ``corral.wire`` because the engine unpickles them: an engine with only
``corral-engine`` installed must be able to run them.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from corral.wire.canning import current_namespace
from corral.wire.errors import UnmetDependency

__all__ = ["Dependency", "dependent", "depend", "require", "required"]


class Dependency(set[str]):
    """A set of msg_ids a task depends on, and which outcomes of them count as met.

    Parameters
    ----------
    dependencies
        msg_ids (str), objects with a ``msg_ids`` attribute (AsyncResults), other
        Dependencies, or an iterable of any of these; a single one need not be in a list.
    all
        Met when *all* of the tasks finished acceptably (True), or when *any* did (False).
    success
        A task that succeeded (status ``ok``) counts.
    failure
        A task that failed (status ``error``) counts.

    Raises
    ------
    TypeError
        If an item is not a msg_id, an AsyncResult or a Dependency.
    ValueError
        If neither ``success`` nor ``failure`` is set (it could never be met).

    Examples
    --------
    >>> dep = Dependency(["a", "b"], all=False)
    >>> dep.as_json()
    {'msg_ids': ['a', 'b'], 'all': False, 'success': True, 'failure': False}
    """

    def __init__(
        self,
        dependencies: Any = (),
        all: bool = True,  # noqa: A002 - the seed's name
        success: bool = True,
        failure: bool = False,
    ) -> None:
        super().__init__(_msg_ids(dependencies))
        if not (success or failure):
            raise ValueError("a Dependency with success=False and failure=False can never be met")
        self.all = bool(all)
        self.success = bool(success)
        self.failure = bool(failure)

    def as_json(self) -> dict[str, Any]:
        """Return the wire form: ``{"msg_ids": [...], "all", "success", "failure"}`` (ids sorted)."""
        return {"msg_ids": sorted(self), "all": self.all, "success": self.success, "failure": self.failure}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dependency:
        """Rebuild a Dependency from :meth:`as_json` output.

        Raises
        ------
        KeyError, TypeError, ValueError
            If ``data`` is not a dependency's wire form.
        """
        return cls(list(data["msg_ids"]), data.get("all", True), data.get("success", True), data.get("failure", False))

    def accepts(self, status: str) -> bool:
        """Return whether a prerequisite that finished with ``status`` counts as met."""
        return (status == "ok" and self.success) or (status != "ok" and self.failure)

    def check(self, outcomes: dict[str, str]) -> bool:
        """Return whether the dependency is met, given ``{msg_id: status}`` of finished tasks.

        An empty dependency is always met.
        """
        if not self:
            return True
        hits = (m in outcomes and self.accepts(outcomes[m]) for m in self)
        return all(hits) if self.all else any(hits)

    def unreachable(self, outcomes: dict[str, str]) -> bool:
        """Return whether the dependency can no longer be met, given finished tasks' statuses."""
        if not self:
            return False
        bad = (m in outcomes and not self.accepts(outcomes[m]) for m in self)
        return any(bad) if self.all else all(bad)

    def __repr__(self) -> str:
        return f"Dependency({sorted(self)!r}, all={self.all}, success={self.success}, failure={self.failure})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (sorted(self), self.all, self.success, self.failure))


def _msg_ids(deps: Any) -> list[str]:
    if deps is None:
        return []
    if isinstance(deps, str):
        return [deps]
    ids = getattr(deps, "msg_ids", None)
    if ids is not None and not isinstance(deps, Dependency):
        return [str(m) for m in ids]  # an AsyncResult: iterating it would wait for its values
    if isinstance(deps, Iterable):
        return [m for d in deps for m in _msg_ids(d)]
    raise TypeError(f"a dependency is a msg_id, an AsyncResult or a Dependency, not {type(deps).__name__}")


class dependent:
    """A function that runs only where ``df(*dargs, **dkwargs)`` is true; made by :func:`depend`.

    Called on the engine, it calls ``df`` first and raises
    :class:`~corral.wire.errors.UnmetDependency` when the answer is false, so the engine can
    report the task as unmet and the scheduler try another engine.
    """

    def __init__(self, f: Callable[..., Any], df: Callable[..., Any], *dargs: Any, **dkwargs: Any) -> None:
        self.f = f
        self.df = df
        self.dargs = dargs
        self.dkwargs = dkwargs
        self.__name__ = str(getattr(f, "__name__", type(f).__name__))
        self.__doc__ = getattr(f, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Check the dependency, then call the function.

        Raises
        ------
        UnmetDependency
            If the dependency function returns a false value.
        Exception
            Whatever the dependency function or the function itself raises.
        """
        if not self.df(*self.dargs, **self.dkwargs):
            name = getattr(self.df, "__name__", "dependency")
            raise UnmetDependency(f"{name}() returned false on this engine: {self.__name__} cannot run here")
        return self.f(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<dependent {self.__name__} on {getattr(self.df, '__name__', self.df)!r}>"


def depend(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], dependent]:
    """Decorate a function to run only on engines where ``f(*args, **kwargs)`` is true.

    ``f`` runs on the engine, just before the decorated function, each time a task is tried
    there.

    Raises
    ------
    TypeError
        If ``f`` is not callable.

    Examples
    --------
    >>> def has_gpu():
    ...     return False
    >>> @depend(has_gpu)
    ... def train(x):
    ...     return x
    >>> train.__name__
    'train'
    """
    if not callable(f):
        raise TypeError(f"depend() needs a callable to check, not {type(f).__name__}")

    def decorate(g: Callable[..., Any]) -> dependent:
        return dependent(g, f, *args, **kwargs)

    return decorate


class required:
    """A function that imports modules and defines names on the engine before it runs.

    Made by :func:`require`. Modules are imported into the globals the function runs with
    (the engine's namespace for interactive functions), under their top-level name as
    ``import a.b`` does; objects are defined there under their names.
    """

    def __init__(self, f: Callable[..., Any], modules: list[str], objects: dict[str, Any]) -> None:
        self.f = f
        self.modules = modules
        self.objects = objects
        self.__name__ = str(getattr(f, "__name__", type(f).__name__))
        self.__doc__ = getattr(f, "__doc__", None)

    def _namespace(self) -> MutableMapping[str, Any]:
        if isinstance(self.f, types.FunctionType):
            return self.f.__globals__
        return current_namespace()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Import the modules, define the names, then call the function.

        Raises
        ------
        UnmetDependency
            If a module cannot be imported on this engine.
        Exception
            Whatever the function raises.
        """
        ns = self._namespace()
        for name in self.modules:
            try:
                importlib.import_module(name)
            except ImportError as err:
                raise UnmetDependency(
                    f"{self.__name__} requires module {name!r}, which this engine lacks: {err}"
                ) from None
            top = name.partition(".")[0]
            ns[top] = importlib.import_module(top)
        ns.update(self.objects)
        return self.f(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<required {self.__name__}: {self.modules + sorted(self.objects)}>"


def require(*objects: Any, **mapping: Any) -> Callable[[Callable[..., Any]], required]:
    """Decorate a function to run only where some modules import, with some names defined.

    Parameters
    ----------
    *objects
        Module names (``"numpy"``, ``"os.path"``) and modules are imported on the engine
        before the function runs; an engine where one is missing reports the task as unmet,
        so the scheduler tries another. Other objects with a ``__name__`` (functions,
        classes) are sent with the task and defined on the engine under that name.
    **mapping
        Objects to define on the engine under the given names.

    Raises
    ------
    TypeError
        If an object is neither a module name, a module, nor has a ``__name__``.

    Examples
    --------
    >>> @require("math")
    ... def root(x):
    ...     return math.sqrt(x)  # noqa: F821 - imported on the engine
    >>> root(16)
    4.0
    """
    modules: list[str] = []
    named: dict[str, Any] = {}
    for obj in objects:
        if isinstance(obj, str):
            modules.append(obj)
        elif isinstance(obj, types.ModuleType):
            modules.append(obj.__name__)
        elif isinstance(getattr(obj, "__name__", None), str):
            named[obj.__name__] = obj
        else:
            raise TypeError(f"require() takes module names, modules and named objects, not {type(obj).__name__}")
    named.update(mapping)

    def decorate(f: Callable[..., Any]) -> required:
        return required(f, modules, named)

    return decorate
