"""``corral selfcheck``: one signed request and reply over a real loopback ZeroMQ connection."""

from __future__ import annotations

import threading
import time
from typing import Any

import zmq

__all__ = ["selfcheck"]


def _square_sum(a: Any) -> float:
    return float((a * a).sum())


def _echo_engine(url: str, key: bytes, ready: threading.Event, ctx: zmq.Context[Any]) -> None:
    from corral.wire import Session, harden, unpack_apply_message, wrap_exception

    session = Session(key)
    sock = harden(ctx.socket(zmq.DEALER), max_frame_size=None)
    sock.connect(url)
    session.send(sock, "hello", {})
    ready.set()
    try:
        if not sock.poll(30_000):
            return
        msg = session.recv(sock)
        f, args, kwargs = unpack_apply_message(msg.buffers)
        try:
            content: dict[str, Any] = {
                "status": "ok",
                "value": f(*args, **kwargs),
                "readonly": not args[0].flags.writeable,
            }
        except Exception as err:
            content = dict(wrap_exception(err))
        session.send(sock, "apply_reply", content, parent=msg)
    finally:
        sock.close(linger=1000)


def selfcheck(size_mb: float = 80.0) -> int:
    """Sign, send, verify and run one request with a numpy array; print what happened.

    Returns
    -------
    int
        0 when the reply is right, 1 otherwise.
    """
    import numpy as np

    from corral.wire import Session, harden, new_key, pack_apply_message

    key = bytes.fromhex(new_key())
    session = Session(key)
    ctx: zmq.Context[Any] = zmq.Context()
    router = harden(ctx.socket(zmq.ROUTER), max_frame_size=None)
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        ready = threading.Event()
        peer = threading.Thread(target=_echo_engine, args=(f"tcp://127.0.0.1:{port}", key, ready, ctx), daemon=True)
        peer.start()
        if not router.poll(10_000):
            print("selfcheck FAILED: the peer did not connect within 10 s")
            return 1
        hello = session.recv(router, channel="selfcheck")
        n = max(1, int(size_mb * 1e6 / 8))
        arr = np.arange(n, dtype=np.float64) / n
        print(f"corral selfcheck: sending a {arr.nbytes / 1e6:.0f} MB array over tcp://127.0.0.1:{port}")
        t0 = time.perf_counter()
        session.send(
            router,
            "apply_request",
            {"serializer": "pickle"},
            ident=hello.idents,
            buffers=pack_apply_message(_square_sum, (arr,)),
        )
        if not router.poll(60_000):
            print("selfcheck FAILED: no reply within 60 s")
            return 1
        reply = session.recv(router, channel="selfcheck")
        elapsed = time.perf_counter() - t0
        expected = _square_sum(arr)
        content = reply.content
        ok = content.get("status") == "ok" and abs(content["value"] - expected) <= 1e-9 * abs(expected)
        print(f"  signed, sent, verified and ran in {elapsed * 1e3:.1f} ms ({arr.nbytes / elapsed / 1e9:.2f} GB/s)")
        print(
            f"  result {content.get('value')!r}, expected {expected!r}; array arrived read-only: {content.get('readonly')}"
        )
        print("selfcheck OK" if ok else f"selfcheck FAILED: {content}")
        peer.join(10)
        return 0 if ok else 1
    finally:
        router.close(linger=0)
        ctx.term()
