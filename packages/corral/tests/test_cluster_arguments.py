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
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Cluster(**kwargs)  # type: ignore[arg-type]


def test_log_level_is_accepted_in_any_case() -> None:
    assert Cluster(n=1, log_level="debug").log_level == "DEBUG"
