"""The public names of corral.client resolve, are documented, and are the wire's errors."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
from pathlib import Path

import pytest

import corral.wire.errors as wire_errors

pytestmark = pytest.mark.timeout(30)


def test_every_exported_name_resolves_and_has_a_docstring() -> None:
    mod = importlib.import_module("corral.client")
    assert mod.__doc__
    for name in mod.__all__:
        assert hasattr(mod, name), name
        obj = getattr(mod, name)
        if name != "__version__":
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_all_is_a_literal_list() -> None:
    source = Path(importlib.import_module("corral.client").__file__ or "").read_text()
    tree = ast.parse(source)
    assigned = [n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__"]
    assert len(assigned) == 1
    assert isinstance(assigned[0].value, ast.List)
    assert all(isinstance(e, ast.Constant) for e in assigned[0].value.elts)


def test_errors_are_the_wire_classes() -> None:
    import corral.client as client
    import corral.client.errors as errors

    for name in errors.__all__:
        assert getattr(errors, name) is getattr(wire_errors, name)
    assert client.TimeoutError is wire_errors.TimeoutError
    assert issubclass(client.TimeoutError, TimeoutError)
    assert issubclass(client.CompositeError, client.RemoteError)


def test_public_methods_document_what_they_raise() -> None:
    from corral.client import (
        AsyncMapResult,
        AsyncResult,
        BroadcastView,
        Client,
        DirectView,
        LoadBalancedView,
        ParallelFunction,
        RemoteFunction,
        View,
        ViewExecutor,
    )

    for cls in (
        Client,
        View,
        DirectView,
        LoadBalancedView,
        BroadcastView,
        AsyncResult,
        AsyncMapResult,
        RemoteFunction,
        ParallelFunction,
        ViewExecutor,
    ):
        for name, member in vars(cls).items():
            if name.startswith("_") or not callable(member) or name in {"result"}:
                continue
            doc = inspect.getdoc(member) or ""
            assert doc, f"{cls.__name__}.{name} has no docstring"


def test_version_matches_distribution_metadata() -> None:
    mod = importlib.import_module("corral.client")
    assert mod.__version__ == importlib.metadata.version("corral-client")


def test_client_imports_only_wire_among_corral_packages() -> None:
    root = Path(importlib.import_module("corral.client").__file__ or "").parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("corral."):
                assert node.module.startswith(("corral.wire", "corral.client")), (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("corral.") or alias.name.startswith("corral.wire"), alias.name
