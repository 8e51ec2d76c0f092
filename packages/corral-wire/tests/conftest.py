from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from corral.wire import Session
from corral.wire.testing import session_pair, socket_pair


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture(params=["blake3-gmac-v1", "blake3-v1", "hmac-sha256-v1"])
def pair(request: pytest.FixtureRequest) -> tuple[Session, Session]:
    return session_pair(scheme=request.param)


@pytest.fixture
def sockets() -> Iterator[tuple[zmq.Socket[Any], zmq.Socket[Any]]]:
    with socket_pair() as (a, b):
        yield a, b
