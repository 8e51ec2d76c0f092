"""Several hosts on one machine: network namespaces joined by a bridge, one cut and restored.

The fixture builds, with this run's unique names (``cr<6 hex>...``):

- namespace ``<tag>c`` ("the controller's host") holding a bridge ``br0`` at ``<net>.1``;
- namespaces ``<tag>1`` and ``<tag>2`` ("two engine hosts"), each joined to the bridge by a
  veth pair and addressed ``<net>.11`` and ``<net>.12``;
- a fourth veth pair from the test's own namespace to the bridge (``<net>.254``), so the
  client in this process reaches the controller as a remote client would.

``<net>`` is a random /24 of 198.18.0.0/15 (reserved for network tests) that no route of this
machine uses. Everything is removed at teardown (deleting the namespaces deletes their ends of
the veth pairs, and with them the peers), also when the test fails.

The controller binds ``<net>.1``, a non-loopback address: corral encrypts such clusters with
CurveZMQ, and the test checks the connection file carries the controller's public key.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HEARTBEAT_PERIOD = 0.5
HEARTBEAT_MISSES = 4
#: the controller declares an engine dead after this many silent seconds
HEARTBEAT_DEADLINE = HEARTBEAT_PERIOD * HEARTBEAT_MISSES


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


@dataclass
class Hosts:
    """The namespaces and addresses of one run."""

    tag: str
    net: str
    controller_ns: str
    engine_ns: dict[str, str]
    engine_if: dict[str, str] = field(default_factory=dict)

    def address(self, host: str) -> str:
        """The address of ``"controller"``, ``"h1"``, ``"h2"`` or ``"client"``."""
        return f"{self.net}.{ {'controller': 1, 'h1': 11, 'h2': 12, 'client': 254}[host] }"

    def link(self, host: str, state: str) -> None:
        """Set engine host ``host``'s only link ``up`` or ``down``."""
        _ip("-n", self.engine_ns[host], "link", "set", "eth0", state)


def _free_net() -> str:
    routes = _ip("-4", "route", "show", "table", "all").stdout + _ip("-4", "addr").stdout
    for _ in range(50):
        net = f"198.{random.choice((18, 19))}.{random.randrange(1, 255)}"
        if f"{net}." not in routes:
            return net
    raise AssertionError("no free /24 in 198.18.0.0/15 for the test network")


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Three network namespaces on a bridge, plus a link from this process's namespace."""
    if not sys.platform.startswith("linux"):
        pytest.skip("network namespaces are Linux's")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command is missing (.ci/run installs iproute2)")
    tag = "cr" + secrets.token_hex(3)
    probe = _ip("netns", "add", f"{tag}p", check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create network namespaces here (needs root and CAP_SYS_ADMIN): {probe.stderr.strip()}")
    _ip("netns", "del", f"{tag}p", check=False)
    made: list[str] = []
    hosts = Hosts(tag, _free_net(), f"{tag}c", {"h1": f"{tag}1", "h2": f"{tag}2"})
    try:
        for ns in (hosts.controller_ns, *hosts.engine_ns.values()):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        c = hosts.controller_ns
        bridge = _ip("-n", c, "link", "add", "br0", "type", "bridge", check=False)
        if bridge.returncode != 0:
            pytest.skip(f"this kernel or container offers no bridge devices: {bridge.stderr.strip()}")
        _ip("-n", c, "addr", "add", f"{hosts.address('controller')}/24", "dev", "br0")
        _ip("-n", c, "link", "set", "br0", "up")
        for host, ns in hosts.engine_ns.items():
            peer = f"{tag}{host}"
            veth = _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", c, check=False)
            if veth.returncode != 0:
                pytest.skip(f"this kernel or container offers no veth pairs: {veth.stderr.strip()}")
            _ip("-n", ns, "addr", "add", f"{hosts.address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", c, "link", "set", peer, "master", "br0", "up")
            hosts.engine_if[host] = peer
        # this process's end: created here, its peer moved to the controller's namespace
        _ip("link", "add", f"{tag}cl", "type", "veth", "peer", "name", f"{tag}br", "netns", c)
        _ip("addr", "add", f"{hosts.address('client')}/24", "dev", f"{tag}cl")
        _ip("link", "set", f"{tag}cl", "up")
        _ip("-n", c, "link", "set", f"{tag}br", "master", "br0", "up")
        yield hosts
    finally:
        _ip("link", "del", f"{tag}cl", check=False)  # also removes its peer
        for ns in made:
            _ip("netns", "del", ns, check=False)
        left = [ns for ns in _ip("netns", "list").stdout.split() if ns.startswith(tag)]
        assert not left, f"namespaces left behind: {left}"


@dataclass
class NsProcesses:
    """Processes started inside namespaces with ``ip netns exec``, each in its own session."""

    log_dir: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, ns: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Run ``python -m *args`` in namespace ``ns`` (``ip netns exec`` execs it: same pid)."""
        with open(self.log_dir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def output(self, name: str) -> str:
        """What process ``name`` printed."""
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        """SIGTERM its process group, SIGKILL after ``timeout``, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        """Stop every process started here, engines first."""
        for _, proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            self.stop(proc)


@pytest.fixture
def ns_processes(tmp_path: Path) -> Iterator[NsProcesses]:
    """Start processes in namespaces; all are stopped at teardown."""
    procs = NsProcesses(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def _hosts_of(rc: Any) -> dict[int, str]:
    """Engine id -> the test host it runs on (each engine reports its CORRAL_TEST_HOST)."""
    ids = rc.ids
    found = rc[ids].apply_sync(lambda: __import__("os").environ["CORRAL_TEST_HOST"])
    return dict(zip(ids, found, strict=True))


@pytest.mark.timeout(180)
def test_cutting_a_hosts_link_loses_only_its_engines_and_restarted_ones_return(
    hosts: Hosts, ns_processes: NsProcesses, tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    from corral.client import Client

    connection_file = tmp_path / "corral-multihost.json"
    controller = ns_processes.start(
        "controller",
        hosts.controller_ns,
        "corral.cluster",
        "--cluster-id", "multihost",
        "--ip", hosts.address("controller"),
        "--connection-file", str(connection_file),
        "--heartbeat-period", str(HEARTBEAT_PERIOD),
        "--heartbeat-misses", str(HEARTBEAT_MISSES),
        "--log-level", "INFO",
    )  # fmt: skip
    wait_until(
        lambda: "corral controller ready" in ns_processes.output("controller") or controller.poll() is not None,
        "the controller in its namespace gets ready",
    )
    assert controller.poll() is None, ns_processes.output("controller")
    info = json.loads(connection_file.read_text())
    assert info["ip"] == hosts.address("controller")
    assert info.get("curve_public_key"), "a controller on a non-loopback address must turn CurveZMQ on"

    def start_engines(host: str, generation: int) -> list[subprocess.Popen[bytes]]:
        args = ["corral.engine", "--connection-file", str(connection_file), "--log-level", "INFO"]
        env = {"CORRAL_TEST_HOST": host}
        return [
            ns_processes.start(f"engine-{host}-{generation}-{i}", hosts.engine_ns[host], *args, env=env)
            for i in range(2)
        ]

    h1 = start_engines("h1", 0)
    start_engines("h2", 0)
    rc = Client(connection_file, timeout=30)
    try:
        wait_until(lambda: len(rc.ids) == 4, "four engines from two hosts register")
        by_host = _hosts_of(rc)
        h1_ids = sorted(i for i, h in by_host.items() if h == "h1")
        h2_ids = sorted(i for i, h in by_host.items() if h == "h2")
        assert len(h1_ids) == len(h2_ids) == 2, by_host
        # the engines see the controller's host over the test network
        assert rc[h2_ids].apply_sync(lambda: __import__("socket").gethostname()) == [os.uname().nodename] * 2

        hosts.link("h1", "down")
        cut = time.monotonic()
        h2_view = rc[h2_ids]
        while set(rc.ids) & set(h1_ids):
            # the other host keeps serving while the controller waits out h1's heartbeats
            assert h2_view.apply_sync(lambda x: x + 1, 41) == [42, 42]
            assert time.monotonic() - cut < HEARTBEAT_DEADLINE + 15, (
                f"h1's engines still registered {time.monotonic() - cut:.1f} s after its link went down"
            )
            time.sleep(0.05)
        gone_after = time.monotonic() - cut
        assert sorted(rc.ids) == h2_ids
        # load-balanced work now goes to h2 only, and all of it completes
        results = rc.load_balanced_view().map_sync(
            lambda x: (x * x, __import__("os").environ["CORRAL_TEST_HOST"]), range(12)
        )
        assert [r[0] for r in results] == [x * x for x in range(12)]
        assert {r[1] for r in results} == {"h2"}
        log = ns_processes.output("controller")
        for engine_id in h1_ids:  # the controller says why they left
            assert re.search(rf"engine {engine_id} \(\w+\) stopped answering heartbeats", log), log

        # restore the link; h1's restarted engines register again
        for proc in h1:
            ns_processes.stop(proc)
        hosts.link("h1", "up")
        start_engines("h1", 1)
        wait_until(lambda: len(rc.ids) == 4, "h1's restarted engines register after the link is back")
        by_host = _hosts_of(rc)
        assert sorted(by_host.values()) == ["h1", "h1", "h2", "h2"]
        new_h1 = sorted(i for i, h in by_host.items() if h == "h1")
        assert not set(new_h1) & set(h1_ids), "restarted engines get new ids"
        assert rc[:].apply_sync(lambda: 7) == [7] * 4
        print(f"h1's engines left the cluster {gone_after:.2f} s after its link went down")
    finally:
        rc.close()
    ns_processes.stop(controller)
    assert controller.returncode is not None
