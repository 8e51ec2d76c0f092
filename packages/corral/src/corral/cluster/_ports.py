"""Ports for a controller that does not exist yet, chosen where outgoing connections never land.

``Cluster`` writes the connection file before the controller binds, so engines can start at the
same time. A port that was merely free a moment ago (bound to port 0 and released) comes from the
kernel's ephemeral range, the same range every outgoing TCP connection on the machine takes its
local port from: an ``ssh``, an ``mpiexec`` or a client connecting in between can take it, and
the controller's bind then fails with "Address already in use". Ports below the ephemeral range
are only ever taken by an explicit bind, so choosing there (and checking each with a bind) leaves
only the much rarer clash with another program binding the same port at the same moment.
"""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

__all__ = ["listen_ports"]

#: lowest port handed out (above the well-known and commonly configured ones)
LOW = 10000


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default, and the IANA dynamic range starts at 49152 anyway
    return low


def listen_ports(n: int, ip: str = "127.0.0.1") -> list[int]:
    """Return ``n`` distinct TCP ports that ``ip`` can bind now, below the ephemeral range.

    Each port is checked with a bind on ``ip``; where ``ip`` cannot be bound here (the
    controller runs on another host, or ``ip`` is an interface name) they are not checked, and
    the controller's own bind reports a clash. Falls back to ports the kernel picks (which may
    be in the ephemeral range) when the range below it is too small or too crowded.
    """
    high = _ephemeral_low() - 1
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    bind_ip = "0.0.0.0" if ip == "*" else ip
    chosen: list[int] = []
    probing = True
    candidates = random.sample(range(LOW, high + 1), k=min(50 * n, high - LOW + 1)) if high > LOW + n else []
    for port in candidates:
        if len(chosen) == n:
            break
        if probing:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((bind_ip, port))
                except OSError as err:
                    if err.errno == errno.EADDRINUSE:
                        continue
                    probing = False  # not an address of this machine: nothing to check here
        chosen.append(port)
    while len(chosen) < n:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((bind_ip if probing else "", 0))
            port = probe.getsockname()[1]
        if port not in chosen:
            chosen.append(port)
    return chosen
