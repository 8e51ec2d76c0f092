"""Run a code string as an interactive prompt does: the last expression's value is the result.

The code is parsed once; if its last statement is an expression, the statements before it are
executed and that expression is evaluated separately, so ``"x = 2\\nx * 21"`` gives 42 and
``"x = 2"`` gives no value. Each cell gets a file name (``<corral-cell-N>``) and its source is
registered with :mod:`linecache`, so tracebacks show the offending lines.
"""

from __future__ import annotations

import ast
import linecache
from collections import deque
from types import CodeType
from typing import Any, Final

__all__ = ["NO_VALUE", "compile_cell", "run_cell"]

#: Returned by :func:`run_cell` when the code does not end with an expression.
NO_VALUE: Final = object()

# linecache entries kept for tracebacks of recent cells
_KEEP_SOURCES: Final = 1000
_registered: deque[str] = deque()


def _remember_source(filename: str, code: str) -> None:
    lines = code.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    linecache.cache[filename] = (len(code), None, lines, filename)
    _registered.append(filename)
    while len(_registered) > _KEEP_SOURCES:
        linecache.cache.pop(_registered.popleft(), None)


def compile_cell(code: str, filename: str) -> tuple[CodeType, CodeType | None]:
    """Compile ``code`` into its statements and, if it ends with one, its last expression.

    Raises
    ------
    SyntaxError
        If ``code`` does not parse.
    TypeError
        If ``code`` is not a str.
    """
    if not isinstance(code, str):
        raise TypeError(f"code to execute must be a str, not {type(code).__name__}")
    _remember_source(filename, code)
    tree = ast.parse(code, filename, "exec")
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        del tree.body[-1]
    # dont_inherit: this module's `from __future__` imports must not leak into user code
    body = compile(tree, filename, "exec", dont_inherit=True)
    expr = compile(last, filename, "eval", dont_inherit=True) if last is not None else None
    return body, expr


def run_cell(code: str, namespace: dict[str, Any], filename: str) -> Any:
    """Execute ``code`` in ``namespace``; return its last expression's value or :data:`NO_VALUE`.

    Raises
    ------
    SyntaxError
        If ``code`` does not parse.
    BaseException
        Whatever the code raises.
    """
    body, expr = compile_cell(code, filename)
    exec(body, namespace)
    if expr is None:
        return NO_VALUE
    return eval(expr, namespace)
