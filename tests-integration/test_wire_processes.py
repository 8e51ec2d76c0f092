"""Two processes exchange signed corral messages over a real loopback ZeroMQ connection.

The key travels the way a cluster's does: the listening side writes it into a connection file
and the other side reads it from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Processes

pytestmark = pytest.mark.timeout(90)

PEER = str(Path(__file__).resolve().parent / "peers" / "wire_peer.py")


def test_signed_message_verifies_in_the_other_process(processes: Processes, tmp_path: Path) -> None:
    conn = tmp_path / "security" / "corral-test.json"
    listener = processes.spawn("listener", PEER, "listen", str(conn))
    sender = processes.spawn("sender", PEER, "send", str(conn))

    sent = sender.wait_for_event("sent")
    accepted = listener.wait_for_event("accepted")
    reply = sender.wait_for_event("reply")

    assert accepted["msg_type"] == "echo_request"
    assert accepted["sender"] == sent["session"]
    assert accepted["intact"] is True
    assert reply["ok"] is True
    assert reply["msg_type"] == "echo_reply"
    assert sender.finish() == 0
    assert listener.finish() == 0
    assert conn.stat().st_mode & 0o777 == 0o600


def test_wrong_key_is_dropped_and_the_listener_keeps_serving(processes: Processes, tmp_path: Path) -> None:
    conn = tmp_path / "corral-test.json"
    listener = processes.spawn("listener", PEER, "listen", str(conn))
    intruder = processes.spawn("intruder", PEER, "send", str(conn), "--wrong-key")

    assert intruder.finish() == 0
    rejected = listener.wait_for_event("rejected")
    assert rejected["reason"] == "bad_signature"
    assert listener.proc.poll() is None, "the listener must survive a forged message"

    sender = processes.spawn("sender", PEER, "send", str(conn))
    assert sender.wait_for_event("reply")["ok"] is True
    accepted = listener.wait_for_event("accepted")
    assert accepted["sender"] == sender.wait_for_event("sent")["session"]
    assert [e["event"] for e in listener.events()] == ["listening", "rejected", "accepted"]
    assert sender.finish() == 0
    assert listener.finish() == 0
