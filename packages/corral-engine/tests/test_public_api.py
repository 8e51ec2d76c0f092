"""The public names of corral.engine resolve and are documented."""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

pytestmark = pytest.mark.timeout(30)


def test_every_exported_name_resolves_and_has_a_docstring() -> None:
    mod = importlib.import_module("corral.engine")
    assert mod.__doc__
    assert mod.__all__ == ["Engine", "RegistrationError", "RegistrationTimeout", "__version__"]
    for name in mod.__all__:
        assert hasattr(mod, name), name
        if name != "__version__":
            assert getattr(mod, name).__doc__, name


def test_public_methods_are_documented() -> None:
    from corral.engine import Engine

    for name in (
        "start",
        "run",
        "run_async",
        "stop",
        "join",
        "wait_registered",
        "id",
        "uuid",
        "namespace",
        "stop_reason",
    ):
        assert getattr(Engine, name).__doc__, name


def test_version_matches_distribution_metadata() -> None:
    mod = importlib.import_module("corral.engine")
    assert mod.__version__ == importlib.metadata.version("corral-engine")
