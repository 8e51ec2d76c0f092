"""display() on an engine: mime bundles, iopub display_data tagged with the request, reply outputs."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from corral.engine import Engine
from corral.engine.display import display, mime_bundle
from corral.engine.namespace import clear_namespace, new_namespace

pytestmark = pytest.mark.timeout(60)


class Rich:
    def _repr_html_(self) -> str:
        return "<b>rich</b>"

    def _repr_png_(self) -> bytes:
        return b"\x89PNG fake"

    def _repr_latex_(self) -> tuple[str, dict[str, Any]]:
        return "$x$", {"inline": True}

    def _repr_markdown_(self) -> str:
        raise RuntimeError("broken markdown")

    def __repr__(self) -> str:
        return "Rich()"


class Bundle:
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"text/html": "<i>b</i>", "application/x-custom": {"a": 1}}, {"text/html": {"isolated": True}}

    def _repr_html_(self) -> str:
        return "<i>not used: the bundle has html</i>"


def test_mime_bundle_collects_every_representation() -> None:
    data, md = mime_bundle(Rich())
    assert data["text/plain"] == "Rich()"
    assert data["text/html"] == "<b>rich</b>"
    assert base64.b64decode(data["image/png"]) == b"\x89PNG fake"
    assert data["text/latex"] == "$x$"
    assert md == {"text/latex": {"inline": True}}
    assert "text/markdown" not in data  # the broken one is skipped, the others stay


def test_mime_bundle_prefers_repr_mimebundle() -> None:
    data, md = mime_bundle(Bundle())
    assert data["text/html"] == "<i>b</i>"
    assert data["application/x-custom"] == {"a": 1}
    assert md == {"text/html": {"isolated": True}}
    assert mime_bundle(Rich)[0] == {"text/plain": repr(Rich)}  # a class is shown as a class


def test_display_outside_a_request_prints_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    display(Rich(), 5)
    assert capsys.readouterr().out == "Rich()\n5\n"
    with pytest.raises(TypeError, match="mime bundles"):
        display("x", raw=True)


def test_namespaces_have_display_also_after_clear() -> None:
    ns = new_namespace()
    assert ns["display"] is display
    ns["display"] = "shadowed"
    clear_namespace(ns)
    assert ns["display"] is display


def test_display_in_a_request_is_published_and_kept_in_the_reply(controller: Any, engine: Engine) -> None:
    code = (
        "class R:\n"
        "    def _repr_html_(self):\n"
        "        return '<b>r</b>'\n"
        "print('before')\n"
        "display(R(), 'two')\n"
        "display({'text/plain': 'raw', 'text/html': '<p>raw</p>'}, raw=True, metadata={'k': 1})\n"
        "R()"
    )
    msg_id = controller.execute(code)
    reply = controller.reply(msg_id)
    assert reply.content["status"] == "ok"
    iopub = controller.iopub_until_idle(msg_id)
    kinds = [m.msg_type for m in iopub]
    assert kinds == ["status", "stream", "display_data", "display_data", "display_data", "execute_result", "status"]
    shown = [m.content for m in iopub if m.msg_type == "display_data"]
    assert shown[0]["data"]["text/html"] == "<b>r</b>"
    assert shown[1]["data"] == {"text/plain": "'two'"}
    assert shown[2] == {"data": {"text/plain": "raw", "text/html": "<p>raw</p>"}, "metadata": {"k": 1}}
    for m in iopub:
        assert m.parent_header["msg_id"] == msg_id
    assert reply.metadata["outputs"] == shown
    # the cell's value keeps its rich representation
    result = iopub[5].content["data"]
    assert result["text/html"] == "<b>r</b>"
    assert result["text/plain"].startswith("<__main__.R object")
