"""Show what requests printed and displayed: ``[stdout:0] ...``, ``[output:1]``, ``Out[0:3]: ...``.

Used by :meth:`AsyncResult.display_outputs` and by the ``%px`` magics. corral-client does not
import IPython: when the process *is* an IPython session (IPython already imported and a shell
running), rich output goes through that shell's display publisher, so Jupyter shows HTML and
images; anywhere else the plain-text representation is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

__all__ = ["GROUPINGS", "ipython_shell", "print_stream", "publish", "show_outputs"]

#: The values of ``groupby`` that :func:`show_outputs` accepts.
GROUPINGS: Final = ("type", "engine", "order")


def ipython_shell() -> Any | None:
    """Return the running IPython shell, or None when this process is not an IPython session.

    IPython is never imported here: only a session that already loaded it has a shell.
    """
    module = sys.modules.get("IPython")
    get = getattr(module, "get_ipython", None) if module is not None else None
    try:
        return get() if callable(get) else None
    except Exception:  # a half-imported IPython is no session
        return None


def _engine(eid: Any) -> str:
    return "?" if eid is None else str(eid)


def print_stream(name: str, eid: Any, text: str, file: TextIO | None = None) -> None:
    """Print ``text`` that engine ``eid`` wrote to stream ``name``, labelled ``[name:eid]``.

    One line goes on the label's line; several start on the next line.
    """
    if not text:
        return
    out = file if file is not None else (sys.stderr if name == "stderr" else sys.stdout)
    if not text.endswith("\n"):
        text += "\n"
    sep = " " if text.count("\n") == 1 else "\n"
    out.write(f"[{name}:{_engine(eid)}]{sep}{text}")
    out.flush()


def _plain(data: Mapping[str, Any]) -> str:
    if "text/plain" in data:
        return str(data["text/plain"])
    kinds = ", ".join(sorted(data)) or "nothing"
    return f"<rich output: {kinds}>"


def publish(data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None, file: TextIO | None = None) -> None:
    """Show one mime bundle: rich in an IPython session, its plain text otherwise."""
    shell = ipython_shell()
    pub = getattr(shell, "display_pub", None) if shell is not None else None
    if pub is not None and file is None:
        sys.stdout.flush()
        pub.publish(data=dict(data), metadata=dict(metadata or {}))
        return
    out = file if file is not None else sys.stdout
    out.write(_plain(data).rstrip("\n") + "\n")
    out.flush()


def _show_output(eid: Any, output: Mapping[str, Any], file: TextIO | None) -> None:
    out = file if file is not None else sys.stdout
    out.write(f"[output:{_engine(eid)}]\n")
    out.flush()
    publish(output.get("data", {}), output.get("metadata", {}), file)


def _show_result(eid: Any, md: Mapping[str, Any], file: TextIO | None) -> None:
    result = md.get("execute_result")
    if not isinstance(result, Mapping) or not isinstance(result.get("data"), Mapping):
        return
    data: Mapping[str, Any] = result["data"]
    count = result.get("execution_count", md.get("execution_count"))
    prompt = f"Out[{_engine(eid)}:{count if count is not None else '?'}]: "
    out = file if file is not None else sys.stdout
    rich = set(data) - {"text/plain"}
    if rich and file is None and ipython_shell() is not None:
        out.write(prompt + "\n")
        out.flush()
        publish(data, result.get("metadata", {}), file)
        return
    text = _plain(data)
    out.write(prompt + ("\n" if "\n" in text else "") + text.rstrip("\n") + "\n")
    out.flush()


def show_outputs(
    entries: Sequence[tuple[Any, Mapping[str, Any]]],
    groupby: str = "type",
    result_only: bool = False,
    *,
    streams: bool = True,
    file: TextIO | None = None,
) -> None:
    """Print the output of requests, given as ``(engine_id, metadata)`` pairs.

    Parameters
    ----------
    entries
        One pair per request, in the order to show them.
    groupby
        ``"type"``: every engine's stdout, then every stderr, then display outputs, then
        ``Out[...]`` results; ``"engine"``: everything of one engine before the next;
        ``"order"``: streams by type, then the display outputs interleaved (each engine's first
        output, then each engine's second ...), then results.
    result_only
        Show only the ``Out[...]`` results.
    streams
        Show stdout and stderr (False when they were already shown while streaming).
    file
        Write everything here, as plain text (default: stdout/stderr, rich in IPython).

    Raises
    ------
    ValueError
        If ``groupby`` is not one of :data:`GROUPINGS`.
    """
    if groupby not in GROUPINGS:
        raise ValueError(f"groupby must be one of {', '.join(map(repr, GROUPINGS))}, not {groupby!r}")
    show_streams = streams and not result_only

    def stream(name: str, eid: Any, md: Mapping[str, Any]) -> None:
        if show_streams:
            print_stream(name, eid, str(md.get(name) or ""), file)

    def outputs_of(md: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        outs = md.get("outputs") or []
        return [o for o in outs if isinstance(o, Mapping)] if not result_only else []

    if groupby == "engine":
        for eid, md in entries:
            stream("stdout", eid, md)
            stream("stderr", eid, md)
            for output in outputs_of(md):
                _show_output(eid, output, file)
            _show_result(eid, md, file)
        return
    for name in ("stdout", "stderr"):
        for eid, md in entries:
            stream(name, eid, md)
    if groupby == "order":
        depth = max((len(outputs_of(md)) for _, md in entries), default=0)
        for i in range(depth):
            for eid, md in entries:
                outs = outputs_of(md)
                if i < len(outs):
                    _show_output(eid, outs[i], file)
    else:
        for eid, md in entries:
            for output in outputs_of(md):
                _show_output(eid, output, file)
    for eid, md in entries:
        _show_result(eid, md, file)
