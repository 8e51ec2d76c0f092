"""The error tree and the remote-error wire format."""

from __future__ import annotations

import builtins
import json
import pickle

import pytest

from corral.wire import errors
from corral.wire.errors import (
    CompositeError,
    CorralError,
    EngineError,
    RemoteError,
    TaskAborted,
    unwrap_exception,
    wrap_exception,
)

pytestmark = pytest.mark.timeout(30)


def raise_and_wrap() -> errors.WrappedException:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError as err:
        return wrap_exception(err, {"engine_id": 2, "engine_uuid": "u", "method": "apply"})
    raise AssertionError("unreachable")


def test_wrapped_exception_is_json_and_unwraps_with_traceback() -> None:
    wrapped = raise_and_wrap()
    assert json.loads(json.dumps(wrapped)) == wrapped
    err = unwrap_exception(wrapped)
    assert type(err) is RemoteError
    assert err.ename == "ZeroDivisionError"
    assert err.evalue == "division by zero"
    assert err.engine_id == 2
    text = str(err)
    assert "[2:apply] ZeroDivisionError: division by zero" in text
    assert "Traceback (most recent call last)" in text
    assert "1 / 0" in text
    assert pickle.loads(pickle.dumps(err)).traceback == err.traceback


def test_corral_errors_come_back_as_their_own_classes() -> None:
    for cls in (EngineError, TaskAborted, errors.DependencyTimeout, errors.ImpossibleDependency):
        back = unwrap_exception(wrap_exception(cls(cls.__name__, "why"), {"engine_id": 1}))
        assert type(back) is cls
        assert isinstance(back, RemoteError)
        assert back.evalue == "why"


def test_wrap_without_exception_raises() -> None:
    with pytest.raises(ValueError, match="needs an exception"):
        wrap_exception()


def test_broken_str_does_not_hide_the_error() -> None:
    class Bad(Exception):
        def __str__(self) -> str:
            raise RuntimeError("nope")

    assert "str() of the exception failed" in wrap_exception(Bad())["evalue"]


def test_composite_error_lists_each_engine_and_raises_one() -> None:
    elist = [
        unwrap_exception(wrap_exception(KeyError(k), {"engine_id": i, "method": "apply"})) for i, k in enumerate("ab")
    ]
    comp = CompositeError("one or more exceptions from call to method: f", elist)
    text = str(comp)
    assert "(2 errors)" in text
    assert "[0:apply] KeyError: 'a'" in text
    assert "[1:apply] KeyError: 'b'" in text
    with pytest.raises(RemoteError) as info:
        comp.raise_exception(1)
    assert info.value.engine_id == 1
    with pytest.raises(IndexError):
        comp.raise_exception(5)
    assert isinstance(comp, RemoteError)


def test_timeout_error_is_also_the_builtin() -> None:
    assert issubclass(errors.TimeoutError, builtins.TimeoutError)
    assert issubclass(errors.TimeoutError, CorralError)


def test_every_error_derives_from_corral_error() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, CorralError), name


def test_unknown_reject_reason_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown rejection reason"):
        errors.MessageRejected("because")


def test_error_reply_matches_an_engine_error_reply() -> None:
    header = {"msg_id": "m1", "msg_type": "apply_request"}
    msg_type, content, metadata = errors.error_reply(
        EngineError("EngineError", "engine 3 killed by SIGKILL"), header, {"engine_id": 3, "engine_uuid": "u"}
    )
    assert msg_type == "apply_reply"
    assert content["status"] == "error"
    assert metadata["msg_id"] == "m1"
    assert metadata["engine_id"] == 3
    err = unwrap_exception(content)
    assert type(err) is EngineError
    assert "killed by SIGKILL" in str(err)
    assert "[3:apply]" in str(err)
    aborted = errors.error_reply(TaskAborted("TaskAborted", "aborted"), header)[1]
    assert aborted["status"] == "aborted"
    assert json.loads(json.dumps(content)) == content
