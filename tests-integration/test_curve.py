"""CurveZMQ: on by default off loopback, forced with curve=True / --curve, and what it refuses.

A cluster that binds a non-loopback address runs inside a private network namespace
(``unshare -n`` with a veth pair), so its traffic never leaves this test; that needs root (or
user namespaces) and iproute2, and the test is skipped with the reason where they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from corral.client import Client, interactive
from corral.wire import ConnectionFileError, Session, harden, read_connection_file
from corral.wire.connection import channel_url
from corral.wire.gate import admit, curve_server_keys

pytestmark = pytest.mark.timeout(180)

PEERS = Path(__file__).parent / "peers"


def _answered(info: Any, setup: Callable[[zmq.Socket[Any], bytes], Any]) -> bool:
    """Send a signed connection_request on the registration channel; True if the hub replied."""
    session = Session(info["key"], scheme=info["signature_scheme"])
    ctx: zmq.Context[Any] = zmq.Context()
    sock = harden(ctx.socket(zmq.DEALER))
    try:
        setup(sock, session.key)
        sock.connect(channel_url(info, "registration"))
        session.send(sock, "connection_request", {})
        return bool(sock.poll(3000))
    finally:
        sock.close(linger=0)
        ctx.term()


def test_curve_on_loopback_runs_a_full_cluster_and_refuses_peers_without_the_keys(
    cluster_factory: Callable[..., Any],
) -> None:
    cluster, rc = cluster_factory(2, curve=True)
    info = read_connection_file(cluster.connection_file)
    server_key = info.get("curve_public_key")
    assert server_key == curve_server_keys(bytes.fromhex(info["key"]))[0].decode()
    # the whole cluster works over CurveZMQ: direct, load-balanced, output, a second client
    assert rc[:].apply_sync(interactive(lambda: 6 * 7)) == [42, 42]
    assert rc.load_balanced_view().map_sync(interactive(lambda x: x * 2), range(10)) == list(range(0, 20, 2))
    ar = rc[0].execute("print('over curve')")
    ar.get(60)
    assert "over curve" in ar.stdout
    with Client(cluster.connection_file) as other:
        assert sorted(other.ids) == sorted(rc.ids)
    # with the server key and the derived client key the hub answers ...
    assert _answered(info, lambda s, key: admit(s, key, server_key))
    # ... a peer with the right key's PLAIN gate token, but no CurveZMQ, gets nothing
    assert not _answered(info, lambda s, key: admit(s, key))
    # ... and neither does one that has the server's public key but not the cluster key
    assert not _answered(info, lambda s, key: admit(s, os.urandom(32), server_key))

    def random_client_keys(sock: zmq.Socket[Any], key: bytes) -> None:
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
        sock.curve_serverkey = str(server_key).encode()

    assert not _answered(info, random_client_keys)


def test_corral_controller_curve_flag_writes_the_key(processes: Any, tmp_path: Path, wait_until: Any) -> None:
    conn = tmp_path / "ctrl.json"
    ctrl = processes.spawn(
        "controller", "-m", "corral.cli", "controller", "--cluster-id", "curvecli", "--connection-file", str(conn),
        "--curve",
    )  # fmt: skip
    wait_until(lambda: "corral controller ready" in ctrl.output(), "the controller to get ready", 60)
    assert "curve_public_key" in read_connection_file(conn)
    both = subprocess.run(
        [sys.executable, "-m", "corral.cli", "controller", "--curve", "--insecure"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr
    os.killpg(ctrl.proc.pid, signal.SIGTERM)
    assert ctrl.finish(30) == 0


def test_a_group_readable_connection_file_is_refused_by_engines(cluster_factory: Callable[..., Any]) -> None:
    cluster, _rc = cluster_factory(1)
    exposed = Path(cluster.connection_file).with_name("exposed.json")
    exposed.write_bytes(Path(cluster.connection_file).read_bytes())
    exposed.chmod(0o640)
    out = subprocess.run(
        [sys.executable, "-m", "corral.engine", "--connection-file", str(exposed)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "accessible to group or others (mode 0640)" in out.stderr
    assert f"chmod 600 {exposed}" in out.stderr
    with pytest.raises(ConnectionFileError, match="accessible to group or others"):
        Client(exposed)


def test_a_non_loopback_address_gets_curve_by_default(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2) for a private network namespace")
    setup = " && ".join([
        "ip link add v0 type veth peer name v1",
        "ip addr add 10.9.9.1/24 dev v0",
        "ip link set v0 up",
        "ip link set v1 up",
        "ip link set lo up",
    ])  # fmt: skip
    probe = subprocess.run(["unshare", "-n", "sh", "-c", setup], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private network namespace with a veth pair here: {probe.stderr.strip()}")
    script = f"{setup} && exec {sys.executable} {PEERS / 'curve_off_loopback.py'} 10.9.9.1"
    proc = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    events = {e["event"]: e for e in (json.loads(line) for line in text.splitlines() if line.startswith("{"))}
    assert events["default"]["curve"] is True, text
    assert events["default"]["ip"] == "10.9.9.1"
    assert events["default"]["result"] == [42, 42]
    assert events["default"]["plain_peer_answered"] is False
    assert events["default"]["curve_peer_answered"] is True
    assert "binding 10.9.9.1 without CurveZMQ is refused" in events["refused"]["error"]
    assert "--insecure" in events["refused"]["error"]
    assert events["insecure"]["curve"] is False
    assert events["insecure"]["result"] == [42]
