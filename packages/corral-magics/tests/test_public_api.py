"""The public names of corral.magics resolve and are documented."""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

pytestmark = pytest.mark.timeout(30)


def test_every_exported_name_resolves() -> None:
    mod = importlib.import_module("corral.magics")
    assert mod.__doc__
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_version_matches_distribution_metadata() -> None:
    mod = importlib.import_module("corral.magics")
    assert mod.__version__ == importlib.metadata.version("corral-magics")
