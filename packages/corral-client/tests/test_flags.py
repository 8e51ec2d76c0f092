"""View flags: defaults, set_flags and temp_flags, and what is refused."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from corral.client import AsyncResult, Client, View

pytestmark = pytest.mark.timeout(30)


def test_defaults_and_attributes(rc: Client) -> None:
    dv = rc[:]
    assert isinstance(dv, View)
    assert dv.block is False
    assert dv.track is False
    assert dv.targets == [0, 1, 2]
    dv.block = True
    assert dv.apply(abs, -1) == [1, 1, 1]
    dv.targets = 1
    assert dv.apply(abs, -1) == 1
    assert repr(dv) == "<DirectView 1>"
    dv.targets = (0, 2)
    assert dv.targets == [0, 2]
    dv.targets = None
    assert dv.targets == "all"
    assert dv.apply(abs, -1) == [1, 1, 1]


def test_set_flags_validates_everything_first(rc: Client) -> None:
    dv = rc[:]
    dv.set_flags(block=True, track=True)
    assert dv.block
    assert dv.track
    with pytest.raises(TypeError, match=r"no flag 'blok'; its flags are block, track, targets"):
        dv.set_flags(blok=True)
    with pytest.raises(TraitError, match="boolean"):
        dv.set_flags(block=False, track="yes")
    assert dv.block is True
    assert dv.track is True
    for bad in ("some", [], [0, "1"], 1.5, {0: 1}):
        with pytest.raises(TraitError, match="targets"):
            dv.set_flags(targets=bad)
    assert dv.targets == [0, 1, 2]
    with pytest.raises(TraitError):
        dv.block = "no"  # type: ignore[assignment]


def test_temp_flags_restores_even_after_an_error(rc: Client) -> None:
    dv = rc[:]
    with dv.temp_flags(block=True, targets=0):
        assert dv.apply(abs, -2) == 2
    assert dv.block is False
    assert dv.targets == [0, 1, 2]
    assert isinstance(dv.apply(abs, -2), AsyncResult)

    def fail_inside() -> None:
        with dv.temp_flags(track=True):
            assert dv.track
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail_inside()
    assert dv.track is False
    with pytest.raises(TypeError), dv.temp_flags(nope=1):
        pass
    with pytest.raises(TraitError), dv.temp_flags(block=True, targets="x"):
        pass
    assert dv.block is False


def test_per_call_overrides_leave_flags_alone(rc: Client) -> None:
    dv = rc[:]
    dv.push({"q": 1}, targets=[0, 1], block=True)
    assert dv.pull("q", targets=[0, 1], block=True) == [1, 1]
    assert dv.execute("q", targets=0, block=True).get() == 1
    assert dv.targets == [0, 1, 2]
    assert dv.block is False
