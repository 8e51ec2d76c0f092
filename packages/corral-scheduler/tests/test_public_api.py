"""The public names of corral.scheduler resolve and are documented."""

from __future__ import annotations

import importlib.metadata
import inspect

import pytest

import corral.scheduler

pytestmark = pytest.mark.timeout(30)


def test_every_exported_name_resolves_and_is_documented() -> None:
    assert corral.scheduler.__doc__
    for name in corral.scheduler.__all__:
        obj = getattr(corral.scheduler, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name


def test_version_matches_distribution_metadata() -> None:
    assert corral.scheduler.__version__ == importlib.metadata.version("corral-scheduler")
