"""The broadcast scheduler: one request from a client reaches many engines, through a tree.

A client sends one request on ``broadcast`` naming its engines in ``header["sched"]["targets"]``
(engine ids; null or absent: every engine). With ``depth == 0`` the root (in the controller)
sends each engine the same frames with a new envelope, and forwards every engine's reply to the
client as it comes::

    client DEALER sends              [DELIM, sig, header, ...]
    broadcast ROUTER receives        [client_id, DELIM, ...]
    broadcast_engine ROUTER sends    [engine_uuid, client_id, DELIM, sig', ...]   (per engine)
    broadcast ROUTER sends           [client_id, DELIM, ...reply]                 (per engine)

With ``depth >= 1`` the root's ``broadcast_engine`` socket faces *nodes* instead: processes
(:mod:`corral.scheduler.broadcast_node`) that each run a :class:`BroadcastNode`, ``fanout``
children per node, ``depth`` levels; the last level (the leaves) faces engines, each leaf a
fixed subset of them (:meth:`TreeShape.leaf_of`). The root sends one copy of a request per
child that has a targeted engine below it, each node one copy per such child, each leaf one per
engine::

    root  -> node      [node_id, client_id, DELIM, sig', ...]        (per child)
    node  -> engine    [engine_uuid, client_id, DELIM, sig'', ...]   (at a leaf, per engine)
    engine -> leaf     [engine_uuid, client_id, DELIM, ...reply]
    node  -> parent    [engine_uuid, client_id, DELIM, sig''', ...reply]
    root receives      [node_id, engine_uuid, client_id, DELIM, ...reply]

Every hop checks the signature and replay counter and decodes the header only
(:meth:`Session.route <corral.wire.session.Session.route>`), and re-signs the untouched frames
(:meth:`Session.forward <corral.wire.session.Session.forward>`). Messages the root sends a node
without a client identity are the tree's own: ``broadcast_engine_added`` and
``broadcast_engine_lost`` tell the nodes on the way to a leaf which engines it serves, and
``broadcast_node_restarted`` tells a restarted node's parent to wait for the new process.

A child is sent to once it said hello or once ZeroMQ can route to it: what it cannot take yet
waits, in order, and is tried again every :data:`RETRY_PERIOD` seconds, so children that
reconnect to a node restarted on its port need not say hello again.

Replies share the request's msg_id as their parent; their metadata's ``engine_id`` tells them
apart. The root keeps every (request, engine) pair until its reply passes: a target that is not a
live engine, an engine that leaves before replying, or one whose node process died gets an
``EngineError`` reply made there, so the client gets exactly one reply per target.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import zmq

from corral.scheduler.monitor import Monitor, NullMonitor
from corral.scheduler.relay import drain
from corral.wire import Message, MessageRejected, RawMessage, Session
from corral.wire.errors import EngineError, error_reply
from corral.wire.session import parent_msg_id

__all__ = ["BroadcastNode", "BroadcastScheduler", "TreeShape", "node_identity"]

log = logging.getLogger(__name__)

#: The tree's own messages (root to nodes), sent without a client identity.
ENGINE_ADDED = "broadcast_engine_added"
ENGINE_LOST = "broadcast_engine_lost"
#: The root tells a restarted node's parent to wait for its hello (content: ``level``, ``index``).
NODE_RESTARTED = "broadcast_node_restarted"
#: What a node says to its parent once its upward socket is connected.
NODE_HELLO = "broadcast_node_hello"
#: Seconds between attempts to reach a child that ZeroMQ cannot route to yet.
RETRY_PERIOD = 0.1
#: Seconds a leaf keeps trying an engine that never said hello before answering for it.
ENGINE_REACH_TIMEOUT = 10.0
_HELLOS = frozenset({"engine_hello", NODE_HELLO})


def node_identity(level: int, index: int) -> bytes:
    """Return the routing identity of the node at ``level`` (1 = the root's children), ``index``."""
    return f"corral-broadcast-node-{level}-{index}".encode("ascii")


@dataclass(frozen=True, slots=True)
class TreeShape:
    """The shape of a broadcast tree: ``fanout`` children per node, ``depth`` levels below the root.

    ``depth == 0`` is a single node (the root sends to engines itself). Nodes at level ``l``
    (``1 <= l <= depth``) are numbered ``0 .. fanout**l - 1``; node ``j`` of level ``l`` has
    children ``j*fanout .. j*fanout + fanout - 1`` of level ``l + 1``; the leaves are level
    ``depth``.

    Raises
    ------
    ValueError
        If ``depth`` is negative or ``fanout`` is below 2.
    """

    depth: int = 0
    fanout: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or self.depth < 0:
            raise ValueError(f"broadcast depth must be 0 (one scheduler) or a positive integer, not {self.depth!r}")
        if not isinstance(self.fanout, int) or isinstance(self.fanout, bool) or self.fanout < 2:
            raise ValueError(f"broadcast fanout must be an integer of at least 2, not {self.fanout!r}")

    @property
    def leaves(self) -> int:
        """How many leaves (1 for ``depth == 0``: the root itself)."""
        return int(self.fanout**self.depth)

    def nodes(self, level: int) -> int:
        """How many nodes level ``level`` has."""
        return int(self.fanout**level)

    def leaf_of(self, engine_id: int) -> int:
        """The leaf that serves engine ``engine_id``: engines are dealt round-robin by id."""
        return engine_id % self.leaves

    def child_toward(self, level: int, leaf: int) -> int:
        """The index (at ``level + 1``) of the child of a level-``level`` node on the way to ``leaf``."""
        return leaf // int(self.fanout ** (self.depth - level - 1))

    def leaves_under(self, level: int, index: int) -> range:
        """The leaves below (or at) node ``index`` of ``level``."""
        width = int(self.fanout ** (self.depth - level))
        return range(index * width, (index + 1) * width)


def _targets(header: Mapping[str, Any]) -> list[Any] | None:
    sched = header.get("sched")
    targets = sched.get("targets") if isinstance(sched, dict) else None
    if targets is None:
        return None
    if not isinstance(targets, list):
        targets = [targets]
    return targets


def _place(identity: bytes) -> tuple[int, int] | None:
    """The (level, index) of a node's :func:`node_identity`, or None if it is not one."""
    prefix, _, rest = identity.decode("ascii", errors="replace").rpartition("-")
    head, _, level = prefix.rpartition("-")
    if head != "corral-broadcast-node" or not level.isdigit() or not rest.isdigit():
        return None
    return int(level), int(rest)


def _is_id(t: Any) -> bool:
    return isinstance(t, int) and not isinstance(t, bool)


class _Downstream:
    """A ROUTER's peers (engines or nodes) and what waits until they can be reached.

    Each queued send returns True when it is done (sent, or answered for) and False when
    ZeroMQ cannot route to the peer yet; it then stays first in line and the peer counts as
    unreachable until it says hello or :meth:`retry` gets it through. So a freshly connected (or
    reconnected) engine or node never loses a request to "host unreachable", and order is kept.
    """

    def __init__(self, on_hello: Callable[[bytes], None] | None = None) -> None:
        self.connected: set[bytes] = set()
        self.waiting: dict[bytes, deque[Callable[[], bool]]] = {}
        self.on_hello = on_hello

    def hello(self, peer: bytes) -> None:
        self.connected.add(peer)
        if self.on_hello is not None:
            self.on_hello(peer)
        self.flush(peer)

    def flush(self, peer: bytes) -> None:
        queue = self.waiting.get(peer)
        while queue:
            if not queue[0]():
                self.connected.discard(peer)
                return
            queue.popleft()
        self.waiting.pop(peer, None)
        self.connected.add(peer)

    def retry(self) -> None:
        for peer in list(self.waiting):
            self.flush(peer)

    def send(self, peer: bytes, send: Callable[[], bool]) -> None:
        if peer in self.connected and peer not in self.waiting:
            if send():
                return
            self.connected.discard(peer)
        self.waiting.setdefault(peer, deque()).append(send)

    def forget(self, peer: bytes) -> None:
        self.connected.discard(peer)
        self.waiting.pop(peer, None)


def _send_control(
    session: Session, socket: zmq.Socket[Any], child: bytes, msg_type: str, content: Mapping[str, Any]
) -> bool:
    """Send a control message to the child node ``child``; False if it is unreachable now."""
    try:
        session.send(socket, msg_type, content, ident=[child])
    except zmq.ZMQError as err:
        if _unreachable(err):
            return False
        log.warning("could not tell broadcast node %r of %s: %s", child, msg_type, err)
    return True


def _unreachable(err: zmq.ZMQError) -> bool:
    return err.errno == zmq.EHOSTUNREACH


class BroadcastScheduler:
    """The root: send each ``broadcast`` request to every engine it names, and each reply back.

    Parameters
    ----------
    session
        The controller's session.
    client_socket, engine_socket
        Bound ROUTER sockets facing clients (``broadcast``) and engines or, with a tree, the
        root's child nodes (``broadcast_engine``).
    monitor
        The hub, told of engines' hellos. Broadcast requests are not kept in the hub's result
        store (one msg_id has one reply per engine there is no record for).
    shape
        The tree below the root (default: none, the root sends to engines itself).
    """

    channel = "broadcast"

    def __init__(
        self,
        session: Session,
        client_socket: zmq.Socket[Any],
        engine_socket: zmq.Socket[Any],
        monitor: Monitor | None = None,
        shape: TreeShape | None = None,
    ) -> None:
        self.session = session
        self.client_socket = client_socket
        self.engine_socket = engine_socket
        self.monitor: Monitor = monitor or NullMonitor()
        self.shape = shape or TreeShape()
        #: live engines: uuid bytes -> engine id
        self.engines: dict[bytes, int] = {}
        #: engines whose broadcast_engine socket said hello (depth 0)
        self.connected: set[bytes] = set()
        #: (msg_id, engine uuid) -> (client, request header), for requests without a reply yet
        self.pending: dict[tuple[str, bytes], tuple[bytes, Mapping[str, Any]]] = {}
        #: replies dropped because no request of theirs was pending (late or unknown)
        self.dropped: Counter[str] = Counter()
        #: "requests" taken from clients, "copies" sent down, "replies" sent to clients
        self.counts: Counter[str] = Counter()
        #: nodes whose process is gone (level, index) -> why; their leaves' engines are failed
        self.dead_nodes: dict[tuple[int, int], str] = {}
        self._children = _Downstream(self._child_hello)
        for sock in (client_socket, engine_socket):
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
        # a restarted node (or engine) reconnects under its identity before its old connection is
        # noticed gone: the new connection takes the identity over instead of being refused
        engine_socket.setsockopt(zmq.ROUTER_HANDOVER, 1)

    def register(self, reactor: Any) -> None:
        """Start relaying on ``reactor`` (a :class:`corral.wire.loop.Reactor`)."""
        reactor.add_socket(self.client_socket, self._from_clients)
        reactor.add_socket(self.engine_socket, self._from_engines)
        if self.shape.depth:
            reactor.call_every(RETRY_PERIOD, self._children.retry)

    @property
    def children_connected(self) -> set[bytes]:
        """The child nodes that said hello (with a tree)."""
        return set(self._children.connected)

    def _child_of(self, engine_id: int) -> bytes:
        return node_identity(1, self.shape.child_toward(0, self.shape.leaf_of(engine_id)))

    def add_engine(self, uuid: bytes, engine_id: int) -> None:
        """Include ``uuid`` in broadcasts (with a tree: tell the nodes on the way to its leaf)."""
        self.engines[uuid] = engine_id
        if self.shape.depth:
            content = {"uuid": uuid.decode(), "id": engine_id, "leaf": self.shape.leaf_of(engine_id)}
            self._control(self._child_of(engine_id), ENGINE_ADDED, content)

    def engine_lost(self, uuid: bytes, reason: str = "left") -> None:
        """``uuid`` is gone: answer each request it had not replied to with :class:`EngineError`."""
        engine_id = self.engines.pop(uuid, None)
        self.connected.discard(uuid)
        if self.shape.depth and engine_id is not None:
            self._control(self._child_of(engine_id), ENGINE_LOST, {"uuid": uuid.decode()})
        self._fail_pending(uuid, engine_id, reason)

    def node_lost(self, level: int, index: int, reason: str) -> None:
        """A node process is gone: fail what its engines owe, and every later request for them."""
        self.dead_nodes[(level, index)] = reason
        if level == 1:
            self._children.forget(node_identity(1, index))  # what waited for it was failed here
        below = self.shape.leaves_under(level, index)
        for uuid, engine_id in list(self.engines.items()):
            if self.shape.leaf_of(engine_id) in below:
                self._fail_pending(uuid, engine_id, f"is unreachable: {reason}")

    def node_restarted(self, level: int, index: int) -> None:
        """A node's process was started again on its port: its engines are served again.

        Requests for them queue until the new process can take them: at the root until a
        level-1 node says hello (the root then tells it of its engines again), at the parent of
        a deeper node, which is told here to wait for the new process's hello.
        """
        self.dead_nodes.pop((level, index), None)
        if level == 1:
            return
        leaf = self.shape.leaves_under(level, index)[0]
        self._control(
            node_identity(1, self.shape.child_toward(0, leaf)), NODE_RESTARTED, {"level": level, "index": index}
        )

    def _dead(self, leaf: int) -> str | None:
        """Why ``leaf`` cannot be reached (a node on the way to it is gone), or None."""
        shape = self.shape
        for level in range(1, shape.depth + 1):
            why = self.dead_nodes.get((level, leaf // shape.fanout ** (shape.depth - level)))
            if why is not None:
                return why
        return None

    def _child_hello(self, child: bytes) -> None:
        """A child node said hello: (again) tell it of every engine below it."""
        place = _place(child)
        if place is None or place[0] != 1 or not 0 <= place[1] < self.shape.nodes(1):
            self.session.reject("broadcast_engine", MessageRejected("malformed", f"hello from {child!r}"))
            return
        level, index = place
        below = self.shape.leaves_under(level, index)
        for uuid, engine_id in self.engines.items():
            leaf = self.shape.leaf_of(engine_id)
            if leaf in below:
                content = {"uuid": uuid.decode(), "id": engine_id, "leaf": leaf}
                _send_control(self.session, self.engine_socket, child, ENGINE_ADDED, content)

    def _fail_pending(self, uuid: bytes, engine_id: int | None, reason: str) -> None:
        for key in [k for k in self.pending if k[1] == uuid]:
            client, header = self.pending.pop(key)
            what = header.get("msg_type", "request")
            self._fail(
                client,
                header,
                uuid,
                engine_id,
                f"engine {engine_id} {reason} while {key[0]} ({what}) was queued or running",
            )

    def _control(self, child: bytes, msg_type: str, content: dict[str, Any]) -> None:
        self._children.send(child, partial(_send_control, self.session, self.engine_socket, child, msg_type, content))

    def _fail(self, client: bytes, header: Mapping[str, Any], uuid: bytes, engine_id: int | None, reason: str) -> None:
        info: dict[str, Any] = {"engine_uuid": uuid.decode(errors="replace")}
        if engine_id is not None:
            info["engine_id"] = engine_id
        msg_type, content, metadata = error_reply(EngineError("EngineError", reason), dict(header), info)  # type: ignore[arg-type]
        try:
            self.session.send(
                self.client_socket, msg_type, content, parent=dict(header), ident=[client], metadata=metadata
            )
        except zmq.ZMQError:
            log.info("client of broadcast %s left before its reply could be sent", header.get("msg_id"))

    def _from_clients(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel="broadcast")
            except MessageRejected:
                continue
            if len(raw.idents) != 1:
                session.reject("broadcast", MessageRejected("malformed", "a broadcast needs exactly one identity"))
                continue
            self.counts["requests"] += 1
            client = raw.idents[0]
            targets = _targets(raw.header)
            if targets is None:
                # live engines: their sockets are connected (a live engine said hello on mux and
                # control after connecting all four), and an unreachable one is answered below
                chosen = sorted(self.engines, key=self.engines.__getitem__)
                missing: list[Any] = []
            else:
                by_id = {i: u for u, i in self.engines.items()}
                chosen = [by_id[t] for t in targets if _is_id(t) and t in by_id]
                missing = [t for t in targets if not (_is_id(t) and t in by_id)]
            header = raw.header
            for target in missing:
                self._fail(client, header, b"", None, f"engine {target!r} is not registered")
            if self.shape.depth:
                self._to_children(raw, client, chosen)
            else:
                self._to_engines(raw, client, chosen)

    def _to_engines(self, raw: RawMessage, client: bytes, chosen: list[bytes]) -> None:
        msg_id = raw.msg_id
        header = raw.header
        for engine in chosen:
            self.pending[(msg_id, engine)] = (client, header)
            try:
                self.session.forward(self.engine_socket, raw, idents=[engine, client])
                self.counts["copies"] += 1
            except zmq.ZMQError as err:
                self.pending.pop((msg_id, engine), None)
                self._fail(
                    client,
                    header,
                    engine,
                    self.engines.get(engine),
                    f"engine {self.engines.get(engine)} is unreachable ({err})",
                )

    def _to_children(self, raw: RawMessage, client: bytes, chosen: list[bytes]) -> None:
        msg_id = raw.msg_id
        header = raw.header
        children: dict[bytes, None] = {}
        for engine in chosen:
            engine_id = self.engines[engine]
            dead = self._dead(self.shape.leaf_of(engine_id)) if self.dead_nodes else None
            if dead is not None:
                self._fail(client, header, engine, engine_id, f"engine {engine_id} is unreachable: {dead}")
                continue
            self.pending[(msg_id, engine)] = (client, header)
            children[self._child_of(engine_id)] = None
        for child in children:
            self._children.send(child, partial(self._forward_down, raw, child, client))

    def _forward_down(self, raw: RawMessage, child: bytes, client: bytes) -> bool:
        try:
            self.session.forward(self.engine_socket, raw, idents=[child, client])
        except zmq.ZMQError as err:
            if _unreachable(err):
                return False  # not connected (yet, or again): it waits; a dead node is failed
            log.warning("could not send broadcast %s to node %r: %s", raw.msg_id, child, err)
            return True
        self.counts["copies"] += 1
        return True

    def _from_engines(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        tree = bool(self.shape.depth)
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel="broadcast_engine")
            except MessageRejected:
                continue
            if raw.msg_type in _HELLOS:
                peer = raw.idents[0] if raw.idents else b""
                if raw.msg_type == NODE_HELLO:
                    self._children.hello(peer)
                else:
                    self.monitor.hello("broadcast", peer)
                    self.connected.add(peer)
                continue
            idents = raw.idents[1:] if tree else raw.idents
            if len(idents) != 2:
                session.reject(
                    "broadcast_engine", MessageRejected("malformed", "a reply needs engine and client identities")
                )
                continue
            engine, client = idents
            msg_id = parent_msg_id(raw)
            if msg_id is None or self.pending.pop((msg_id, engine), None) is None:
                self.dropped["late"] += 1
                continue
            try:
                session.forward(self.client_socket, raw, idents=[client])
                self.counts["replies"] += 1
            except zmq.ZMQError:
                log.info("client of broadcast %s left before its reply could be sent", msg_id)


class BroadcastNode:
    """An inner node or a leaf of the broadcast tree (one per process, see :mod:`.broadcast_node`).

    Parameters
    ----------
    session
        A session with the cluster's key (its own session id, so replay counters are per hop).
    up
        A DEALER connected to the parent (the root's ``broadcast_engine`` socket, or a node's
        ``down``), identity :func:`node_identity` of ``level``, ``index``.
    down
        A bound ROUTER facing the children: nodes, or engines at a leaf.
    shape, level, index
        The tree and this node's place in it (``1 <= level <= shape.depth``).

    Raises
    ------
    ValueError
        If ``level`` or ``index`` is outside ``shape``.
    """

    def __init__(
        self,
        session: Session,
        up: zmq.Socket[Any],
        down: zmq.Socket[Any],
        *,
        shape: TreeShape,
        level: int,
        index: int,
    ) -> None:
        if not 1 <= level <= shape.depth:
            raise ValueError(f"a broadcast node's level must be 1..{shape.depth}, not {level}")
        if not 0 <= index < shape.nodes(level):
            raise ValueError(f"level {level} has nodes 0..{shape.nodes(level) - 1}, not {index}")
        self.session = session
        self.up = up
        self.down = down
        self.shape = shape
        self.level = level
        self.index = index
        self.leaf = level == shape.depth
        #: engines below this node: uuid -> id
        self.engines: dict[bytes, int] = {}
        self._by_id: dict[int, bytes] = {}
        #: "requests" from the parent, "copies" sent down, "replies" sent up, "errors" made here
        self.counts: Counter[str] = Counter()
        self._peers = _Downstream(None if self.leaf else self._child_hello)
        self._timer: Any = None
        for sock in (up, down):
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.RCVHWM, 0)
        down.setsockopt(zmq.ROUTER_MANDATORY, 1)
        down.setsockopt(zmq.ROUTER_HANDOVER, 1)

    @property
    def connected(self) -> set[bytes]:
        """The children (engines or nodes) that said hello or could be reached."""
        return set(self._peers.connected)

    def register(self, reactor: Any) -> None:
        """Serve on ``reactor`` and say hello to the parent."""
        reactor.add_socket(self.up, self._from_parent)
        reactor.add_socket(self.down, self._from_children)
        self._timer = reactor.call_every(RETRY_PERIOD, self._peers.retry)
        self.session.send(self.up, NODE_HELLO, {"level": self.level, "index": self.index})

    def unregister(self, reactor: Any) -> None:
        """Stop serving on ``reactor`` (the sockets stay open for their owner to close)."""
        reactor.remove_socket(self.up)
        reactor.remove_socket(self.down)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _child_hello(self, child: bytes) -> None:
        """A child node said hello: (again) tell it of every engine below it."""
        place = _place(child)
        if place is None or place[0] != self.level + 1:
            self.session.reject("broadcast_engine", MessageRejected("malformed", f"hello from {child!r}"))
            return
        below = self.shape.leaves_under(*place)
        for uuid, engine_id in self.engines.items():
            leaf = self.shape.leaf_of(engine_id)
            if leaf in below:
                content = {"uuid": uuid.decode(), "id": engine_id, "leaf": leaf}
                _send_control(self.session, self.down, child, ENGINE_ADDED, content)

    def _child(self, engine_id: int) -> bytes:
        """The child node on the way to engine ``engine_id``'s leaf (inner nodes only)."""
        return node_identity(self.level + 1, self.shape.child_toward(self.level, self.shape.leaf_of(engine_id)))

    def _from_parent(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                idents, rest = session.feed_identities(frames)
            except MessageRejected as err:
                session.reject("broadcast_tree", err)
                continue
            if not idents:  # the tree's own messages: small, and read whole
                try:
                    msg = session.deserialize(rest, stream=socket, channel="broadcast_tree")
                except MessageRejected:
                    continue
                self._on_control(msg)
                continue
            try:
                raw = session.deserialize_raw(rest, stream=socket, channel="broadcast_tree", idents=idents)
            except MessageRejected:
                continue
            if len(idents) != 1:
                session.reject("broadcast_tree", MessageRejected("malformed", "a broadcast needs exactly one identity"))
                continue
            self.counts["requests"] += 1
            self._request(raw, idents[0])

    def _on_control(self, msg: Message) -> None:
        if msg.msg_type == NODE_RESTARTED:
            self._node_restarted(msg)
            return
        uuid_s = msg.content.get("uuid")
        if not isinstance(uuid_s, str):
            self.session.reject("broadcast_tree", MessageRejected("malformed", f"{msg.msg_type} without a uuid"))
            return
        uuid = uuid_s.encode()
        if msg.msg_type == ENGINE_ADDED:
            engine_id = msg.content.get("id")
            if not isinstance(engine_id, int) or isinstance(engine_id, bool):
                self.session.reject("broadcast_tree", MessageRejected("malformed", "engine id is not an integer"))
                return
            self.engines[uuid] = engine_id
            self._by_id[engine_id] = uuid
            if not self.leaf:
                self._relay_control(self._child(engine_id), msg)
        elif msg.msg_type == ENGINE_LOST:
            engine_id = self.engines.pop(uuid, None)
            if engine_id is None:
                return
            self._by_id.pop(engine_id, None)
            if self.leaf:
                self._peers.forget(uuid)  # the root answered what the engine owed
            else:
                self._relay_control(self._child(engine_id), msg)
        else:
            log.debug("broadcast node ignores %s", msg.msg_type)

    def _node_restarted(self, msg: Message) -> None:
        level, index = msg.content.get("level"), msg.content.get("index")
        if not isinstance(level, int) or not isinstance(index, int) or level <= self.level or self.leaf:
            self.session.reject("broadcast_tree", MessageRejected("malformed", f"{msg.msg_type} {msg.content!r}"))
            return
        child_index = index // self.shape.fanout ** (level - self.level - 1)
        child = node_identity(self.level + 1, child_index)
        if level == self.level + 1:
            # the old process's queue was answered for by the root; wait for the new one's hello
            self._peers.forget(child)
        else:
            self._relay_control(child, msg)

    def _relay_control(self, child: bytes, msg: Message) -> None:
        self._peers.send(child, partial(_send_control, self.session, self.down, child, msg.msg_type, msg.content))

    def _request(self, raw: RawMessage, client: bytes) -> None:
        targets = _targets(raw.header)
        if targets is None:
            ids = sorted(self.engines.values())
        else:
            ids = list(dict.fromkeys(t for t in targets if _is_id(t) and t in self._by_id))
        if self.leaf:
            for engine_id in ids:
                engine = self._by_id[engine_id]
                self._peers.send(engine, partial(self._to_engine, raw, engine, client, time.monotonic()))
            return
        for child in dict.fromkeys(self._child(i) for i in ids):
            self._peers.send(child, partial(self._to_child, raw, child, client))

    def _to_child(self, raw: RawMessage, child: bytes, client: bytes) -> bool:
        try:
            self.session.forward(self.down, raw, idents=[child, client])
        except zmq.ZMQError as err:
            if _unreachable(err):
                return False  # reconnecting: it waits (a dead child's is failed by the root)
            log.warning("could not send broadcast %s to node %r: %s", raw.msg_id, child, err)
            return True
        self.counts["copies"] += 1
        return True

    def _to_engine(self, raw: RawMessage, engine: bytes, client: bytes, since: float) -> bool:
        try:
            self.session.forward(self.down, raw, idents=[engine, client])
        except zmq.ZMQError as err:
            if _unreachable(err) and time.monotonic() - since < ENGINE_REACH_TIMEOUT:
                return False  # not (re)connected yet: try again shortly
            engine_id = self.engines.get(engine)
            info: dict[str, Any] = {"engine_uuid": engine.decode(errors="replace")}
            if engine_id is not None:
                info["engine_id"] = engine_id
            header = dict(raw.header)
            reason = f"engine {engine_id} is unreachable ({err})"
            msg_type, content, metadata = error_reply(EngineError("EngineError", reason), header, info)  # type: ignore[arg-type]
            self.counts["errors"] += 1
            try:
                self.session.send(self.up, msg_type, content, parent=header, ident=[engine, client], metadata=metadata)
            except zmq.ZMQError:  # pragma: no cover - a DEALER queues
                log.warning("could not send the error for broadcast %s up", raw.msg_id)
            return True
        self.counts["copies"] += 1
        return True

    def _from_children(self, socket: zmq.Socket[Any]) -> None:
        session = self.session
        for frames in drain(socket):
            try:
                raw = session.route(frames, stream=socket, channel="broadcast_engine")
            except MessageRejected:
                continue
            if raw.msg_type in _HELLOS:
                if raw.idents:
                    self._peers.hello(raw.idents[0])
                continue
            idents = raw.idents if self.leaf else raw.idents[1:]
            if len(idents) != 2:
                session.reject(
                    "broadcast_engine", MessageRejected("malformed", "a reply needs engine and client identities")
                )
                continue
            try:
                session.forward(self.up, raw, idents=idents)
                self.counts["replies"] += 1
            except zmq.ZMQError as err:  # pragma: no cover - a DEALER queues
                log.warning("could not send a broadcast reply up: %s", err)
