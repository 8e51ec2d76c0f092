"""Protocol versioning and the public API of corral.wire."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect

import pytest

import corral.wire
from corral.wire import PROTOCOL_VERSION, ProtocolVersionError, check_protocol_version

pytestmark = pytest.mark.timeout(30)


def test_same_major_is_compatible() -> None:
    major = PROTOCOL_VERSION.split(".")[0]
    check_protocol_version(f"{major}.0")
    check_protocol_version(f"{major}.99")


@pytest.mark.parametrize("bad", ["2.0", "0.9", "x", "1", ""])
def test_other_major_or_garbage_is_refused_clearly(bad: str) -> None:
    with pytest.raises(ProtocolVersionError) as info:
        check_protocol_version(bad, peer="engine 3")
    assert info.value.reason == "incompatible_version"
    assert bad in str(info.value) or "malformed" in str(info.value)


def test_no_namespace_init_is_shipped() -> None:
    import corral

    assert not hasattr(corral, "__file__") or corral.__file__ is None


def test_every_exported_name_resolves_and_is_documented() -> None:
    assert corral.wire.__doc__
    for name in corral.wire.__all__:
        obj = getattr(corral.wire, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_submodules_declare_all() -> None:
    for mod in (
        "canning",
        "connection",
        "errors",
        "loop",
        "message",
        "paths",
        "protocol",
        "replay",
        "serialize",
        "session",
        "signing",
        "sockets",
        "testing",
    ):
        module = importlib.import_module(f"corral.wire.{mod}")
        for name in module.__all__:
            assert hasattr(module, name), f"corral.wire.{mod}.{name}"


def test_version_matches_distribution_metadata() -> None:
    assert corral.wire.__version__ == importlib.metadata.version("corral-wire")


def test_numpy_and_dill_are_not_imported_eagerly() -> None:
    import subprocess
    import sys

    code = "import sys, corral.wire; print('numpy' in sys.modules, 'dill' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_direct_path_switch_and_which_addresses_engines_may_announce() -> None:
    from corral.wire.protocol import direct_enabled, valid_direct_url

    assert direct_enabled({}) is True
    assert direct_enabled({"CORRAL_DIRECT": " Off "}) is False
    with pytest.raises(ValueError, match=r"CORRAL_DIRECT='maybe' is not understood: set it to 1 .* or 0"):
        direct_enabled({"CORRAL_DIRECT": "maybe"})
    for good in ("tcp://127.0.0.1:5555", "tcp://[::1]:6000", "ipc:///tmp/corral-x-e0123456789ab"):
        assert valid_direct_url(good) == good
    for bad in ("tcp://host.example:1", "tcp://127.0.0.1", "udp://127.0.0.1:5", "ipc://" + "x" * 300, 5, None):
        assert valid_direct_url(bad) is None
