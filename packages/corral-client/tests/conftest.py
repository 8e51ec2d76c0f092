"""Fixtures: a scripted controller with fake engines (fake_cluster.py) and a Client connected to it."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from corral.client import Client

if TYPE_CHECKING:
    from fake_cluster import FakeCluster


def _load_fake_cluster() -> object:
    # tests are imported in importlib mode, so load the helper module by path
    name = "corral_client_fake_cluster"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fake_cluster.py"))
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fake = _load_fake_cluster()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FakeCluster]:
    """A fake controller with 3 engines (``@pytest.mark.engines(n)`` for another number)."""
    marker = request.node.get_closest_marker("engines")
    n = marker.args[0] if marker else 3
    c: FakeCluster = fake.FakeCluster(tmp_path, n=n)  # type: ignore[attr-defined]
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def rc(cluster: FakeCluster) -> Iterator[Client]:
    """A Client connected to ``cluster``, its subscriptions in place."""
    client = Client(cluster.path, timeout=5)
    try:
        cluster.wait_for_subscribers(1)
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _no_io_thread_left() -> Iterator[None]:
    yield
    left = [t for t in threading.enumerate() if t.name == "corral-client-io"]
    assert not left, f"client IO threads still running after the test: {left}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "engines(n): number of fake engines in the cluster fixture")
