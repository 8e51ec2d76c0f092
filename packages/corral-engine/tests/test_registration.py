"""Registration with the hub, hellos, heartbeats, and a controller that goes away (embedded engine)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from corral.engine import Engine, RegistrationError, RegistrationTimeout
from corral.wire import channel_url

pytestmark = pytest.mark.timeout(60)

WAIT = 15.0


def test_registration_request_and_hellos(controller: Any, engine: Engine) -> None:
    reg = controller.registered()
    assert reg.msg_type == "registration_request"
    assert reg.content["uuid"] == engine.uuid
    assert len(engine.uuid) == 32
    assert int(engine.uuid, 16) >= 0
    assert reg.content["pid"] > 0
    assert reg.content["hostname"]
    assert reg.content["requested_id"] is None
    assert engine.id == 0
    hellos = [controller.get("hello") for _ in range(4)]
    assert {channel for channel, _ in hellos} == {"mux", "task", "broadcast", "control"}
    for _, msg in hellos:
        assert msg.content == {"uuid": engine.uuid}
        # the DEALER identity is the uuid's ASCII, as the ROUTER saw it
        assert msg.idents == [engine.uuid.encode("ascii")]


def test_requested_id_is_asked_for(controller: Any) -> None:
    eng = Engine(controller.path, requested_id=7, registration_timeout=WAIT)
    eng.start()
    try:
        assert controller.registered().content["requested_id"] == 7
        assert eng.id == 7
    finally:
        eng.stop()


def test_heart_echoes_pings_with_the_uuid_as_identity(controller: Any, engine: Engine) -> None:
    identity, ping = controller.get("pong")
    assert identity == engine.uuid.encode("ascii")
    assert ping.isdigit()


def test_refused_registration_raises_the_hubs_reason(make_controller: Any) -> None:
    ctrl = make_controller(registration="refuse")
    eng = Engine(ctrl.path, registration_timeout=WAIT)
    with pytest.raises(RegistrationError, match=r"refused this engine: ProtocolVersionError: .*major versions differ"):
        eng.start()
    assert eng.join(0)  # stopped, sockets closed
    with pytest.raises(RuntimeError, match="already started"):
        eng.start()


def test_reply_in_another_protocol_major_fails_fast(make_controller: Any) -> None:
    ctrl = make_controller(registration="newer")
    eng = Engine(ctrl.path, registration_timeout=WAIT)
    with pytest.raises(RegistrationError, match=r"incompatible protocol version: .*2\.0"):
        eng.start()


def test_no_registration_reply_times_out_naming_the_address(make_controller: Any) -> None:
    ctrl = make_controller(registration="silent")
    eng = Engine(ctrl.path, registration_timeout=0.5)
    url = channel_url(ctrl.info, "registration")
    with pytest.raises(RegistrationTimeout, match=f"no registration reply from the controller at {url}") as info:
        eng.start()
    assert isinstance(info.value, TimeoutError)


def test_engine_stops_when_the_controller_goes_silent(controller: Any) -> None:
    eng = Engine(controller.path, registration_timeout=WAIT, controller_timeout=0.5)
    eng.start()
    try:
        controller.get("pong")  # heartbeats flowing: the engine stays
        time.sleep(1.0)
        assert not eng.join(0)
        controller.stop_pinging()
        assert eng.join(WAIT)
        assert eng.stop_reason is not None
        assert "no heartbeat from the controller" in eng.stop_reason
    finally:
        eng.stop()


def test_bad_arguments_are_refused(controller: Any) -> None:
    with pytest.raises(ValueError, match="32 lowercase hex"):
        Engine(controller.path, uuid="nope")
    with pytest.raises(TypeError, match="must be a dict"):
        Engine(controller.path, namespace=[])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        Engine(controller.path, controller_timeout=0)
