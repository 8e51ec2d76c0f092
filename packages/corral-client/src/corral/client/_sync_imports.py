"""``DirectView.sync_imports()``: import modules here and on the engines with one statement."""

from __future__ import annotations

import builtins
import sys
from collections.abc import Mapping, Sequence
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corral.client._asyncresult import AsyncResult
    from corral.client._directview import DirectView

__all__ = ["SyncImports"]


class SyncImports:
    """Context manager: each top-level ``import`` in its block also runs on the view's engines.

    Only import statements written directly in the ``with`` block are sent (imports those
    modules make in turn are not), each once, as ``execute("import x")`` or
    ``execute("from x import a, b")``; ``import x as y`` binds ``x`` on the engines.
    Relative imports stay local. Leaving the block waits for the engines and raises their
    import errors.
    """

    def __init__(self, view: DirectView, local: bool = True, quiet: bool = False) -> None:
        if not local:
            raise NotImplementedError(
                "sync_imports(local=False) is not implemented: the with block needs the modules "
                "locally; for engine-only imports use view.execute('import x')"
            )
        self._view = view
        self._quiet = quiet
        self._frame: FrameType | None = None
        self._saved: Any = None
        self._sent: set[str] = set()
        self._results: list[AsyncResult] = []

    def __enter__(self) -> None:
        self._frame = sys._getframe(1)
        self._saved = builtins.__import__
        builtins.__import__ = self._import

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,  # noqa: A002 - __import__'s own signature
        locals: Mapping[str, Any] | None = None,  # noqa: A002
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> Any:
        module = self._saved(name, globals, locals, fromlist, level)
        if level == 0 and sys._getframe(1) is self._frame:
            if fromlist:
                statement = f"from {name} import {', '.join(fromlist)}"
                what = f"{', '.join(fromlist)} from {name}"
            else:
                statement, what = f"import {name}", name
            if statement not in self._sent:
                self._sent.add(statement)
                if not self._quiet:
                    print(f"importing {what} on engine(s)")
                self._results.append(self._view.execute(statement, block=False))
        return module

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        builtins.__import__ = self._saved
        self._frame = None
        if exc_type is None:
            for ar in self._results:
                ar.get()
