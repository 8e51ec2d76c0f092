"""Submission acknowledgements: batched per client and channel, leaving answered requests out."""

from __future__ import annotations

import pytest
import zmq

from corral.hub.acks import Acknowledger
from corral.wire import Session
from corral.wire.loop import Reactor

KEY = b"a" * 32

pytestmark = pytest.mark.timeout(30)


def test_stored_requests_are_acknowledged_in_one_message_per_client_and_channel() -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    clients = []
    for name in (b"client-a", b"client-b"):
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.IDENTITY, name)
        dealer.connect(f"tcp://127.0.0.1:{port}")
        clients.append(dealer)
    reactor = Reactor(ctx)
    try:
        session = Session(KEY)
        acks = Acknowledger(session, delay=0.05)
        acks.sockets["task"] = router
        acks.register(reactor)
        # both connections must be up before the ROUTER can address them
        for dealer in clients:
            dealer.send(b"hello")
            assert router.poll(5000)
            router.recv_multipart()
        for i in range(3):
            acks.stored("task", b"client-a", f"a_{i}")
        acks.stored("task", b"client-b", "b_0")
        acks.stored("broadcast", b"client-b", "not acknowledged on a channel without a socket")
        acks.answered("a_1")  # its reply acknowledged it already
        reactor.run(timeout=0.3)
        reader = Session(KEY)
        got = []
        for dealer in clients:
            assert dealer.poll(5000)
            msg = reader.recv(dealer)
            assert msg.msg_type == "submission_ack"
            got.append(msg.content["msg_ids"])
            assert not dealer.poll(100), "one message per client"
        assert got == [["a_0", "a_2"], ["b_0"]]
    finally:
        reactor.close()
        for sock in [router, *clients]:
            sock.close(linger=0)
        ctx.term()
