"""Rich output from engine code: ``display(obj)`` publishes a mime bundle on iopub.

The engine is plain Python and does not import IPython, yet code written for Jupyter calls
``display(obj)`` on objects that know how to show themselves (``_repr_html_``, ``_repr_png_``,
``_repr_mimebundle_`` ...). Every engine namespace has :func:`display`; called while a request
runs, it sends one ``display_data`` message per object on iopub, tagged with that request, and the
client records it in the request's ``metadata["outputs"]`` (``AsyncResult.display_outputs`` and the
``%px`` magics show it as rich output in Jupyter).

Like stream capture (:mod:`corral.engine.capture`), publishing is routed by thread: only the
thread that runs requests publishes; ``display`` called anywhere else (a thread user code
started, or no request running) prints the objects' plain text instead.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["DisplaySink", "display", "mime_bundle", "route_display", "unroute_display"]

log = logging.getLogger(__name__)

#: Where a routed thread's display data goes: ``sink(data, metadata)``.
DisplaySink = Callable[[dict[str, Any], dict[str, Any]], None]

# IPython's conventional _repr_*_ methods and the mime type each returns
_REPR_METHODS: Final = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
    ("_repr_javascript_", "application/javascript"),
    ("_repr_pdf_", "application/pdf"),
)
# binary mime types travel base64-encoded in JSON, as Jupyter's display_data does
_BINARY: Final = frozenset({"image/png", "image/jpeg", "application/pdf"})

_sinks: dict[int, DisplaySink] = {}


def route_display(ident: int, sink: DisplaySink) -> None:
    """Send what thread ``ident`` displays to ``sink`` (the executor, while a request runs)."""
    _sinks[ident] = sink


def unroute_display(ident: int) -> None:
    """Stop routing thread ``ident``'s display calls."""
    _sinks.pop(ident, None)


def _plain(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception as err:  # a broken __repr__ must not fail the display call
        return f"<repr() of {type(obj).__name__} failed: {type(err).__name__}: {err}>"


def _encode(mime: str, value: Any) -> Any:
    if mime in _BINARY and isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def mime_bundle(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(data, metadata)``: every representation ``obj`` offers, keyed by mime type.

    ``text/plain`` is always there (``repr(obj)``). ``_repr_mimebundle_()`` is asked first; then
    each ``_repr_<kind>_()`` method the object has adds its type unless already present. A method
    may return ``(value, metadata)``. Binary images are base64-encoded. A method that raises or
    returns something that is not JSON is skipped (logged), so one broken representation does not
    hide the others.
    """
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    method = getattr(obj, "_repr_mimebundle_", None)
    if callable(method) and not isinstance(obj, type):
        try:
            bundle = method(include=None, exclude=None)
        except Exception as err:
            log.warning("%s._repr_mimebundle_() failed: %s", type(obj).__name__, err)
            bundle = None
        if isinstance(bundle, tuple) and len(bundle) == 2:
            bundle, md = bundle
            if isinstance(md, Mapping):
                metadata.update(md)
        if isinstance(bundle, Mapping):
            for mime, value in bundle.items():
                data[str(mime)] = _encode(str(mime), value)
    for name, mime in _REPR_METHODS:
        if mime in data or isinstance(obj, type):
            continue
        method = getattr(obj, name, None)
        if not callable(method):
            continue
        try:
            value = method()
        except Exception as err:
            log.warning("%s.%s() failed: %s", type(obj).__name__, name, err)
            continue
        if isinstance(value, tuple) and len(value) == 2:
            value, md = value
            if isinstance(md, Mapping):
                metadata[mime] = dict(md)
        if value is None:
            continue
        value = _encode(mime, value)
        if _jsonable(value):
            data[mime] = value
    data.setdefault("text/plain", _plain(obj))
    return data, metadata


def display(*objs: Any, raw: bool = False, metadata: Mapping[str, Any] | None = None) -> None:
    """Show objects as rich output on the client that sent the running request.

    Parameters
    ----------
    *objs
        The objects to show; each becomes one ``display_data`` message.
    raw
        The objects are mime bundles already (dicts of mime type to data), sent as they are.
    metadata
        Added to each message's metadata.

    Raises
    ------
    TypeError
        If ``raw`` is true and an object is not a dict.
    """
    sink = _sinks.get(threading.get_ident())
    for obj in objs:
        if raw:
            if not isinstance(obj, Mapping):
                raise TypeError(f"display(raw=True) needs mime bundles (dicts), not {type(obj).__name__}")
            data = {str(k): _encode(str(k), v) for k, v in obj.items()}
            md: dict[str, Any] = {}
        else:
            data, md = mime_bundle(obj)
        if metadata:
            md.update(metadata)
        if sink is None:
            print(data.get("text/plain", ""))
        else:
            sink(data, md)
