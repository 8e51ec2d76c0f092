"""A corral.wire peer in its own process, for tests-integration/test_wire_processes.py.

``listen FILE``: bind a ROUTER on a random loopback port, write a connection file (new key) to
FILE, then answer the first message that verifies with an ``echo_reply``; messages that do not
verify are reported and skipped. ``send FILE [--wrong-key]``: wait for FILE, connect, send one
signed ``echo_request`` with a buffer and, unless the key is wrong, wait for the reply and check
it. Each step is printed as one JSON object a line; the exit status is 0 when all went right.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from corral.wire import (
    MessageRejected,
    Session,
    channel_url,
    harden,
    new_connection_info,
    read_connection_file,
    write_connection_file,
)

DEADLINE_MS = 30_000
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, goes out as a raw buffer frame


def report(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), **fields}), flush=True)


def listen(path: Path) -> int:
    ctx: zmq.Context[Any] = zmq.Context()
    router = harden(ctx.socket(zmq.ROUTER))
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        info = new_connection_info({"mux": port})
        write_connection_file(path, info)
        session = Session(info["key"], scheme=info["signature_scheme"])
        report("listening", port=port, session=session.session)
        while router.poll(DEADLINE_MS):
            try:
                msg = session.recv(router, channel="mux")
            except MessageRejected as err:
                report("rejected", reason=err.reason)
                continue
            buffer = bytes(msg.buffers[0]) if msg.buffers else b""
            content = {"n": msg.content["n"], "nbytes": len(buffer), "intact": buffer == PAYLOAD}
            session.send(router, "echo_reply", content, parent=msg, ident=msg.idents)
            report("accepted", msg_type=msg.header["msg_type"], sender=msg.header["session"], **content)
            return 0
        report("timeout")
        return 1
    finally:
        router.close(linger=1000)
        ctx.term()


def send(path: Path, wrong_key: bool) -> int:
    deadline = time.monotonic() + DEADLINE_MS / 1000
    while not path.exists():  # the listener writes the file once it is bound
        if time.monotonic() > deadline:
            report("timeout", waiting_for=str(path))
            return 1
        time.sleep(0.02)
    info = read_connection_file(path)
    key = os.urandom(32) if wrong_key else info["key"]
    session = Session(key, scheme=info["signature_scheme"])
    ctx: zmq.Context[Any] = zmq.Context()
    dealer = harden(ctx.socket(zmq.DEALER))
    try:
        dealer.connect(channel_url(info, "mux"))
        sent, _ = session.send(dealer, "echo_request", {"n": 42}, buffers=[PAYLOAD])
        report("sent", msg_id=sent.header["msg_id"], session=session.session)
        if wrong_key:
            return 0
        if not dealer.poll(DEADLINE_MS):
            report("timeout", waiting_for="echo_reply")
            return 1
        reply = session.recv(dealer, channel="mux")  # raises MessageRejected unless it verifies
        ok = reply.parent_header.get("msg_id") == sent.header["msg_id"] and reply.content == {
            "n": 42,
            "nbytes": len(PAYLOAD),
            "intact": True,
        }
        report("reply", ok=ok, msg_type=reply.header["msg_type"], content=reply.content)
        return 0 if ok else 1
    finally:
        dealer.close(linger=2000)
        ctx.term()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["listen", "send"])
    parser.add_argument("connection_file", type=Path)
    parser.add_argument("--wrong-key", action="store_true")
    args = parser.parse_args()
    if args.role == "listen":
        return listen(args.connection_file)
    return send(args.connection_file, args.wrong_key)


if __name__ == "__main__":
    sys.exit(main())
