"""BenchmarkResult: the statistics and the table users read (no cluster needed)."""

from __future__ import annotations

import pytest

from corral.client import BenchmarkResult, Measurement


def _result() -> BenchmarkResult:
    return BenchmarkResult(
        engines=(0, 1),
        runs=3,
        size_mb=4.0,
        measurements=(
            Measurement("latency, 1 engine", "ms", (2.0, 1.0, 9.0)),
            Measurement("push 4 MB to 2 engines", "MB/s", (300.0, 450.0, 420.0)),
        ),
    )


def test_median_and_range_come_from_every_run() -> None:
    lat = _result()["latency, 1 engine"]
    assert (lat.median, lat.min, lat.max) == (2.0, 1.0, 9.0)
    push = _result()["push 4 MB to 2 engines"]
    assert (push.median, push.min, push.max) == (420.0, 300.0, 450.0)


def test_the_table_shows_median_and_range_with_units() -> None:
    lines = str(_result()).splitlines()
    assert lines[0] == "corral benchmark: engines [0, 1], 3 runs each, array of 4 MB (float64)"
    assert lines[1].split() == ["measurement", "median", "min", "-", "max"]
    assert lines[3].split() == ["latency,", "1", "engine", "2", "1", "-", "9", "ms"]
    assert lines[4].split() == ["push", "4", "MB", "to", "2", "engines", "420", "300", "-", "450", "MB/s"]


def test_an_unknown_measurement_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="latency, 1 engine"):
        _result()["latency"]
