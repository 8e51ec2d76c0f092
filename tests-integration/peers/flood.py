"""A hostile peer for tests-integration/test_flood.py: junk on every port of a controller.

``python flood.py CONNECTION_FILE COUNT SECONDS`` sends at most COUNT messages within at most
SECONDS, spread over every channel the connection file names, then prints one JSON line
(``{"event": "done", "sent": n, "seconds": s}``) and exits. Per channel it uses three kinds of
peer: one that holds the gate token (an insider with the key) sending frames that are no
message at all, one that signs well-formed requests with another key, and one without the
token, which the gate refuses during the handshake. Sends never block: a full queue drops the
message, and the loop ends at COUNT or SECONDS, whichever comes first.
"""

from __future__ import annotations

import json
import os
import sys
import time

import zmq

from corral.wire import Session, read_connection_file
from corral.wire.gate import admit

# the controller's socket kinds, by channel: what a peer connects to each with
_PEER_KIND = {"heartbeat_ping": zmq.SUB, "iopub": zmq.SUB, "notification": zmq.SUB, "iopub_engine": zmq.PUB}


def main() -> int:
    path, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    info = read_connection_file(path)
    key = Session(info["key"]).key
    stranger = Session(os.urandom(32))
    ctx = zmq.Context()
    peers: list[tuple[zmq.Socket[bytes], str]] = []
    for channel, port in sorted(info["ports"].items()):
        kind = _PEER_KIND.get(channel, zmq.DEALER)
        if kind == zmq.SUB:
            continue  # a controller's PUB sockets take nothing in
        for style in ("junk", "wrong_key", "no_token"):
            sock = ctx.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 1000)
            if style != "no_token":
                admit(sock, key)
            sock.connect(f"tcp://{info['ip']}:{port}")
            peers.append((sock, style))
    junk = [b"<IDS|MSG>", os.urandom(64), b"{not json", b"{}", b"{}", b"{}"]
    signed = stranger.serialize(stranger.msg("apply_request", {"serializer": "pickle"}), [b"payload"])
    time.sleep(0.5)  # let the connections (or their refusals) happen
    sent = refused = 0
    start = time.monotonic()
    deadline = start + seconds
    rate = count / seconds
    rounds = 0
    while sent < count and time.monotonic() < deadline:
        rounds += 1
        for sock, style in peers:
            if style == "no_token" and rounds % 50:
                continue  # refused at the gate: knocking now and then is enough
            try:
                sock.send_multipart(signed if style == "wrong_key" else junk, zmq.NOBLOCK)
            except zmq.Again:
                refused += 1  # refused by the gate, or its queue is full: dropped here
                continue
            sent += 1
            if sent >= count:
                break
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)  # no faster than COUNT / SECONDS a second
    elapsed = time.monotonic() - start
    for sock, _ in peers:
        sock.close(linger=0)
    ctx.term()
    print(json.dumps({"event": "done", "sent": sent, "refused": refused, "seconds": round(elapsed, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
