"""The dependency model of docs/scheduling.md, judged without sockets."""

from __future__ import annotations

from typing import Any

import pytest

from corral.scheduler.dependencies import IMPOSSIBLE, MET, UNMET, DependencySpec, check, check_after, check_follow

pytestmark = pytest.mark.timeout(30)


def table(**outcomes: Any) -> Any:
    """A lookup over ``name=(state, status, engine)``; anything else is unknown."""

    def lookup(msg_id: str) -> Any:
        return outcomes.get(msg_id, ("unknown", None, None))

    return lookup


OK_A = ("completed", "ok", "A")
OK_B = ("completed", "ok", "B")
ERR_A = ("completed", "error", "A")
PENDING = ("pending", None, "A")


def dep(*ids: str, **flags: bool) -> DependencySpec:
    spec = DependencySpec.from_json({"msg_ids": list(ids), **flags})
    assert spec is not None
    return spec


def test_json_form_defaults_and_errors() -> None:
    assert DependencySpec.from_json(None) is None
    assert DependencySpec.from_json({"msg_ids": []}) is None
    assert DependencySpec.from_json(["x", "y", "x"]) == DependencySpec(("x", "y"), True, True, False)
    assert DependencySpec.from_json({"msg_ids": ["x"], "all": False, "failure": True}) == DependencySpec(
        ("x",), False, True, True
    )
    for bad in ("x", {"msg_ids": "x"}, {"msg_ids": [1]}, {"msg_ids": ["x"], "all": 1}):
        with pytest.raises(ValueError, match="dependency"):
            DependencySpec.from_json(bad)
    with pytest.raises(ValueError, match="never be met"):
        DependencySpec.from_json({"msg_ids": ["x"], "success": False, "failure": False})


def test_after_all_success() -> None:
    assert check_after(None, table()).verdict == MET
    assert check_after(dep("a", "b"), table(a=OK_A, b=OK_B)).verdict == MET
    assert check_after(dep("a", "b"), table(a=OK_A, b=PENDING)).verdict == UNMET
    failed = check_after(dep("a", "b"), table(a=ERR_A, b=PENDING))
    assert failed.verdict == IMPOSSIBLE
    assert "a" in failed.reason
    assert "error" in failed.reason
    unknown = check_after(dep("a"), table())
    assert unknown.verdict == IMPOSSIBLE
    assert "unknown" in unknown.reason


def test_after_any() -> None:
    assert check_after(dep("a", "b", all=False), table(a=ERR_A, b=OK_B)).verdict == MET
    assert check_after(dep("a", "b", all=False), table(a=ERR_A, b=PENDING)).verdict == UNMET
    assert check_after(dep("a", "b", all=False), table(a=ERR_A)).verdict == IMPOSSIBLE


def test_after_failure_flags() -> None:
    only_failure = {"success": False, "failure": True}
    assert check_after(dep("a", **only_failure), table(a=ERR_A)).verdict == MET
    assert check_after(dep("a", **only_failure), table(a=OK_A)).verdict == IMPOSSIBLE
    aborted = ("completed", "aborted", "A")
    assert check_after(dep("a", **only_failure), table(a=aborted)).verdict == MET
    both = {"success": True, "failure": True}
    assert check_after(dep("a", "b", **both), table(a=ERR_A, b=OK_B)).verdict == MET


def test_follow_all_runs_where_every_prerequisite_ran() -> None:
    live = {"A", "B"}
    met = check_follow(dep("a", "b"), table(a=OK_A, b=OK_A), live)
    assert met.verdict == MET
    assert met.allowed == {"A"}
    assert check_follow(dep("a", "b"), table(a=OK_A, b=PENDING), live).verdict == UNMET
    split = check_follow(dep("a", "b"), table(a=OK_A, b=OK_B), live)
    assert split.verdict == IMPOSSIBLE
    assert "different engines" in split.reason
    gone = check_follow(dep("a"), table(a=OK_A), {"B"})
    assert gone.verdict == IMPOSSIBLE
    assert "gone" in gone.reason
    assert check_follow(dep("a"), table(a=ERR_A), live).verdict == IMPOSSIBLE


def test_follow_any_allows_each_live_place() -> None:
    live = {"A", "B"}
    met = check_follow(dep("a", "b", all=False), table(a=OK_A, b=OK_B), live)
    assert met.allowed == {"A", "B"}
    partial = check_follow(dep("a", "b", all=False), table(a=OK_A, b=PENDING), live)
    assert partial.verdict == MET
    assert partial.allowed == {"A"}
    # the only finished one ran on an engine that left, the other is still running: wait
    assert check_follow(dep("a", "b", all=False), table(a=OK_A, b=PENDING), {"B"}).verdict == UNMET
    assert check_follow(dep("a", "b", all=False), table(a=OK_A, b=ERR_A), {"B"}).verdict == IMPOSSIBLE


def test_both_together() -> None:
    live = {"A", "B"}
    lookup = table(a=OK_A, b=OK_B, p=PENDING, e=ERR_A)
    assert check(dep("a"), dep("b"), lookup, live).allowed == {"B"}
    assert check(dep("p"), dep("b"), lookup, live).verdict == UNMET
    assert check(dep("e"), dep("p"), lookup, live).verdict == IMPOSSIBLE
    assert check(dep("p"), dep("e"), lookup, live).verdict == IMPOSSIBLE
    unrestricted = check(None, None, lookup, live)
    assert unrestricted.verdict == MET
    assert unrestricted.allowed is None
