"""Registering with the hub: one request, one reply, a deadline.

The engine sends ``registration_request`` (``uuid``, ``hostname``, ``pid``, ``requested_id``)
on the ``registration`` channel and waits for the ``registration_reply`` that answers it. A
refusal (for instance a wrapped ``ProtocolVersionError`` when the hub speaks another protocol
major version) or a reply the engine cannot read because of that mismatch ends the wait at once
with a :class:`~corral.engine.errors.RegistrationError` carrying the reason; no reply at all
ends it at the deadline with a :class:`~corral.engine.errors.RegistrationTimeout` naming the
address.
"""

from __future__ import annotations

import logging
import os
import socket as _socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from corral.engine.errors import RegistrationError, RegistrationTimeout
from corral.wire import MessageRejected, ProtocolVersionError, Session, harden
from corral.wire.gate import admit

__all__ = ["Registration", "register"]

log = logging.getLogger(__name__)

# how often a wait checks whether it was cancelled
_SLICE_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Registration:
    """What the hub told a registered engine.

    Attributes
    ----------
    id
        The engine's integer id in the cluster.
    heartbeat_period
        As the hub announced it (informational), or None.
    heartbeat_misses
        As the hub announced it (informational), or None.
    content
        The whole reply content.
    """

    id: int
    heartbeat_period: float | None = None
    heartbeat_misses: int | None = None
    content: dict[str, Any] = field(default_factory=dict)


def register(
    session: Session,
    context: zmq.Context[Any],
    url: str,
    *,
    uuid: str,
    requested_id: int | None,
    timeout: float,
    cancelled: Callable[[], bool] | None = None,
    curve_server_key: str | None = None,
    direct_url: str | None = None,
) -> Registration:
    """Register with the hub at ``url`` and return what it answered.

    Parameters
    ----------
    session
        Signs the request and checks the reply (the cluster's key).
    context
        For the short-lived registration socket.
    url
        The controller's ``registration`` address.
    uuid
        This engine's uuid (32 hex digits).
    requested_id
        The id to ask for (honoured when free), or None.
    timeout
        Seconds to wait for the reply.
    cancelled
        Polled while waiting; when it returns True the wait ends with a :class:`RegistrationError`.
    curve_server_key
        The controller's CurveZMQ public key (the connection file's ``curve_public_key``), if on.
    direct_url
        Where clients may send this engine direct requests (:mod:`corral.engine.direct`), if
        anywhere.

    Returns
    -------
    Registration

    Raises
    ------
    RegistrationError
        If the hub refuses the engine, answers in an incompatible protocol version, sends a reply
        without a usable id, or ``cancelled()`` became true.
    RegistrationTimeout
        If no reply arrives within ``timeout`` seconds.
    """
    sock = admit(harden(context.socket(zmq.DEALER)), session.key, curve_server_key)
    try:
        sock.connect(url)
        content = {
            "uuid": uuid,
            "hostname": _socket.gethostname(),
            "pid": os.getpid(),
            "requested_id": requested_id,
        }
        if session.shm is not None:  # clients on this host send large buffers through memory
            content["shm"] = session.shm.address
        if direct_url is not None:
            content["direct"] = direct_url
        request, _ = session.send(sock, "registration_request", content)
        log.debug("registration request %s sent to %s", request.msg_id, url)
        return _wait_reply(session, sock, url, request.msg_id, timeout, cancelled)
    finally:
        sock.close(linger=0)


def _wait_reply(
    session: Session,
    sock: zmq.Socket[Any],
    url: str,
    msg_id: str,
    timeout: float,
    cancelled: Callable[[], bool] | None,
) -> Registration:
    deadline = time.monotonic() + timeout
    rejected: dict[str, int] = {}
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RegistrationTimeout(_timeout_message(url, timeout, rejected))
        if cancelled is not None and cancelled():
            raise RegistrationError(f"registration with the controller at {url} was cancelled")
        if not sock.poll(int(min(left, _SLICE_SECONDS) * 1000) + 1, zmq.POLLIN):
            continue
        try:
            reply = session.recv(sock, zmq.NOBLOCK, channel="registration")
        except ProtocolVersionError as err:
            raise RegistrationError(
                f"the controller at {url} answered in an incompatible protocol version: {err.detail}"
            ) from None
        except MessageRejected as err:
            rejected[err.reason] = rejected.get(err.reason, 0) + 1
            continue
        except zmq.Again:
            continue
        if reply.parent_header.get("msg_id") != msg_id or reply.msg_type != "registration_reply":
            log.debug("ignoring %s while waiting for the registration reply", reply.msg_type)
            continue
        return _parse_reply(reply.content, url)


def _parse_reply(content: dict[str, Any], url: str) -> Registration:
    status = content.get("status")
    if status != "ok":
        ename = content.get("ename") or "error"
        evalue = content.get("evalue") or f"registration status {status!r}"
        raise RegistrationError(f"the controller at {url} refused this engine: {ename}: {evalue}")
    engine_id = content.get("id")
    if not isinstance(engine_id, int) or isinstance(engine_id, bool):
        raise RegistrationError(f"the controller at {url} accepted this engine but gave no integer id: {content!r}")
    period = content.get("heartbeat_period")
    misses = content.get("heartbeat_misses")
    return Registration(
        id=engine_id,
        heartbeat_period=float(period) if isinstance(period, (int, float)) else None,
        heartbeat_misses=misses if isinstance(misses, int) else None,
        content=dict(content),
    )


def _timeout_message(url: str, timeout: float, rejected: dict[str, int]) -> str:
    msg = (
        f"no registration reply from the controller at {url} within {timeout:g} s: "
        "is the controller running, and is this the right connection file?"
    )
    if rejected:
        counts = ", ".join(f"{n} {reason}" for reason, n in sorted(rejected.items()))
        msg += f" ({counts} message(s) were dropped: a wrong key or signature scheme looks like this)"
    return msg
