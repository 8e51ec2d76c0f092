"""Engine choice as pure functions: each scheme, the high-water mark, and restrictions."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from corral.scheduler.policies import SCHEMES, choose, with_room

pytestmark = pytest.mark.timeout(30)

ENGINES = ["a", "b", "c"]


def test_leastload_picks_the_fewest_outstanding_then_the_least_recently_used() -> None:
    rng = random.Random(0)
    assert choose("leastload", ENGINES, {"a": 2, "b": 0, "c": 1}, {}, 0, rng) == "b"
    # a tie on load goes to the engine given a task longest ago
    assert choose("leastload", ENGINES, {"a": 1, "b": 1, "c": 1}, {"a": 5, "b": 3, "c": 4}, 0, rng) == "b"
    # never used counts as least recent
    assert choose("leastload", ENGINES, {}, {"a": 1, "b": 2}, 0, rng) == "c"


def test_lru_ignores_load() -> None:
    rng = random.Random(0)
    assert choose("lru", ENGINES, {"a": 3, "b": 0, "c": 0}, {"a": 1, "b": 7, "c": 9}, 0, rng) == "a"


def test_plainrandom_spreads_over_every_engine_and_repeats_with_a_seed() -> None:
    picks = [choose("plainrandom", ENGINES, {}, {}, 0, random.Random(i)) for i in range(200)]
    assert set(picks) == set(ENGINES)
    again = [choose("plainrandom", ENGINES, {}, {}, 0, random.Random(i)) for i in range(200)]
    assert picks == again


def test_twobin_never_picks_the_heaviest_of_three() -> None:
    loads = {"a": 0, "b": 1, "c": 5}
    picks = Counter(choose("twobin", ENGINES, loads, {}, 0, random.Random(i)) for i in range(300))
    assert picks["c"] == 0
    assert picks["a"] > picks["b"] > 0


def test_weighted_favours_spare_capacity_and_skips_full_engines() -> None:
    loads = {"a": 0, "b": 3, "c": 4}
    picks = Counter(choose("weighted", ENGINES, loads, {}, 4, random.Random(i)) for i in range(400))
    assert picks["c"] == 0  # full
    assert picks["a"] > picks["b"] > 0  # spare 4 vs 1


def test_weighted_without_a_limit_still_prefers_lighter_engines() -> None:
    loads = {"a": 0, "b": 9}
    picks = Counter(choose("weighted", ["a", "b"], loads, {}, 0, random.Random(i)) for i in range(400))
    assert picks["a"] > picks["b"] > 0


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_scheme_respects_the_high_water_mark(scheme: str) -> None:
    loads = {"a": 2, "b": 2, "c": 1}
    for seed in range(50):
        assert choose(scheme, ENGINES, loads, {}, 2, random.Random(seed)) == "c"
    assert choose(scheme, ENGINES, {"a": 2, "b": 2, "c": 2}, {}, 2, random.Random(0)) is None


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_scheme_stays_within_the_allowed_engines(scheme: str) -> None:
    loads = {"a": 0, "b": 5, "c": 5}
    for seed in range(50):
        assert choose(scheme, ENGINES, loads, {}, 0, random.Random(seed), allowed={"b", "c"}) in {"b", "c"}
    assert choose(scheme, ENGINES, loads, {}, 5, random.Random(0), allowed={"b", "c"}) is None
    assert choose(scheme, ENGINES, loads, {}, 0, random.Random(0), allowed=set()) is None


def test_with_room_and_no_candidates() -> None:
    assert with_room(ENGINES, {"a": 1}, 1) == ["b", "c"]
    assert with_room(ENGINES, {"a": 100}, 0) == ENGINES
    assert choose("leastload", [], {}, {}, 0, random.Random(0)) is None


def test_an_unknown_scheme_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        choose("fastest", ENGINES, {}, {}, 0, random.Random(0))
