"""Cluster refuses unusable arguments when it is made, naming the valid choices."""

from __future__ import annotations

import pytest

from corral.cluster import Cluster


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1}, "n must be a non-negative number of engines"),
        ({"log_level": "LOUD"}, "log_level must be one of DEBUG, INFO, WARNING, ERROR, not 'LOUD'"),
        ({"ip": "not an ip"}, "ip must be an address or host name of this machine, e.g. '127.0.0.1'"),
        ({"ip": ""}, "ip must be an address or host name"),
        ({"signature_scheme": "md5"}, "unknown signature scheme 'md5'; choose one of"),
        ({"engines": "nope"}, "no launcher named 'nope'; available: .*local"),
        ({"cluster_id": "a/b"}, "invalid cluster id 'a/b'"),
        ({"broadcast_depth": -1}, "broadcast depth must be 0 (one scheduler) or a positive integer, not -1"),
        ({"broadcast_depth": 1, "broadcast_fanout": 1}, "broadcast fanout must be an integer of at least 2, not 1"),
        ({"broadcast_fanout": 0}, "broadcast fanout must be an integer of at least 2, not 0"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Cluster(**kwargs)  # type: ignore[arg-type]


def test_log_level_is_accepted_in_any_case() -> None:
    assert Cluster(n=1, log_level="debug").log_level == "DEBUG"


def test_the_broadcast_tree_is_on_by_default_only_for_large_clusters() -> None:
    from corral.cluster.cluster import BROADCAST_TREE_ENGINES

    assert Cluster(n=4).controller_broadcast_depth == 0
    assert Cluster(n=BROADCAST_TREE_ENGINES - 1).controller_broadcast_depth == 0
    assert Cluster(n=BROADCAST_TREE_ENGINES).controller_broadcast_depth == 1
    assert Cluster(n=BROADCAST_TREE_ENGINES, broadcast_depth=0).controller_broadcast_depth == 0
    assert Cluster(n=2, broadcast_depth=2).controller_broadcast_depth == 2
