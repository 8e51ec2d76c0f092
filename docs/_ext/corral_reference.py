"""Sphinx extension: the configuration reference, generated from corral's code.

Directives
----------
``corral-cli``
    Every command-line option: walks the ``argparse`` parser of ``corral`` (each subcommand),
    of ``python -m corral.engine`` and of ``python -m corral.cluster``, and renders their
    usage and a table of options (flags, default, help), skipping suppressed options.
``corral-traits``
    Every trait of the configurable classes (the views' flags): name, type, default, help.
``corral-signature``
    The parameters of a callable (``Cluster``, ``Client``) with their defaults, each
    described by its numpydoc "Parameters" entry.

It also drops toctree entries naming pages listed in ``optional_pages`` (conf.py) that do not
exist yet, so pages other branches add appear in the table of contents when they land.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.domains.python import PyClasslike
from sphinx.util.docutils import SphinxDirective


def _resolve(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _cell(text: str) -> str:
    """One table cell: on one line, pipes escaped, reST roles (from docstrings) as MyST roles."""
    text = re.sub(r":(\w+):`", r"{\1}`", text)
    return " ".join(text.replace("|", "\\|").split())


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown (GFM) table: the directives are used from MyST pages and emit MyST."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(rows_cell or " " for rows_cell in row) + " |" for row in rows]
    return [*lines, ""]


def _literal(text: str) -> str:
    if not text:
        return ""
    ticks = "``" if "`" in text else "`"
    escaped = text.replace("|", "\\|")
    return f"{ticks}{escaped}{ticks}"


def _option_rows(parser: argparse.ArgumentParser) -> list[list[str]]:
    rows = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            flags = ", ".join(action.option_strings)
            if action.nargs != 0:
                flags += f" {action.metavar or action.dest.upper()}"
        else:
            flags = action.metavar or action.dest
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0 else repr(default)
        text = (action.help or "") % {"default": default, "prog": parser.prog} if action.help else ""
        if action.choices and not isinstance(action.choices, dict):
            text = f"{text} (one of: {', '.join(map(str, action.choices))})".strip()
        if action.required:
            text = f"required. {text}"
        rows.append([_literal(flags), _literal(shown), _cell(text)])
    return rows


def _parser_section(parser: argparse.ArgumentParser, title: str, level: str) -> list[str]:
    usage = parser.format_usage().strip().removeprefix("usage: ")
    lines = [f"{level} {title}", ""]
    if parser.description:
        lines += [_cell(parser.description), ""]
    lines += ["```text", " ".join(usage.split()), "```", ""]
    rows = _option_rows(parser)
    if rows:
        lines += _table(["option", "default", "meaning"], rows)
    return lines


class CLIReference(SphinxDirective):
    """Render the options of a parser (``.. corral-cli:: module.build_parser``) and of its subcommands."""

    required_arguments = 1
    optional_arguments = 0

    def run(self) -> list[nodes.Node]:
        parser = _resolve(self.arguments[0])()
        lines: list[str] = []
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        lines += _parser_section(parser, f"`{parser.prog}`", "###")
        for action in subs:
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                section = _parser_section(sub, f"`{sub.prog}`", "####")
                if not sub.description and helps.get(name):
                    section[2:2] = [_cell(helps[name] or ""), ""]
                lines += section
        return self._parse(lines)

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(StringList(lines, source="corral-cli"), self.content_offset, container, match_titles=True)
        return list(container.children)


class TraitsReference(SphinxDirective):
    """Render every trait of the listed HasTraits classes (``.. corral-traits:: pkg.Class ...``)."""

    required_arguments = 1
    optional_arguments = 20

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for path in self.arguments:
            cls = _resolve(path)
            public = cls.__module__.rsplit("._", 1)[0]
            lines += [f"### `{public}.{cls.__name__}`", ""]
            rows = []
            for name, trait in sorted(cls.class_traits().items()):
                if name.startswith("_"):
                    continue
                default = trait.default_value
                rows.append(
                    [
                        _literal(name),
                        _literal(type(trait).__name__),
                        _literal(repr(default)),
                        _cell(trait.help or ""),
                    ]
                )
            lines += _table(["trait", "type", "default", "meaning"], rows)
        section = nodes.section()
        section.document = self.state.document
        self.state.nested_parse(StringList(lines, source="corral-traits"), self.content_offset, section, match_titles=True)
        return list(section.children)


def _numpydoc_parameters(doc: str) -> dict[str, str]:
    """Parameter name -> description, from a numpydoc "Parameters" section."""
    found: dict[str, str] = {}
    match = re.search(r"\nParameters\n-+\n(.*?)(?:\n\n[A-Z][a-z]+\n-+\n|\Z)", "\n" + doc, re.S)
    if not match:
        return found
    current = None
    for line in match.group(1).splitlines():
        if line and not line.startswith(" "):
            current = line.split(":")[0].strip()
            for name in current.split(","):
                found[name.strip()] = ""
        elif current:
            for name in current.split(","):
                found[name.strip()] = (found[name.strip()] + " " + line.strip()).strip()
    return found


class SignatureReference(SphinxDirective):
    """Render a callable's parameters, defaults and descriptions (``.. corral-signature:: pkg.Class``)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        obj = _resolve(self.arguments[0])
        sig = inspect.signature(obj)
        descriptions = _numpydoc_parameters(inspect.getdoc(obj) or "")
        rows = []
        for name, param in sig.parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            default = "" if param.default is param.empty else repr(param.default)
            rows.append([_literal(name), _literal(default), _cell(descriptions.get(name, ""))])
        section = nodes.section()
        section.document = self.state.document
        lines = _table(["parameter", "default", "meaning"], rows)
        self.state.nested_parse(StringList(lines, source="corral-signature"), self.content_offset, section)
        return list(section.children)


def _drop_missing_optional_pages(app: Sphinx, docname: str, source: list[str]) -> None:
    if docname != app.config.root_doc:
        return
    missing = [p for p in app.config.optional_pages if not (Path(app.srcdir) / f"{p}.md").exists()]
    if not missing:
        return
    kept = [line for line in source[0].split("\n") if line.strip() not in missing]
    source[0] = "\n".join(kept)


class _ReExportedClass(PyClasslike):
    """``py:class``/``py:exception`` without ``:canonical:``.

    corral re-exports names (``corral.client.CorralError`` is ``corral.wire.errors.CorralError``),
    and the API pages document each public module's names; with the canonical name every
    re-export would register ``corral.wire.errors.CorralError`` again, a duplicate.
    """

    def run(self) -> list[nodes.Node]:
        self.options.pop("canonical", None)
        return super().run()


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the optional-pages hook."""
    app.add_directive_to_domain("py", "class", _ReExportedClass, override=True)
    app.add_directive_to_domain("py", "exception", _ReExportedClass, override=True)
    app.add_config_value("optional_pages", [], "env")
    app.add_directive("corral-cli", CLIReference)
    app.add_directive("corral-traits", TraitsReference)
    app.add_directive("corral-signature", SignatureReference)
    app.connect("source-read", _drop_missing_optional_pages)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
