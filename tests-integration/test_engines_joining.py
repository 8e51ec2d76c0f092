"""Engines joining while a client connects: the client learns of every one of them.

A client's ``connection_reply`` snapshot can precede its notification subscription; an engine
that goes live in between must still reach ``rc.ids``. Locally that window is a few
milliseconds; here it is held open by delaying the client's connection to the notification
channel (a TCP forwarder that starts forwarding only when told to).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import TYPE_CHECKING

import pytest

from corral.client import Client

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(60)

#: Longest any single wait here may take, in seconds (as conftest.DEADLINE).
DEADLINE = 30.0


class HeldPort:
    """A loopback TCP port that forwards to ``target`` only once :meth:`release` is called.

    Until then a peer's connection waits in the listen backlog, unanswered: for a ZeroMQ SUB,
    a notification socket that is not connected yet, however long that takes.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._released = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="held-port", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Start accepting and forwarding."""
        self._released.set()

    def _serve(self) -> None:
        self._released.wait()
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        while not self._stop.is_set():
            for key, _ in sel.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    inner, _ = self.listener.accept()
                    outer = socket.create_connection(self.target)
                    peers[inner], peers[outer] = outer, inner
                    sel.register(inner, selectors.EVENT_READ)
                    sel.register(outer, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    peers[sock].sendall(data)
                    continue
                other = peers.pop(sock)
                peers.pop(other, None)
                for end in (sock, other):
                    sel.unregister(end)
                    end.close()
        for sock in [self.listener, *peers]:
            with contextlib.suppress(OSError):
                sock.close()
        sel.close()

    def close(self) -> None:
        """Stop forwarding and close every socket."""
        self._stop.set()
        self._released.set()
        self._thread.join(5)


@pytest.fixture
def held_notification_port() -> Iterator[Callable[[tuple[str, int]], HeldPort]]:
    made: list[HeldPort] = []

    def make(target: tuple[str, int]) -> HeldPort:
        made.append(HeldPort(target))
        return made[-1]

    yield make
    for held in made:
        held.close()


def test_client_learns_of_engines_that_joined_before_its_notifications_connected(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
    held_notification_port: Callable[[tuple[str, int]], HeldPort],
) -> None:
    """An engine that goes live between a client's snapshot and its subscription is not lost.

    Locally that window is a few milliseconds, and the engine's ``engine_registered`` used to
    be lost in it: ``rc.ids`` never showed that engine, and ``Cluster.start_and_connect`` (or
    ``corral start``) now and then waited its whole ``engine_timeout`` for an engine that had
    registered long before. Here the window is held open by delaying the client's connection
    to the notification channel until the engine is live.
    """
    from corral.wire import read_connection_file

    cluster, _ = cluster_factory(0)
    info = dict(read_connection_file(cluster.connection_file))
    held = held_notification_port((info["ip"], info["ports"]["notification"]))
    info["ports"] = {**info["ports"], "notification": held.port}
    with Client(info) as late:
        assert late.ids == []
        cluster.start_engines_sync(1)
        cluster.wait_for_engines_sync(1, timeout=DEADLINE)  # the cluster's own client sees it
        held.release()  # only now does the late client's notification socket connect
        late.wait_for_engines(1, timeout=10)
        assert late.ids == [0]
        assert late[0].apply_sync(lambda: 1) == 1
