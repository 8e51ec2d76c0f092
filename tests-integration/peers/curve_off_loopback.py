"""Clusters on a non-loopback address, run inside a private network namespace by test_curve.py.

``python curve_off_loopback.py IP`` expects IP on a veth interface of a namespace of its own
(nothing outside it can reach the traffic). It prints one JSON object a line:

- ``default``: a cluster on IP with default settings: whether its connection file has a
  CurveZMQ key, what a function returned on its engines, and whether a peer holding the right
  key's PLAIN token (but no CurveZMQ) got any answer from the controller;
- ``refused``: the error ``Cluster(ip=IP, curve=False)`` raised;
- ``insecure``: a cluster with ``insecure=True``: whether the file has a CurveZMQ key, and the
  function's result.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import zmq

from corral.cluster import Cluster
from corral.wire import Session, harden, read_connection_file
from corral.wire.connection import channel_url
from corral.wire.gate import admit


def report(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), **fields}), flush=True)


def answered(connection_file: str, *, curve: bool) -> bool:
    """Send a signed connection_request to the registration channel; True if a reply came."""
    info = read_connection_file(connection_file)
    session = Session(info["key"], scheme=info["signature_scheme"])
    ctx: zmq.Context[Any] = zmq.Context()
    sock = harden(ctx.socket(zmq.DEALER))
    try:
        admit(sock, session.key, info.get("curve_public_key") if curve else None)
        sock.connect(channel_url(info, "registration"))
        session.send(sock, "connection_request", {})
        return bool(sock.poll(3000))
    finally:
        sock.close(linger=0)
        ctx.term()


def main() -> int:
    ip = sys.argv[1]
    cluster = Cluster(n=2, ip=ip, engine_timeout=60)
    with cluster as rc:
        info = read_connection_file(cluster.connection_file)
        report(
            "default",
            curve="curve_public_key" in info,
            ip=info["ip"],
            result=rc[:].apply_sync(lambda: 6 * 7),
            plain_peer_answered=answered(str(cluster.connection_file), curve=False),
            curve_peer_answered=answered(str(cluster.connection_file), curve=True),
        )
    try:
        Cluster(n=1, ip=ip, curve=False)
    except ValueError as err:
        report("refused", error=str(err))
    insecure = Cluster(n=1, ip=ip, insecure=True, engine_timeout=60)
    with insecure as rc:
        info = read_connection_file(insecure.connection_file)
        report("insecure", curve="curve_public_key" in info, result=rc[:].apply_sync(lambda: 6 * 7))
    return 0


if __name__ == "__main__":
    sys.exit(main())
