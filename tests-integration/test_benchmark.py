"""``Client.benchmark()`` and ``corral bench`` measure the live shared cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import CLI

    from corral.client import Client

pytestmark = pytest.mark.timeout(90)


def test_benchmark_measures_latency_and_push_on_the_chosen_engines(rc: Client) -> None:
    result = rc.benchmark(runs=3, size_mb=2, targets=[1, 2])
    assert result.engines == (1, 2)
    names = [m.name for m in result.measurements]
    assert names == [
        "latency, 1 engine",
        "latency, 2 engines at once",
        "push 2 MB to 1 engine",
        "push 2 MB to 2 engines",
    ]
    for m in result.measurements:
        assert len(m.values) == 3
        assert 0 < m.min <= m.median <= m.max
    # a round trip on loopback takes well under 5 s and more than a microsecond
    assert 0.001 < result["latency, 1 engine"].median < 5000
    # 2 MB per engine moved at least at 1 MB/s (loopback does hundreds)
    assert result["push 2 MB to 2 engines"].min > 1
    table = str(result)
    assert "median" in table
    assert "min - max" in table
    assert "push 2 MB to 2 engines" in table
    # the pushed array does not stay behind in the engines' namespaces
    assert rc[1:3].apply_sync(lambda: "_corral_benchmark_array" in globals()) == [False, False]


def test_benchmark_refuses_bad_arguments(rc: Client) -> None:
    with pytest.raises(ValueError, match="runs"):
        rc.benchmark(runs=0)
    with pytest.raises(ValueError, match="size_mb"):
        rc.benchmark(size_mb=0)
    with pytest.raises(IndexError):
        rc.benchmark(targets=[99])


def test_corral_bench_prints_the_table(cli: CLI, rc: Client) -> None:
    out = cli("bench", "--cluster-id", "shared", "--runs", "2", "--size-mb", "1", "--targets", "0,3")
    assert out.returncode == 0, out.stderr
    assert "engines [0, 3], 2 runs each, array of 1 MB" in out.stdout
    assert "latency, 1 engine" in out.stdout
    assert "push 1 MB to 2 engines" in out.stdout


def test_corral_bench_errors_name_the_problem_and_the_fix(cli: CLI, rc: Client) -> None:
    out = cli("bench", "--cluster-id", "no-such-cluster")
    assert out.returncode == 1
    assert "corral start" in out.stderr
    out = cli("bench", "--cluster-id", "shared", "--targets", "0,x")
    assert out.returncode == 2
    assert "comma-separated list of engine ids" in out.stderr
    out = cli("bench", "--cluster-id", "shared", "--targets", "42", "--runs", "1", "--size-mb", "0.1")
    assert out.returncode == 2
    assert "--targets" in out.stderr
    assert str(rc.ids) in out.stderr
