"""Hostile traffic on every port of the connection file: dropped, counted, logged, never run.

Issue 7's "hostile and broken traffic" bullet, port by port. For every channel a peer can send
to, a raw ZeroMQ socket of the kind a real peer uses (DEALER to a ROUTER, PUB to the SUB)
sends each kind of bad message:

- ``unsigned``: a well-formed message without a MAC;
- ``wrong_key``: signed with another cluster's key;
- ``replayed``: correctly signed with the cluster key and sent twice (the first copy is a real
  request and runs; the second is the replay);
- ``garbage``: random frames without the ``<IDS|MSG>`` delimiter;
- ``truncated_frames``: a signed message missing its last frame;
- ``short_signature``: a signed message whose signature frame is cut short;
- ``tampered_buffer``: a correctly signed ``apply_request`` whose pickled buffer is altered after
  signing (the relays check the MAC, which covers the buffer digests; the engine that would
  unpack the buffer finds it does not match its digest).

Every request is an apply of a function that, if it ever ran, appends its tag to a marker file
and sets a name in the engine's namespace. The tests check that nothing ran (only the first
copy of each replayed request), that each drop is counted under its socket's channel and
reason in ``rc.drop_counts()`` and ``corral drops``, that the controller logs at most one line
a second per (channel, reason) and no traceback, that a tampered request is answered with an
error (so nothing waits for it forever), and that the cluster keeps serving. A peer without the
gate token is refused at the handshake; frames too large for a socket are refused, from a peer
that never authenticated, before the controller allocates them.

One case per port, all on the session's shared cluster (one more cluster for the frame limit
of the data channels); every check compares counts before and after.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import socket
import struct
import time
import warnings
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zmq
import zmq.utils.monitor

from corral.client import interactive
from corral.cluster.controller import DATA_CHANNELS, SOCKET_TYPES
from corral.wire import MessageRejected, Session, read_connection_file
from corral.wire.gate import admit
from corral.wire.serialize import pack_apply_message
from corral.wire.session import DEFAULT_MAX_FRAME_SIZE, InsecureSessionWarning

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conftest import CLI

    from corral.client import Client
    from corral.cluster import Cluster

pytestmark = pytest.mark.timeout(120)

#: What a peer connects to each kind of controller socket with; PUB and XPUB take in nothing
#: but subscriptions, so no message can be sent to them.
PEER_KINDS = {zmq.ROUTER: zmq.DEALER, zmq.SUB: zmq.PUB}

#: Every channel of the connection file a peer can send messages to.
SENDABLE = sorted(channel for channel, kind in SOCKET_TYPES.items() if kind in PEER_KINDS)

#: The reason each kind of bad message is counted under.
REASONS = {
    "unsigned": "unsigned",
    "wrong_key": "bad_signature",
    "replayed": "replayed",
    "garbage": "malformed",
    "truncated_frames": "malformed",
    "short_signature": "malformed",
    "tampered_buffer": "tampered_buffer",
}

#: Channels whose requests reach an engine: a tampered buffer is caught (and counted) there.
TO_ENGINES = ("mux", "task", "broadcast", "control")

#: Channels on which the first copy of a replayed request runs on an engine.
RUNS = ("mux", "task", "broadcast")

#: What tells a peer how its handshake went: admitted, refused, or hung up on.
HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
)

#: Copies of each bad message: enough that an unlimited log would show several lines a second.
COPIES = 5


@interactive
def leave_mark(path: str, tag: str) -> str:
    """What every hostile request asks an engine to run: visible if it ever runs."""
    with open(path, "a") as out:
        out.write(tag + "\n")
    globals()["hostile_" + tag.replace("-", "_")] = True
    return tag


@interactive
def hostile_names() -> list[str]:
    return sorted(name for name in globals() if name.startswith("hostile_") and name != "hostile_names")


@interactive
def forget_hostile_names() -> None:
    for name in [n for n in globals() if n.startswith("hostile_") and n != "hostile_names"]:
        del globals()[name]


def cases() -> list[tuple[str, str]]:
    """Every (channel, kind) that makes sense: tampered buffers only where a buffer is unpacked."""
    found = []
    for channel in SENDABLE:
        for kind in REASONS:
            if kind == "tampered_buffer" and channel not in (*TO_ENGINES, "registration", "heartbeat_pong"):
                continue  # replies and output: checked by the client that unpacks them, not here
            found.append((channel, kind))
    return found


CASES = frozenset(cases())


def expected(channel: str, kind: str) -> tuple[str, str]:
    """Where a drop of ``kind`` on ``channel`` is counted: ("controller" or "engines", reason)."""
    if channel == "heartbeat_pong":
        return "controller", "malformed"  # pongs are raw echoes: anything else is no pong
    if kind == "tampered_buffer" and channel in TO_ENGINES:
        return "engines", "tampered_buffer"
    return "controller", REASONS[kind]


def apply_frames(session: Session, channel: str, uuid: str, marker: Path, tag: str) -> list[bytes]:
    """A signed apply_request of :func:`leave_mark`, addressed as a real peer on ``channel`` would."""
    msg = session.msg("apply_request", {"serializer": "pickle"})
    if channel == "broadcast":
        msg.header["sched"] = {"targets": [0]}
    idents: list[bytes] = []
    if channel in ("mux", "control"):
        idents = [uuid.encode()]  # the engine the request is for
    elif channel.endswith("_engine") and channel != "iopub_engine":
        idents = [b"a-client-nobody-knows"]  # an engine's reply names its client
    buffers = pack_apply_message(leave_mark, (str(marker), tag), {})
    return [bytes(f) for f in session.serialize(msg, buffers, idents)]


def bad_messages(kind: str, channel: str, key: bytes, uuid: str, marker: Path, tag: str) -> list[list[bytes]]:
    """The frames of every message a peer sends for one case."""
    if kind == "unsigned":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureSessionWarning)
            unsigned = Session(b"")
        return [apply_frames(unsigned, channel, uuid, marker, tag) for _ in range(COPIES)]
    if kind == "wrong_key":
        stranger = Session(os.urandom(32))
        return [apply_frames(stranger, channel, uuid, marker, tag) for _ in range(COPIES)]
    if kind == "replayed":
        frames = apply_frames(Session(key), channel, uuid, marker, tag)
        return [frames] * (COPIES + 1)  # the first is genuine; the other COPIES are replays
    if kind == "garbage":
        # no frame is 9 bytes long, so none can be the delimiter
        return [[os.urandom(47), os.urandom(3), os.urandom(200)] for _ in range(COPIES)]
    session = Session(key)
    out = []
    for _ in range(COPIES):
        frames = apply_frames(session, channel, uuid, marker, tag)
        at = frames.index(b"<IDS|MSG>") + 1  # the signature frame follows the delimiter (protocol.md)
        if kind == "truncated_frames":
            frames = frames[:-1]
        elif kind == "short_signature":
            frames[at] = frames[at][:20]
        else:  # tampered_buffer: the pickled call, found by its bytes, has one byte changed after signing
            pickled = bytes(pack_apply_message(leave_mark, (str(marker), tag), {})[0])
            at = frames.index(pickled)
            changed = bytearray(pickled)
            changed[len(changed) // 2] ^= 0xFF
            frames[at] = bytes(changed)
        out.append(frames)
    return out


def flatten(counts: dict[str, Any]) -> Counter[tuple[str, str, str]]:
    """``rc.drop_counts()`` as a Counter of (where, channel, reason); engines summed."""
    flat: Counter[tuple[str, str, str]] = Counter()
    for channel, reasons in counts["controller"].items():
        for reason, n in reasons.items():
            flat["controller", channel, reason] += n
    for per_engine in counts["engines"].values():
        for channel, reasons in per_engine.items():
            for reason, n in reasons.items():
                flat["engines", channel, reason] += n
    return flat


def connect_peer(ctx: zmq.Context[Any], channel: str, info: Any, key: bytes | None) -> zmq.Socket[Any]:
    """A raw socket of the right kind connected to ``channel``; with ``key``, it passes the gate."""
    peer = ctx.socket(PEER_KINDS[SOCKET_TYPES[channel]])
    peer.setsockopt(zmq.LINGER, 0)
    if key is not None:
        admit(peer, key)
    peer.connect(f"tcp://{info['ip']}:{info['ports'][channel]}")
    return peer


def log_lines(path: Path, offset: int) -> list[str]:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace").splitlines()


def send_bad_messages(
    peer: zmq.Socket[Any], channel: str, key: bytes, uuid: str, marker: Path
) -> Counter[tuple[str, str, str]]:
    """Send every kind of bad message that applies to ``channel``; return the drops each must cause."""
    want: Counter[tuple[str, str, str]] = Counter()
    for kind in REASONS:
        if (channel, kind) not in CASES:
            continue
        messages = bad_messages(kind, channel, key, uuid, marker, f"{kind}-{channel}")
        for frames in messages:
            peer.send_multipart(frames)
        where, reason = expected(channel, kind)
        genuine = 1 if kind == "replayed" and channel != "heartbeat_pong" else 0  # no pong is genuine
        want[where, channel, reason] += len(messages) - genuine
    return want


def refusals(peer: zmq.Socket[Any], key: bytes) -> int:
    """Read replies on ``peer`` for a few seconds; return how many refuse a tampered request."""
    reader = Session(key)
    found = 0
    deadline = time.monotonic() + 10
    while found < COPIES and peer.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        try:
            reply = reader.recv(peer)
        except MessageRejected:
            continue
        if reply.content.get("ename") == "MessageRejected" and "tampered_buffer" in reply.content.get("evalue", ""):
            found += 1
    return found


def nothing_outstanding(rc: Client) -> bool:
    status = rc.queue_status()
    return status["unassigned"] == 0 and all(
        v["queue"] == 0 and v["tasks"] == 0 for k, v in status.items() if k != "unassigned"
    )


def wait_counted(
    rc: Client, before: Counter[tuple[str, str, str]], want: Counter[tuple[str, str, str]]
) -> Counter[tuple[str, str, str]]:
    """Wait until ``rc.drop_counts()`` shows ``want`` on top of ``before``; return the counts then."""
    deadline = time.monotonic() + 30
    while True:
        now = flatten(rc.drop_counts())
        short = {k: (now[k] - before[k], n) for k, n in want.items() if now[k] - before[k] < n}
        if not short:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"not counted within 30 s, (where, channel, reason): (counted, sent): {short}")
        time.sleep(0.05)


@pytest.mark.parametrize("channel", SENDABLE)
def test_bad_messages_on_a_port_are_dropped_counted_logged_and_never_run(
    channel: str, cluster: Cluster, rc: Client, tmp_path: Path, wait_until: Callable[..., Any], cli: CLI
) -> None:
    info = read_connection_file(cluster.connection_file)
    key = Session(info["key"]).key
    uuid = rc._engines.uuid(0)
    assert uuid is not None
    marker = tmp_path / "ran.txt"
    controller_log = cluster.log_dir / "controller.log"
    log_offsets = {p: p.stat().st_size for p in [controller_log, *cluster.log_dir.glob("engine*.log")]}
    before = flatten(rc.drop_counts())
    ctx = zmq.Context()
    peer = connect_peer(ctx, channel, info, key)
    try:
        if SOCKET_TYPES[channel] == zmq.SUB:
            time.sleep(1.0)  # a SUB hears a PUB only once its subscription has reached the PUB
        want = send_bad_messages(peer, channel, key, uuid, marker)
        after = wait_counted(rc, before, want)
        if channel in TO_ENGINES:
            # a request altered on the way is not run, but answered: nobody waits for it forever
            assert refusals(peer, key) >= COPIES, "each tampered request was answered with an error"
            wait_until(lambda: nothing_outstanding(rc), "no engine holds a request that will never finish")
        # only the genuine first copy of a replayed request ran, and only where requests run
        genuine = [f"replayed-{channel}"] if channel in RUNS else []
        if genuine:
            wait_until(marker.exists, "the genuine copy of the replayed request ran")
        # one more round trip through every engine's queues: anything queued has run by now
        assert rc[:].apply_sync(sum, [1, 2]) == [3] * len(rc.ids)
        assert rc.load_balanced_view().map_sync(abs, range(-8, 0)) == list(range(8, 0, -1))
        ran = marker.read_text().split() if marker.exists() else []
        assert ran == genuine, "nothing but the genuine copy of a replayed request ran"
        seen = sorted({name for names in rc[:].apply_sync(hostile_names) for name in names})
        assert seen == ["hostile_" + g.replace("-", "_") for g in genuine], "engine namespaces untouched"
    finally:
        peer.close(linger=0)
        ctx.term()
        rc[:].apply_sync(forget_hostile_names)

    # exactly the copies were counted, and the CLI shows the same counts
    final = flatten(rc.drop_counts())
    extra = {k: final[k] - before[k] - n for k, n in want.items() if final[k] - before[k] != n}
    assert not extra, f"counted more than was sent: {extra}"
    out = cli("drops", "--cluster-id", cluster.cluster_id, "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    for where, chan, reason in want:
        if where == "controller":
            assert shown[chan][reason] >= after[where, chan, reason], (chan, reason, shown)
        else:
            total = sum(e.get(chan, {}).get(reason, 0) for e in shown["engines"].values())
            assert total >= after[where, chan, reason], (chan, reason, shown)

    # logs: each (channel, reason) at most once a second, and no traceback in any process
    stamps: dict[str, list[datetime]] = {}
    for path, offset in log_offsets.items():
        lines = log_lines(path, offset)
        assert not any("Traceback" in line for line in lines), f"a traceback in {path.name}"
        if path != controller_log:
            continue
        for line in lines:
            found = re.search(rf"dropped a message on {channel}: .* \(\d+ (\w+) so far\)$", line)
            if found:
                stamps.setdefault(found[1], []).append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f"))
    logged = {reason for where, _, reason in want if where == "controller"}
    assert logged <= set(stamps), f"drops on {channel} not logged at all: {logged - set(stamps)}"
    for reason, times in stamps.items():
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert all(gap >= 0.99 for gap in gaps), f"({channel}, {reason}) logged more than once a second: {gaps}"


@pytest.mark.parametrize(
    "credentials",
    [[], [(zmq.PLAIN_USERNAME, b"corral"), (zmq.PLAIN_PASSWORD, b"0" * 64)]],
    ids=["no-credentials", "guessed-token"],
)
def test_peers_without_the_token_are_refused_at_the_handshake(
    credentials: list[tuple[int, bytes]], cluster: Cluster, rc: Client, tmp_path: Path
) -> None:
    info = read_connection_file(cluster.connection_file)
    key = Session(info["key"]).key
    uuid = rc._engines.uuid(0)
    assert uuid is not None
    marker = tmp_path / "ran.txt"
    ctx = zmq.Context()
    stranger = ctx.socket(zmq.DEALER)
    stranger.setsockopt(zmq.LINGER, 0)
    try:
        for option, value in credentials:
            stranger.setsockopt(option, value)
        events = stranger.get_monitor_socket(HANDSHAKE_EVENTS)
        stranger.connect(f"tcp://{info['ip']}:{info['ports']['mux']}")
        # a genuine, correctly signed request: only the gate stands in its way
        stranger.send_multipart(apply_frames(Session(key), "mux", uuid, marker, "no_token-mux"))
        assert events.poll(15_000), "the gate neither admitted nor refused the peer"
        event = zmq.utils.monitor.recv_monitor_message(events)
        assert event["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED, "a peer without the token passed the gate"
        stranger.disable_monitor()
        events.close(linger=0)
        assert rc[0].apply_sync(sum, [1, 2]) == 3  # the engine's queue is behind us: nothing else ran
        assert not marker.exists(), "the stranger's request ran"
    finally:
        stranger.close(linger=0)
        ctx.term()


def test_corral_drops_shows_the_controllers_and_the_engines_drops(
    cluster: Cluster, rc: Client, tmp_path: Path, cli: CLI
) -> None:
    info = read_connection_file(cluster.connection_file)
    key = Session(info["key"]).key
    uuid = rc._engines.uuid(0)
    assert uuid is not None
    before = flatten(rc.drop_counts())
    ctx = zmq.Context()
    mux = connect_peer(ctx, "mux", info, key)
    pong = connect_peer(ctx, "heartbeat_pong", info, key)
    try:
        (tampered,) = bad_messages("tampered_buffer", "mux", key, uuid, tmp_path / "ran.txt", "tampered")[:1]
        mux.send_multipart(tampered)
        pong.send_multipart([b"not", b"a", b"pong"])
        want = Counter({("engines", "mux", "tampered_buffer"): 1, ("controller", "heartbeat_pong", "malformed"): 1})
        wait_counted(rc, before, want)
    finally:
        mux.close(linger=0)
        pong.close(linger=0)
        ctx.term()
    table = cli("drops", "--cluster-id", cluster.cluster_id)
    assert table.returncode == 0, table.stderr
    assert "none of them was executed" in table.stdout
    assert re.search(r"engine 0\s+mux\s+tampered_buffer\s+[\d,]+", table.stdout), table.stdout
    assert re.search(r"controller\s+heartbeat_pong\s+malformed\s+[\d,]+", table.stdout), table.stdout


def _greet(port: int, declared: int, send: int) -> tuple[int, bool]:
    """Speak ZMTP 3.0 (PLAIN, as a client) to ``port`` without any credentials, and announce a
    handshake command frame of ``declared`` bytes; stream up to ``send`` bytes of it.

    Returns how many bytes of the frame went out before the controller closed the connection,
    and whether it did close it.
    """
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    closed = False
    try:
        greeting = b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 0]) + b"PLAIN".ljust(20, b"\0") + b"\0" + b"\0" * 31
        conn.sendall(greeting + bytes([0x06]) + struct.pack(">Q", declared))  # command, long size
        chunk = b"\0" * (1 << 20)
        deadline = time.monotonic() + 20
        while sent < send and time.monotonic() < deadline:
            try:
                conn.sendall(chunk)
            except OSError:  # reset or broken pipe: the controller hung up
                closed = True
                break
            sent += len(chunk)
        conn.settimeout(5)
        if not closed:
            try:
                while conn.recv(65536):
                    pass
                closed = True
            except TimeoutError:
                closed = False
            except OSError:
                closed = True
    finally:
        conn.close()
    return sent, closed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


OVERSIZED = 256 * 1024 * 1024  # declared; far more than any limit below


@pytest.mark.parametrize("channel", sorted(set(SOCKET_TYPES) - DATA_CHANNELS))
def test_an_oversized_frame_before_authentication_is_refused_before_allocation(
    channel: str, cluster: Cluster, rc: Client
) -> None:
    assert cluster.controller is not None
    pid = cluster.controller.pid
    port = read_connection_file(cluster.connection_file)["ports"][channel]
    rss_before = rss_mb(pid)
    sent, closed = _greet(port, OVERSIZED, OVERSIZED)
    assert closed, f"the controller kept the connection of a peer announcing a {OVERSIZED}-byte frame on {channel}"
    # the kernel's socket buffers take a few MB before the hang-up is seen; never the frame
    assert sent < OVERSIZED // 4, f"{sent} bytes of the frame went out before the controller hung up"
    growth = rss_mb(pid) - rss_before
    assert growth < 32, "the controller allocated the frame"
    print(
        f"{channel}: hung up after {sent / 2**20:.0f} MiB of a {OVERSIZED / 2**20:.0f} MiB frame; RSS {growth:+.1f} MB"
    )
    assert rc[:].apply_sync(sum, [1, 2]) == [3] * len(rc.ids)


@pytest.mark.timeout(180)
def test_the_data_channels_refuse_frames_over_max_frame_size_before_authentication(
    cluster_factory: Callable[..., tuple[Cluster, Client]],
) -> None:
    limit = 16 * 1024 * 1024
    cluster, rc = cluster_factory(1, max_frame_size=limit)
    assert cluster.controller is not None
    pid = cluster.controller.pid
    ports = read_connection_file(cluster.connection_file)["ports"]
    for channel in sorted(DATA_CHANNELS):
        rss_before = rss_mb(pid)
        sent, closed = _greet(ports[channel], OVERSIZED, OVERSIZED)
        assert closed, f"a {OVERSIZED}-byte frame announced on {channel} was not refused"
        assert sent < OVERSIZED // 4, (channel, sent)
        growth = rss_mb(pid) - rss_before
        assert growth < 32, f"the controller allocated the frame on {channel}"
        print(f"{channel} (limit {limit / 2**20:.0f} MiB): hung up after {sent / 2**20:.0f} MiB; RSS {growth:+.1f} MB")
    # admitted peers' buffers larger than the limit still pass both ways: split into frames of
    # the limit's size (the connection file names it) and joined again by the receiver
    big = 2 * limit + 12345
    with framed_client(cluster) as framed:
        assert framed[0].apply_sync(len, b"x" * big) == big
        back = framed[0].apply_sync(bytes, big)
        assert len(back) == big
        assert back.count(0) == big
    assert rc[0].apply_sync(len, b"small") == 5


@pytest.mark.parametrize("channel", sorted(DATA_CHANNELS))
def test_by_default_the_data_channels_refuse_a_gigabyte_frame_before_authentication(
    channel: str, cluster: Cluster, rc: Client
) -> None:
    # the default limit is 256 MiB (corral.wire.protocol.DEFAULT_BUFFER_FRAME_SIZE)
    assert read_connection_file(cluster.connection_file)["max_frame_size"] == 256 * 2**20
    assert cluster.controller is not None
    pid = cluster.controller.pid
    rss_before = rss_mb(pid)
    sent, closed = _greet(read_connection_file(cluster.connection_file)["ports"][channel], 2**30, OVERSIZED)
    assert closed, f"a 1 GiB frame announced on {channel} was not refused"
    assert sent < OVERSIZED // 4, (channel, sent)
    assert rss_mb(pid) - rss_before < 32, f"the controller allocated the frame on {channel}"
    assert rc[0].apply_sync(len, b"small") == 5


def test_by_default_the_data_channels_take_frames_over_64_mib_from_admitted_peers(cluster: Cluster) -> None:
    # the data channels' default limit (256 MiB) is above the control channels' (64 MiB)
    big = b"\1" * (DEFAULT_MAX_FRAME_SIZE + 1024)
    with framed_client(cluster) as framed:
        assert framed[0].apply_sync(len, big) == len(big)


@contextlib.contextmanager
def framed_client(cluster: Cluster) -> Iterator[Client]:
    """A client that sends every buffer as a frame (``CORRAL_SHM=0``), never through shared memory."""
    from corral.client import Client

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CORRAL_SHM", "0")
        client = Client(cluster.connection_file, timeout=30)
    with client:
        yield client


def _send_when_connected(peer: zmq.Socket[Any], frames: list[bytes], deadline: float) -> None:
    """Send from a ``ROUTER_MANDATORY`` peer once the engine is connected (EHOSTUNREACH before)."""
    while True:
        try:
            peer.send_multipart(frames)
            return
        except zmq.ZMQError as err:
            if err.errno != zmq.EHOSTUNREACH or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_bad_messages_on_an_engines_direct_socket_are_dropped_counted_and_never_run(
    cluster: Cluster, rc: Client, tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    # engines listen too: the socket clients send direct requests to (docs/security.md)
    info = read_connection_file(cluster.connection_file)
    key = Session(info["key"]).key
    uuid = rc._engines.uuid(0)
    assert uuid is not None
    url = wait_until(lambda: rc._io._direct_urls.get(uuid.encode()), "the engine's direct socket is known")
    marker = tmp_path / "ran.txt"
    engine_logs = {p: p.stat().st_size for p in cluster.log_dir.glob("engine*.log")}
    before = flatten(rc.drop_counts())
    ctx = zmq.Context()
    peer = ctx.socket(zmq.ROUTER)  # what a client uses
    peer.setsockopt(zmq.LINGER, 0)
    peer.setsockopt(zmq.ROUTER_MANDATORY, 1)
    peer.setsockopt(zmq.IDENTITY, b"a-hostile-client")
    admit(peer, key)
    peer.connect(url)
    deadline = time.monotonic() + 10
    want: Counter[tuple[str, str, str]] = Counter()
    try:
        for kind, reason in REASONS.items():
            messages = bad_messages(kind, "mux", key, uuid, marker, f"{kind}-direct")
            if kind == "garbage":  # a ROUTER peer's first frame names the engine
                messages = [[uuid.encode(), *frames] for frames in messages]
            for frames in messages:
                _send_when_connected(peer, frames, deadline)
            want["engines", "direct", reason] += len(messages) - (1 if kind == "replayed" else 0)
        wait_counted(rc, before, want)
        assert refusals(peer, key) >= COPIES, "each tampered request was answered with an error"
        wait_until(marker.exists, "the genuine copy of the replayed request ran")
        assert rc[:].apply_sync(sum, [1, 2]) == [3] * len(rc.ids)
        assert marker.read_text().split() == ["replayed-direct"], "nothing but the genuine request ran"
        seen = sorted({name for names in rc[:].apply_sync(hostile_names) for name in names})
        assert seen == ["hostile_replayed_direct"], "engine namespaces untouched"
    finally:
        peer.close(linger=0)
        ctx.term()
        rc[:].apply_sync(forget_hostile_names)
    final = flatten(rc.drop_counts())
    extra = {k: final[k] - before[k] - n for k, n in want.items() if final[k] - before[k] != n}
    assert not extra, f"counted more than was sent: {extra}"
    for path, offset in engine_logs.items():
        assert not any("Traceback" in line for line in log_lines(path, offset)), f"a traceback in {path.name}"


def test_a_peer_without_the_token_is_refused_by_an_engines_direct_socket(cluster: Cluster, rc: Client) -> None:
    uuid = rc._engines.uuid(0)
    assert uuid is not None
    url = rc._io._direct_urls[uuid.encode()]
    ctx = zmq.Context()
    peer = ctx.socket(zmq.ROUTER)
    peer.setsockopt(zmq.LINGER, 0)
    peer.setsockopt(zmq.ROUTER_MANDATORY, 1)
    monitor = peer.get_monitor_socket(HANDSHAKE_EVENTS)
    try:
        peer.connect(url)
        assert monitor.poll(10_000), "no handshake event"
        event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
        assert event != zmq.EVENT_HANDSHAKE_SUCCEEDED, "a peer without the token was admitted"
        with pytest.raises(zmq.ZMQError):
            peer.send_multipart([uuid.encode(), b"<IDS|MSG>", b"x"])
    finally:
        peer.disable_monitor()
        monitor.close(linger=0)
        peer.close(linger=0)
        ctx.term()
