"""The engine's user namespace: where pushed values, executed code and interactive functions live.

Besides the names of a fresh module, every namespace has ``display``
(:func:`corral.engine.display.display`), as an IPython session has: code written for Jupyter
that calls ``display(obj)`` runs unchanged and its rich output reaches the client.
"""

from __future__ import annotations

import builtins
import sys
import types
from typing import Any, Final

from corral.engine.display import display

__all__ = ["PRESERVED_NAMES", "clear_namespace", "install_display", "main_namespace", "new_namespace"]

#: Names :func:`clear_namespace` keeps: what a fresh module namespace starts with.
PRESERVED_NAMES: Final = frozenset({"__builtins__", "__name__", "__doc__", "__package__", "__loader__", "__spec__"})


def install_display(namespace: dict[str, Any]) -> None:
    """Give ``namespace`` the engine's ``display`` unless it defines its own."""
    namespace.setdefault("display", display)


def new_namespace() -> dict[str, Any]:
    """Return a fresh namespace that reads like an interactive session's (``__name__ == "__main__"``).

    It is not installed as ``sys.modules["__main__"]``, so an engine embedded in an application
    leaves the application's own ``__main__`` alone.
    """
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    install_display(module.__dict__)
    return module.__dict__


def main_namespace() -> dict[str, Any]:
    """Return the namespace of a fresh module installed as ``sys.modules["__main__"]``.

    For an engine process: classes and functions that user code defines there report
    ``__module__ == "__main__"`` and pickle by reference against this module, as they would in
    an interactive session.
    """
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    install_display(module.__dict__)
    sys.modules["__main__"] = module
    return module.__dict__


def clear_namespace(namespace: dict[str, Any]) -> None:
    """Remove every name from ``namespace`` except :data:`PRESERVED_NAMES`; ``display`` is put back.

    Safe to call from another thread while user code runs: each removal is atomic, and code that
    reads a cleared name afterwards gets a ``NameError``, as after ``del``.
    """
    for name in list(namespace):
        if name not in PRESERVED_NAMES:
            namespace.pop(name, None)
    namespace.setdefault("__builtins__", builtins)
    install_display(namespace)
