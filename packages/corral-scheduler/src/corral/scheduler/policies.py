"""Engine choice for load-balanced tasks: pure functions, no sockets.

Each scheme picks one engine among ``candidates`` (the engines a task may run on), given
how many tasks each has outstanding (``loads``), when each was last given a task
(``last_used``: larger is more recent) and the high-water mark ``hwm`` (an engine with
``hwm`` tasks outstanding has no room; ``0`` means no limit). Randomness comes from the
``rng`` passed in, so tests choose its seed.

============  =========================================================================
scheme        choice among the engines with room
============  =========================================================================
leastload     fewest outstanding tasks, ties broken by least recently used (default)
lru           least recently used
plainrandom   uniformly at random
twobin        the lighter of two engines drawn at random (ties: least recently used)
weighted      at random, weighted by spare capacity (``hwm - load``; ``1/(1+load)``
              without a limit)
============  =========================================================================
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import TypeVar

__all__ = ["DEFAULT_SCHEME", "SCHEMES", "choose", "leastload", "lru", "plainrandom", "twobin", "weighted", "with_room"]

E = TypeVar("E", bound=Hashable)

#: A scheme: (engines with room, loads, last_used, hwm, rng) -> chosen engine.
Scheme = Callable[[Sequence[E], Mapping[E, int], Mapping[E, int], int, random.Random], E]

DEFAULT_SCHEME = "leastload"


def with_room(candidates: Sequence[E], loads: Mapping[E, int], hwm: int) -> list[E]:
    """Return the candidates with fewer than ``hwm`` tasks outstanding (all of them if ``hwm`` is 0)."""
    if hwm <= 0:
        return list(candidates)
    return [e for e in candidates if loads.get(e, 0) < hwm]


def leastload(
    engines: Sequence[E], loads: Mapping[E, int], last_used: Mapping[E, int], hwm: int, rng: random.Random
) -> E:
    """Return the engine with the fewest outstanding tasks; ties go to the least recently used."""
    if len(engines) == 1:
        return engines[0]
    return min(engines, key=lambda e: (loads.get(e, 0), last_used.get(e, -1)))


def lru(engines: Sequence[E], loads: Mapping[E, int], last_used: Mapping[E, int], hwm: int, rng: random.Random) -> E:
    """Return the least recently used engine."""
    return min(engines, key=lambda e: last_used.get(e, -1))


def plainrandom(
    engines: Sequence[E], loads: Mapping[E, int], last_used: Mapping[E, int], hwm: int, rng: random.Random
) -> E:
    """Return an engine drawn uniformly at random."""
    return engines[rng.randrange(len(engines))]


def twobin(engines: Sequence[E], loads: Mapping[E, int], last_used: Mapping[E, int], hwm: int, rng: random.Random) -> E:
    """Return the lighter of two engines drawn at random (ties: the least recently used)."""
    if len(engines) == 1:
        return engines[0]
    a, b = rng.sample(list(engines), 2)
    return min((a, b), key=lambda e: (loads.get(e, 0), last_used.get(e, -1)))


def weighted(
    engines: Sequence[E], loads: Mapping[E, int], last_used: Mapping[E, int], hwm: int, rng: random.Random
) -> E:
    """Return an engine drawn at random, weighted by its spare capacity."""
    if hwm > 0:
        weights = [float(max(hwm - loads.get(e, 0), 0)) for e in engines]
    else:
        weights = [1.0 / (1 + loads.get(e, 0)) for e in engines]
    return rng.choices(list(engines), weights=weights)[0]


SCHEMES: Mapping[str, Scheme[Hashable]] = {
    "leastload": leastload,
    "lru": lru,
    "plainrandom": plainrandom,
    "twobin": twobin,
    "weighted": weighted,
}


def choose(
    scheme: str,
    candidates: Sequence[E],
    loads: Mapping[E, int],
    last_used: Mapping[E, int],
    hwm: int,
    rng: random.Random,
    allowed: Collection[E] | None = None,
) -> E | None:
    """Pick the engine for one task, or None when no allowed engine has room.

    Parameters
    ----------
    scheme
        A key of :data:`SCHEMES`.
    candidates
        Engines tasks may go to (in a stable order, so a seeded ``rng`` repeats its choices).
    loads
        Tasks outstanding per engine (missing: 0).
    last_used
        When each engine was last given a task, as an increasing counter (missing: never).
    hwm
        Most tasks outstanding per engine; 0 for no limit.
    rng
        Source of randomness for the random schemes.
    allowed
        Restrict the choice to these engines (the task's ``targets`` and ``follow``).

    Returns
    -------
    engine or None

    Raises
    ------
    KeyError
        If ``scheme`` is not one of :data:`SCHEMES`.
    """
    pick = SCHEMES[scheme]
    pool = candidates if allowed is None else [e for e in candidates if e in allowed]
    room = with_room(pool, loads, hwm)
    if not room:
        return None
    return pick(room, loads, last_used, hwm, rng)  # type: ignore[arg-type,return-value]
