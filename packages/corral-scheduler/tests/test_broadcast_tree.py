"""The broadcast tree: a root and its nodes on real loopback sockets, with scripted engines.

The nodes run in this process (one reactor for all of them) with their own sessions, exactly
as ``python -m corral.scheduler.broadcast_node`` runs one; the process itself is exercised by
packages/corral/tests/test_controller_broadcast.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from corral.scheduler import broadcast
from corral.scheduler.broadcast import BroadcastNode, BroadcastScheduler, TreeShape, node_identity
from corral.scheduler.broadcast_node import NodeConfigError, parse_config
from corral.wire import Message, Session, harden, unwrap_exception
from corral.wire.errors import EngineError
from corral.wire.loop import Reactor

pytestmark = pytest.mark.timeout(30)

KEY = b"t" * 32


def uuid_of(i: int) -> bytes:
    return f"{i:032x}".encode()


class Tree:
    """A root with ``shape`` below it and ``n`` scripted engines at their leaves."""

    def __init__(self, shape: TreeShape, n: int, *, connect: bool = True) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.shape = shape
        self.session = Session(KEY)
        self.reactor = Reactor(self.ctx)
        self.sockets: list[zmq.Socket[Any]] = []
        front, front_url = self.bound()
        back, back_url = self.bound()
        self.root = BroadcastScheduler(self.session, front, back, shape=shape)
        self.root.register(self.reactor)
        self.nodes: dict[tuple[int, int], BroadcastNode] = {}
        self.urls = urls = {(0, 0): back_url}
        for level in range(1, shape.depth + 1):
            for index in range(shape.nodes(level)):
                down, urls[(level, index)] = self.bound()
                self.nodes[(level, index)] = self.node(level, index, down)
        self.thread = threading.Thread(target=self.reactor.run, daemon=True)
        self.thread.start()
        self.wait(lambda: len(self.root.children_connected) == shape.fanout)
        self.cs = Session(KEY)
        self.client = self.dealer(front_url)
        self.es = Session(KEY)
        self.engines: list[zmq.Socket[Any]] = []
        for i in range(n):
            leaf = urls[(shape.depth, shape.leaf_of(i))]
            sock = self.dealer(leaf if connect else None, uuid_of(i))
            if connect:
                self.es.send(sock, "engine_hello", {"uuid": uuid_of(i).decode()})
            self.call(self.root.add_engine, uuid_of(i), i)
            self.engines.append(sock)

    def node(self, level: int, index: int, down: zmq.Socket[Any]) -> BroadcastNode:
        up = self.track(harden(self.ctx.socket(zmq.DEALER)))
        up.setsockopt(zmq.IDENTITY, node_identity(level, index))
        up.connect(self.urls[(level - 1, index // self.shape.fanout if level > 1 else 0)])
        node = BroadcastNode(Session(KEY), up, down, shape=self.shape, level=level, index=index)
        node.register(self.reactor)
        return node

    def kill(self, level: int, index: int) -> None:
        """End a node as its process dying would: its sockets close, nothing is said."""
        node = self.nodes[(level, index)]
        self.call(node.unregister, self.reactor)
        node.up.close(linger=0)
        node.down.close(linger=0)

    def revive(self, level: int, index: int) -> None:
        """Start a new node in the dead one's place, on the same port."""
        down = self.track(harden(self.ctx.socket(zmq.ROUTER)))
        deadline = time.monotonic() + 10
        while True:  # the dead node's port is released by ZeroMQ's IO thread, a moment later
            try:
                down.bind(self.urls[(level, index)])
                break
            except zmq.ZMQError:
                assert time.monotonic() < deadline, "the dead node's port was not released"
                time.sleep(0.05)
        self.nodes[(level, index)] = self.call(self.node, level, index, down)

    def leaf(self, engine: int) -> BroadcastNode:
        return self.nodes[(self.shape.depth, self.shape.leaf_of(engine))]

    def bound(self) -> tuple[zmq.Socket[Any], str]:
        sock = self.track(harden(self.ctx.socket(zmq.ROUTER)))
        return sock, f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"

    def track(self, sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
        self.sockets.append(sock)
        return sock

    def dealer(self, url: str | None, identity: bytes | None = None) -> zmq.Socket[Any]:
        sock = self.track(harden(self.ctx.socket(zmq.DEALER)))
        if identity:
            sock.setsockopt(zmq.IDENTITY, identity)
        if url is not None:
            sock.connect(url)
        return sock

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append(fn(*args))
            finally:
                done.set()

        self.reactor.call_soon_threadsafe(run)
        assert done.wait(5)
        return box[0] if box else None

    def wait(self, condition: Callable[[], Any], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not self.call(condition):
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.005)

    def send(self, targets: Any = None) -> str:
        msg = self.cs.msg("execute_request", {"code": "1"})
        if targets is not None:
            msg.header["sched"] = {"targets": targets}  # type: ignore[typeddict-unknown-key]
        self.cs.send(self.client, msg, buffers=[b"payload", memoryview(b"x" * 100_000)])
        return msg.msg_id

    def recv(self, sock: zmq.Socket[Any], timeout: float = 5) -> Message:
        assert sock.poll(int(timeout * 1000)), "nothing arrived"
        return self.es.recv(sock)

    def reply(self, i: int, req: Message) -> None:
        meta = {"engine_id": i, "status": "ok"}
        self.es.send(self.engines[i], "execute_reply", {"status": "ok"}, parent=req, ident=req.idents, metadata=meta)

    def replies(self, n: int) -> list[Message]:
        out = []
        for _ in range(n):
            assert self.client.poll(5000), f"{len(out)} of {n} replies arrived"
            out.append(self.cs.recv(self.client))
        return out

    def close(self) -> None:
        self.reactor.stop()
        self.thread.join(5)
        self.reactor.close()
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def tree() -> Iterator[Tree]:
    t = Tree(TreeShape(depth=2, fanout=2), 8)
    try:
        yield t
    finally:
        t.close()


def test_the_shape_deals_engines_to_leaves_and_routes_toward_them() -> None:
    shape = TreeShape(depth=2, fanout=3)
    assert shape.leaves == 9
    assert [shape.leaf_of(i) for i in (0, 8, 9, 13)] == [0, 8, 0, 4]
    assert shape.child_toward(0, 7) == 2  # leaves 6..8 are below the root's third child
    assert shape.child_toward(1, 7) == 7
    assert shape.leaves_under(1, 2) == range(6, 9)
    assert shape.leaves_under(2, 4) == range(4, 5)
    assert TreeShape().leaves == 1
    with pytest.raises(ValueError, match="depth"):
        TreeShape(depth=-1)
    with pytest.raises(ValueError, match="fanout"):
        TreeShape(depth=1, fanout=1)


def test_one_request_is_one_copy_per_child_and_one_per_engine_at_the_leaves(tree: Tree) -> None:
    msg_id = tree.send()
    for i, sock in enumerate(tree.engines):
        req = tree.recv(sock)
        assert req.msg_id == msg_id
        assert req.buffers[0] == b"payload"
        assert bytes(req.buffers[1]) == b"x" * 100_000
        assert not sock.poll(0), "an engine got a second copy"
        tree.reply(i, req)
    replies = tree.replies(8)
    assert sorted(r.metadata["engine_id"] for r in replies) == list(range(8))
    assert {r.parent_header["msg_id"] for r in replies} == {msg_id}
    # the root sent one copy per child (2), each inner node one per leaf (2), each leaf one per engine
    assert tree.call(lambda: dict(tree.root.counts)) == {"requests": 1, "copies": 2, "replies": 8}
    for node in tree.nodes.values():
        assert tree.call(lambda node=node: node.counts["copies"]) == 2
    assert tree.call(lambda: len(tree.root.pending)) == 0


def test_targets_reach_only_the_leaves_that_serve_them(tree: Tree) -> None:
    msg_id = tree.send([5, 1, 42])
    err = unwrap_exception(tree.replies(1)[0].content)
    assert isinstance(err, EngineError)
    assert "42" in str(err)
    for i in (1, 5):  # both at leaf 1
        req = tree.recv(tree.engines[i])
        assert req.msg_id == msg_id
        tree.reply(i, req)
    assert sorted(r.metadata["engine_id"] for r in tree.replies(2)) == [1, 5]
    assert not any(tree.engines[i].poll(0) for i in (0, 2, 3, 4, 6, 7))
    assert tree.call(lambda: tree.root.counts["copies"]) == 1
    untouched = [node for (level, index), node in tree.nodes.items() if (level, index) not in ((1, 0), (2, 1))]
    assert all(tree.call(lambda node=node: node.counts["requests"]) == 0 for node in untouched)


def test_an_engine_lost_mid_broadcast_gets_engine_error_and_its_late_reply_is_dropped(tree: Tree) -> None:
    msg_id = tree.send([0, 3])
    reqs = {i: tree.recv(tree.engines[i]) for i in (0, 3)}
    tree.call(tree.root.engine_lost, uuid_of(3), "killed by SIGKILL")
    lost = tree.replies(1)[0]
    assert lost.parent_header["msg_id"] == msg_id
    assert lost.metadata["engine_id"] == 3
    assert "killed by SIGKILL" in lost.content["evalue"]
    tree.reply(0, reqs[0])
    tree.reply(3, reqs[3])  # too late: already answered for
    assert tree.replies(1)[0].metadata["engine_id"] == 0
    tree.wait(lambda: tree.root.dropped["late"] == 1)
    # the leaf forgot the engine: an all-engines broadcast no longer reaches it
    tree.wait(lambda: uuid_of(3) not in tree.leaf(3).engines)
    tree.send()
    for i in (0, 1, 2, 4, 5, 6, 7):
        tree.reply(i, tree.recv(tree.engines[i]))
    assert not tree.engines[3].poll(200)
    assert len(tree.replies(7)) == 7


def test_a_node_that_dies_fails_what_its_engines_owe_and_later_requests_for_them() -> None:
    t = Tree(TreeShape(depth=1, fanout=2), 4)
    try:
        msg_id = t.send()
        reqs = {i: t.recv(t.engines[i]) for i in range(4)}
        t.call(t.root.node_lost, 1, 1, "broadcast scheduler node 1-1 exited with status -9")
        failed = t.replies(2)
        assert sorted(r.metadata["engine_id"] for r in failed) == [1, 3]
        assert all("node 1-1 exited" in r.content["evalue"] for r in failed)
        for i in (0, 2):
            t.reply(i, reqs[i])
        assert sorted(r.metadata["engine_id"] for r in t.replies(2)) == [0, 2]
        assert {r.parent_header["msg_id"] for r in failed} == {msg_id}
        t.send()
        later = t.replies(2)  # engines 1 and 3 fail at once, 0 and 2 still run it
        assert sorted(r.metadata["engine_id"] for r in later) == [1, 3]
        assert all(isinstance(unwrap_exception(r.content), EngineError) for r in later)
    finally:
        t.close()


def test_a_request_waits_at_the_leaf_for_an_engine_that_is_not_connected_yet() -> None:
    t = Tree(TreeShape(depth=1, fanout=2), 2, connect=False)
    try:
        msg_id = t.send([1])
        t.wait(lambda: t.leaf(1).counts["requests"] == 1)
        time.sleep(0.3)  # a few retries find it unreachable; the request waits
        t.engines[1].connect(t.urls[(1, 1)])  # no hello: reaching it is enough
        req = t.recv(t.engines[1])
        assert req.msg_id == msg_id
        t.reply(1, req)
        assert t.replies(1)[0].metadata["engine_id"] == 1
    finally:
        t.close()


def test_an_engine_that_never_connects_is_answered_for_by_its_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broadcast, "ENGINE_REACH_TIMEOUT", 0.5)
    t = Tree(TreeShape(depth=1, fanout=2), 2, connect=False)
    try:
        msg_id = t.send([0])
        reply = t.replies(1)[0]
        assert reply.parent_header["msg_id"] == msg_id
        assert reply.metadata["engine_id"] == 0
        err = unwrap_exception(reply.content)
        assert isinstance(err, EngineError)
        assert "unreachable" in str(err)
        assert t.call(lambda: len(t.root.pending)) == 0
    finally:
        t.close()


@pytest.mark.parametrize(("depth", "dead"), [(1, (1, 0)), (2, (2, 1)), (2, (1, 1))])
def test_a_node_started_again_on_its_port_serves_its_engines_again(depth: int, dead: tuple[int, int]) -> None:
    t = Tree(TreeShape(depth=depth, fanout=2), 8)
    try:
        t.send()
        for i in range(8):
            t.recv(t.engines[i])  # everyone got it; the replies are not sent yet
        t.kill(*dead)
        t.call(t.root.node_lost, *dead, "node died")
        below = t.shape.leaves_under(*dead)
        cut = sorted(i for i in range(8) if t.shape.leaf_of(i) in below)
        failed = t.replies(len(cut))
        assert sorted(r.metadata["engine_id"] for r in failed) == cut
        t.revive(*dead)
        t.call(t.root.node_restarted, *dead)
        # the engines below reconnect by themselves and get the next request, without a hello
        msg_id = t.send()
        for i in range(8):
            req = t.recv(t.engines[i], timeout=10)
            assert req.msg_id == msg_id  # the first request is not delivered twice
            t.reply(i, req)
        again = t.replies(8)
        assert sorted(r.metadata["engine_id"] for r in again) == list(range(8))
        assert {r.parent_header["msg_id"] for r in again} == {msg_id}
    finally:
        t.close()


def test_a_tampered_message_from_the_parent_is_dropped_at_the_node(tree: Tree) -> None:
    # a stranger connects to a leaf as if it were an engine and sends a forged reply
    leaf_url = tree.nodes[(2, 0)].down.getsockopt(zmq.LAST_ENDPOINT).decode()
    forger = tree.dealer(leaf_url, b"f" * 32)
    Session(b"wrong key").send(forger, "execute_reply", {"status": "ok"}, ident=[b"c"])
    node = tree.nodes[(2, 0)]
    tree.wait(lambda: sum(node.session.rejections.values()) == 1)
    assert not tree.client.poll(100)


def test_a_hello_from_something_that_is_not_a_child_node_is_refused(tree: Tree) -> None:
    root_url = tree.root.engine_socket.getsockopt(zmq.LAST_ENDPOINT).decode()
    for identity in (b"junk", node_identity(2, 0), node_identity(1, 9)):
        stray = tree.dealer(root_url, identity)
        Session(KEY).send(stray, broadcast.NODE_HELLO, {})
    rejected = tree.session.rejections
    tree.wait(lambda: rejected[("broadcast_engine", "malformed")] == 3)
    tree.send([0])
    tree.reply(0, tree.recv(tree.engines[0]))  # the tree still serves
    assert tree.replies(1)[0].metadata["engine_id"] == 0


def test_a_node_refuses_a_place_outside_the_tree() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    up, down = ctx.socket(zmq.DEALER), ctx.socket(zmq.ROUTER)
    try:
        with pytest.raises(ValueError, match="level"):
            BroadcastNode(Session(KEY), up, down, shape=TreeShape(1, 2), level=2, index=0)
        with pytest.raises(ValueError, match=r"nodes 0\.\.1"):
            BroadcastNode(Session(KEY), up, down, shape=TreeShape(1, 2), level=1, index=2)
    finally:
        up.close(linger=0)
        down.close(linger=0)
        ctx.term()


def test_node_settings_are_checked_with_messages_that_name_the_problem() -> None:
    good = {"key": "00", "ip": "127.0.0.1", "parent": "tcp://127.0.0.1:1", "depth": 1, "fanout": 2}
    good |= {"level": 1, "index": 0}
    assert parse_config(json.dumps(good))["port"] == 0
    with pytest.raises(NodeConfigError, match="not JSON"):
        parse_config("{")
    with pytest.raises(NodeConfigError, match="'parent' must be a str"):
        parse_config(json.dumps({**good, "parent": None}))
    with pytest.raises(NodeConfigError, match="fanout"):
        parse_config(json.dumps({**good, "fanout": 1}))
    with pytest.raises(NodeConfigError, match="'port'"):
        parse_config(json.dumps({**good, "port": 70000}))
