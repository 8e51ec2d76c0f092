"""Task dependencies as the scheduler sees them: pure code, no sockets.

A task's ``header["sched"]`` may hold ``after`` (time: run only after these tasks finished)
and ``follow`` (location: run only on an engine where these tasks ran), each in the JSON form
of ``docs/scheduling.md``::

    {"msg_ids": [...], "all": true, "success": true, "failure": false}

What a prerequisite became comes from a *lookup* the scheduler supplies, answering for any
msg_id with an :data:`Outcome` ``(state, status, engine)``: ``state`` is ``"completed"``,
``"pending"`` or ``"unknown"``; ``status`` the reply's (``"ok"``, ``"error"``, ``"aborted"``)
once completed; ``engine`` where it ran, if it did.

Each check answers :data:`MET`, :data:`UNMET` (not yet: wait) or :data:`IMPOSSIBLE` (can never
be met: fail the task with ``ImpossibleDependency``), with a reason for the latter.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "IMPOSSIBLE",
    "MET",
    "UNMET",
    "Check",
    "DependencySpec",
    "Lookup",
    "Outcome",
    "check",
    "check_after",
    "check_follow",
]

MET = "met"
UNMET = "unmet"
IMPOSSIBLE = "impossible"

E = TypeVar("E", bound=Hashable)

#: (state, status, engine) of a prerequisite, see the module docstring.
Outcome = tuple[str, "str | None", "Any | None"]
Lookup = Callable[[str], Outcome]


@dataclass(frozen=True, slots=True)
class DependencySpec:
    """The scheduler's reading of one ``after`` or ``follow`` dependency.

    Attributes
    ----------
    msg_ids
        The prerequisite tasks.
    all
        Met when all of them (True) or any of them (False) finished acceptably.
    success, failure
        Whether status ``ok`` (success) and ``error``/``aborted`` (failure) are acceptable.
    """

    msg_ids: tuple[str, ...]
    all: bool = True
    success: bool = True
    failure: bool = False

    @classmethod
    def from_json(cls, obj: Any) -> DependencySpec | None:
        """Read the JSON form; None (or an empty list) means no dependency.

        A bare list of msg_ids is read as ``{"msg_ids": [...]}`` with the defaults.

        Raises
        ------
        ValueError
            If the object is not of the documented shape, or accepts neither outcome.
        """
        if obj is None:
            return None
        if isinstance(obj, list):
            obj = {"msg_ids": obj}
        if not isinstance(obj, dict):
            raise ValueError(f"a dependency is an object with msg_ids, not {type(obj).__name__}")
        ids = obj.get("msg_ids", [])
        if not isinstance(ids, list) or not all(isinstance(m, str) for m in ids):
            raise ValueError("a dependency's msg_ids must be a list of strings")
        flags = {}
        for key, default in (("all", True), ("success", True), ("failure", False)):
            value = obj.get(key, default)
            if not isinstance(value, bool):
                raise ValueError(f"a dependency's {key!r} must be true or false, not {value!r}")
            flags[key] = value
        if not ids:
            return None
        if not flags["success"] and not flags["failure"]:
            raise ValueError("a dependency with success and failure both false can never be met")
        return cls(tuple(dict.fromkeys(ids)), flags["all"], flags["success"], flags["failure"])

    def accepts(self, status: str | None) -> bool:
        """Whether a prerequisite that finished with ``status`` counts."""
        return self.success if status == "ok" else self.failure


@dataclass(frozen=True, slots=True)
class Check(Generic[E]):
    """The verdict on a task's dependencies.

    Attributes
    ----------
    verdict
        :data:`MET`, :data:`UNMET` or :data:`IMPOSSIBLE`.
    allowed
        When met: the engines ``follow`` allows (None: any engine).
    reason
        Why it is impossible (empty otherwise).
    """

    verdict: str
    allowed: frozenset[E] | None = None
    reason: str = ""


def _why(msg_id: str, state: str, status: str | None, dep: DependencySpec) -> str:
    if state == "unknown":
        return f"task {msg_id} is unknown (never submitted, or purged)"
    wanted = " or ".join(w for w, on in (("success", dep.success), ("failure", dep.failure)) if on)
    return f"task {msg_id} finished with status {status!r}, and the dependency needs {wanted}"


def check_after(dep: DependencySpec | None, lookup: Lookup) -> Check[Any]:
    """Judge a time dependency: have the prerequisites finished acceptably?"""
    if dep is None:
        return Check(MET)
    waiting = False
    reasons = []
    for msg_id in dep.msg_ids:
        state, status, _ = lookup(msg_id)
        if state == "completed" and dep.accepts(status):
            if not dep.all:
                return Check(MET)
        elif state == "pending":
            waiting = True
        else:
            if dep.all:
                return Check(IMPOSSIBLE, reason=_why(msg_id, state, status, dep))
            reasons.append(_why(msg_id, state, status, dep))
    if dep.all:
        return Check(UNMET) if waiting else Check(MET)
    if waiting:
        return Check(UNMET)
    return Check(IMPOSSIBLE, reason="none of the prerequisites can be met: " + "; ".join(reasons))


def check_follow(dep: DependencySpec | None, lookup: Lookup, live: Collection[E]) -> Check[E]:
    """Judge a location dependency: on which live engines did the prerequisites run?

    Parameters
    ----------
    dep
        The ``follow`` dependency, or None.
    lookup
        Answers for each prerequisite (its engine must compare equal to members of ``live``).
    live
        Engines tasks can run on now; a prerequisite's engine that is not among them is gone.
    """
    if dep is None:
        return Check(MET)
    waiting = False
    places: set[E] = set()
    reasons = []
    for msg_id in dep.msg_ids:
        state, status, engine = lookup(msg_id)
        if state == "pending":
            waiting = True
            continue
        if state != "completed" or not dep.accepts(status):
            if dep.all:
                return Check(IMPOSSIBLE, reason=_why(msg_id, state, status, dep))
            reasons.append(_why(msg_id, state, status, dep))
            continue
        if engine is None or engine not in live:
            if dep.all:
                return Check(IMPOSSIBLE, reason=f"task {msg_id} ran on an engine that is gone")
            reasons.append(f"task {msg_id} ran on an engine that is gone")
            continue
        if not dep.all:
            places.add(engine)
            continue
        places.add(engine)
        if len(places) > 1:
            return Check(IMPOSSIBLE, reason="the tasks to follow ran on different engines")
    if places and not dep.all:
        return Check(MET, frozenset(places))
    if waiting:
        return Check(UNMET)
    if dep.all:
        return Check(MET, frozenset(places))
    return Check(IMPOSSIBLE, reason="no engine where a task to follow ran is left: " + "; ".join(reasons))


def check(after: DependencySpec | None, follow: DependencySpec | None, lookup: Lookup, live: Collection[E]) -> Check[E]:
    """Judge both dependencies of a task: impossible if either is, met if both are."""
    a = check_after(after, lookup)
    if a.verdict == IMPOSSIBLE:
        return a
    f = check_follow(follow, lookup, live)
    if f.verdict == IMPOSSIBLE:
        return f
    if a.verdict == MET and f.verdict == MET:
        return f
    return Check(UNMET)
