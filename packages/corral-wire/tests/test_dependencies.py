"""Dependencies: the Dependency set and its wire form, and the @depend/@require wrappers."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from corral.wire import Serializer, pack_apply_message, unpack_apply_message
from corral.wire.dependencies import Dependency, depend, dependent, require, required
from corral.wire.errors import CorralError, UnmetDependency, unwrap_exception, wrap_exception

pytestmark = pytest.mark.timeout(30)


class FakeResult:
    def __init__(self, *ids: str) -> None:
        self.msg_ids = list(ids)

    def __iter__(self) -> object:
        raise AssertionError("a dependency must read msg_ids, not iterate (that waits for values)")


def test_dependency_accepts_ids_results_and_dependencies() -> None:
    assert Dependency("a") == {"a"}
    assert Dependency(["a", "b"]) == {"a", "b"}
    assert Dependency(FakeResult("x", "y")) == {"x", "y"}
    nested = Dependency([FakeResult("x"), "z", Dependency(["w"], all=False)])
    assert nested == {"x", "z", "w"}
    assert nested.all  # its own flags, not the inner one's
    assert Dependency(None) == set()
    assert Dependency(Dependency("q", failure=True)) == {"q"}
    with pytest.raises(TypeError, match="not int"):
        Dependency([1])
    with pytest.raises(ValueError, match="never be met"):
        Dependency("a", success=False, failure=False)


def test_as_json_is_the_contract_form_and_round_trips() -> None:
    dep = Dependency(["b", "a"], all=False, success=False, failure=True)
    data = dep.as_json()
    assert data == {"msg_ids": ["a", "b"], "all": False, "success": False, "failure": True}
    assert json.loads(json.dumps(data)) == data
    back = Dependency.from_json(data)
    assert back == dep
    assert (back.all, back.success, back.failure) == (False, False, True)
    again = pickle.loads(pickle.dumps(dep))
    assert again == dep
    assert again.failure
    assert "all=False" in repr(dep)


def test_check_and_unreachable() -> None:
    both = Dependency(["a", "b"])
    assert not both.check({"a": "ok"})
    assert both.check({"a": "ok", "b": "ok"})
    assert both.unreachable({"a": "error"})
    assert not both.unreachable({"a": "ok"})
    anyof = Dependency(["a", "b"], all=False)
    assert anyof.check({"b": "ok"})
    assert not anyof.unreachable({"a": "error"})
    assert anyof.unreachable({"a": "error", "b": "error"})
    fails = Dependency(["a"], success=False, failure=True)
    assert fails.check({"a": "error"})
    assert fails.unreachable({"a": "ok"})
    either = Dependency(["a"], success=True, failure=True)
    assert either.check({"a": "error"})
    assert either.check({"a": "ok"})
    assert Dependency().check({})
    assert not Dependency().unreachable({})


def _run_remote(f: object, *args: object) -> object:
    """Pack a call as a client does and run it as an engine does, in a fresh namespace."""
    frames = pack_apply_message(f, args, {}, Serializer())  # type: ignore[arg-type]
    ns: dict[str, object] = {}
    g, a, kw = unpack_apply_message([memoryview(b) for b in frames], ns)
    return g(*a, **kw)


def allowed(flag: bool) -> bool:
    return flag


def test_depend_runs_the_check_first_and_raises_unmet() -> None:
    calls: list[int] = []

    @depend(allowed, True)
    def ok(x: int) -> int:
        calls.append(x)
        return x * 2

    @depend(allowed, flag=False)
    def never(x: int) -> int:
        calls.append(x)
        return x

    assert isinstance(ok, dependent)
    assert ok.__name__ == "ok"
    assert ok(3) == 6
    with pytest.raises(UnmetDependency, match="allowed"):
        never(1)
    assert calls == [3]
    assert isinstance(UnmetDependency("x"), CorralError)
    with pytest.raises(TypeError):
        depend(3)  # type: ignore[arg-type]


def test_dependent_travels_to_an_engine() -> None:
    assert _run_remote(depend(allowed, True)(abs), -4) == 4
    with pytest.raises(UnmetDependency):
        _run_remote(depend(allowed, False)(abs), -4)
    wrapped = wrap_exception(UnmetDependency("nope"))
    assert wrapped["ename"] == "UnmetDependency"
    assert unwrap_exception(wrapped).evalue == "nope"


def test_require_imports_into_the_function_globals_and_defines_names() -> None:
    def helper() -> str:
        return "helped"

    @require("colorsys", helper, answer=42)
    def use() -> object:
        return colorsys.rgb_to_hsv(0, 0, 0), answer, helper()  # noqa: F821 - defined by require

    assert "colorsys" not in globals()
    assert isinstance(use, required)
    assert use() == ((0.0, 0.0, 0.0), 42, "helped")
    assert "colorsys" in globals()  # imported where the function looks up its globals
    with pytest.raises(UnmetDependency, match="no_such_module_xyz"):
        require("no_such_module_xyz")(abs)(1)
    with pytest.raises(TypeError):
        require(3)
    assert require(json)(abs).modules == ["json"]


def test_wrappers_unpickle_with_only_corral_wire() -> None:
    """An engine without corral.client must load and run them (corral-engine alone)."""
    script = (
        "import sys\n"
        "sys.modules['corral.client'] = None  # any import of it fails\n"
        "from corral.wire import unpack_apply_message\n"
        "from corral.wire.errors import UnmetDependency\n"
        "f, a, kw = unpack_apply_message([sys.stdin.buffer.read()], {})\n"
        "try:\n"
        "    print(f(*a, **kw))\n"
        "except UnmetDependency:\n"
        "    print('unmet')\n"
    )
    for check, expected in ((1, b"2"), (0, b"unmet")):
        frames = pack_apply_message(depend(bool, check)(require("math")(abs)), (-2,), {}, Serializer())
        assert len(frames) == 1
        out = subprocess.run(
            [sys.executable, "-c", script], input=bytes(frames[0]), capture_output=True, timeout=20, check=False
        )
        assert out.returncode == 0, out.stderr.decode()
        assert out.stdout.strip() == expected


def test_a_header_with_sched_is_accepted_and_routable() -> None:
    from corral.wire import Session

    sender, receiver = Session(b"k" * 32), Session(b"k" * 32)
    header = sender.msg_header("apply_request")
    header["sched"] = {"after": Dependency(["m1"]).as_json(), "retries": 2}
    frames = sender.serialize(sender.msg("apply_request", {}, header=header))
    msg = receiver.deserialize(frames[1:])
    assert msg.header["sched"]["retries"] == 2
    assert msg.header["sched"]["after"]["msg_ids"] == ["m1"]
    plain = sender.serialize(sender.msg("apply_request", {}))
    assert "sched" not in receiver.deserialize(plain[1:]).header
