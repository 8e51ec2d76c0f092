"""The options of ``%px``, ``%%px``, ``%pxresult`` and ``%pxconfig``, and how targets are written.

``%%px`` takes its options on the magic's line; the line magic ``%px`` takes them before the
code (``%px --targets 0,2 import os``): leading words that are known options are options, the
rest of the line is code (``--`` ends the options explicitly).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from IPython.core.error import UsageError

__all__ = ["GROUPINGS", "PxOptions", "format_targets", "parse_px", "parse_result", "parse_targets", "split_line"]

#: Values of ``--group-outputs``.
GROUPINGS: Final = ("type", "engine", "order")

_TARGETS_RE: Final = re.compile(r"^-?\d+(,-?\d+)*$")
_SLICE_RE: Final = re.compile(r"^(-?\d*):(-?\d*)(?::(-?\d*))?$")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as a UsageError (IPython shows it) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%{self.prog}: {message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or self.format_help())


def parse_targets(text: str) -> int | list[int] | slice | str:
    """Read ``--targets``: ``all``, an id (``3``, ``-1``), ids (``0,2`` or ``[0, 2]``), a slice (``::2``, ``1:3``).

    Raises
    ------
    IPython.core.error.UsageError
        If ``text`` is none of these; the message shows the forms that work.
    """
    t = text.strip().replace(" ", "")
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    if t == "all":
        return "all"
    if _TARGETS_RE.match(t):
        ids = [int(x) for x in t.split(",")]
        return ids[0] if len(ids) == 1 and "," not in t else ids
    m = _SLICE_RE.match(t)
    if m:
        parts = [int(p) if p not in (None, "") else None for p in m.groups()]
        if parts[2] == 0:
            raise UsageError(f"--targets {text}: a slice step cannot be zero")
        return slice(parts[0], parts[1], parts[2])
    raise UsageError(
        f"--targets {text!r} is not understood; write 'all', an engine id (3), ids (0,2) or a slice (::2, 1:3)"
    )


def format_targets(targets: Any) -> str:
    """Write targets back the way ``--targets`` reads them (for messages)."""
    if isinstance(targets, slice):
        start = "" if targets.start is None else str(targets.start)
        stop = "" if targets.stop is None else str(targets.stop)
        return f"{start}:{stop}" + (f":{targets.step}" if targets.step is not None else "")
    if isinstance(targets, (list, tuple)):
        return ",".join(map(str, targets))
    return str(targets)


@dataclass
class PxOptions:
    """What ``%px``/``%%px`` options asked for; None means: use the ``%pxconfig`` default."""

    targets: int | list[int] | slice | str | None = None
    block: bool | None = None
    group_outputs: str | None = None
    stream: bool | None = None
    local: bool = False
    out: str | None = None


def _px_parser(prog: str) -> _Parser:
    p = _Parser(prog=prog, add_help=False, allow_abbrev=False)
    p.add_argument("--targets", "-t", type=str, default=None, help="engines to run on: all, 3, 0,2, ::2")
    blocking = p.add_mutually_exclusive_group()
    blocking.add_argument("--block", dest="block", action="store_const", const=True, default=None)
    blocking.add_argument("--noblock", "--no-block", dest="block", action="store_const", const=False)
    p.add_argument("--group-outputs", "-g", choices=GROUPINGS, default=None)
    streaming = p.add_mutually_exclusive_group()
    streaming.add_argument("--stream", dest="stream", action="store_const", const=True, default=None)
    streaming.add_argument("--no-stream", dest="stream", action="store_const", const=False)
    p.add_argument("--local", action="store_true", default=False)
    p.add_argument("--out", "-o", type=str, default=None)
    return p


# options of %px that take a value (the next word, or after "=")
_VALUED: Final = ("--targets", "-t", "--group-outputs", "-g", "--out", "-o")
_FLAGS: Final = ("--block", "--noblock", "--no-block", "--stream", "--no-stream", "--local")


def split_line(line: str) -> tuple[list[str], str]:
    """Split a ``%px`` line into its leading option words and the code after them."""
    words: list[str] = []
    pos = 0
    n = len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        end = pos
        while end < n and not line[end].isspace():
            end += 1
        word = line[pos:end]
        if word == "--":
            return words, line[end:].strip()
        name = word.split("=", 1)[0]
        if word in _FLAGS:
            words.append(word)
            pos = end
        elif name in _VALUED:
            words.append(word)
            pos = end
            if "=" not in word:
                while pos < n and line[pos].isspace():
                    pos += 1
                vend = pos
                while vend < n and not line[vend].isspace():
                    vend += 1
                if vend == pos:
                    raise UsageError(f"%px: option {word} needs a value")
                words.append(line[pos:vend])
                pos = vend
        elif len(word) > 2 and word[:2] in ("-t", "-g", "-o") and not word.startswith("--"):
            words.extend([word[:2], word[2:]])  # -t0,2 as -t 0,2
            pos = end
        else:
            return words, line[pos:].rstrip()


def parse_px(words: Sequence[str], prog: str = "px") -> PxOptions:
    """Parse the option words of ``%px``/``%%px``.

    Raises
    ------
    IPython.core.error.UsageError
        For an unknown option or a bad value.
    """
    ns = _px_parser(prog).parse_args(list(words))
    return PxOptions(
        targets=parse_targets(ns.targets) if ns.targets is not None else None,
        block=ns.block,
        group_outputs=ns.group_outputs,
        stream=ns.stream,
        local=ns.local,
        out=ns.out,
    )


def parse_result(words: Sequence[str], prog: str = "pxresult") -> PxOptions:
    """Parse ``%pxresult`` options (``--group-outputs``, ``-o``).

    Raises
    ------
    IPython.core.error.UsageError
        For an unknown option or a bad value.
    """
    p = _Parser(prog=prog, add_help=False, allow_abbrev=False)
    p.add_argument("--group-outputs", "-g", choices=GROUPINGS, default=None)
    p.add_argument("--out", "-o", type=str, default=None)
    ns = p.parse_args(list(words))
    return PxOptions(group_outputs=ns.group_outputs, out=ns.out)


def config_parser(prog: str = "pxconfig") -> argparse.ArgumentParser:
    """The parser of ``%pxconfig`` (the defaults of ``%px``: targets, block, group-outputs, stream)."""
    p = _Parser(prog=prog, add_help=False, allow_abbrev=False)
    p.add_argument("--targets", "-t", type=str, default=None)
    blocking = p.add_mutually_exclusive_group()
    blocking.add_argument("--block", dest="block", action="store_const", const=True, default=None)
    blocking.add_argument("--noblock", "--no-block", dest="block", action="store_const", const=False)
    p.add_argument("--group-outputs", "-g", choices=GROUPINGS, default=None)
    streaming = p.add_mutually_exclusive_group()
    streaming.add_argument("--stream", dest="stream", action="store_const", const=True, default=None)
    streaming.add_argument("--no-stream", dest="stream", action="store_const", const=False)
    return p
