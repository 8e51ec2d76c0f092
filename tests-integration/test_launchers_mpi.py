"""The mpi launcher: a real ``mpiexec`` with 4 ranks, engine id = rank, mpi4py among the engines.

Needs an MPI (``mpiexec``) and mpi4py; ``.ci/run`` installs Open MPI, and the integration env
installs mpi4py. Without them these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from corral.client import Client, interactive
from corral.cluster import Cluster
from corral.launchers import LaunchError

pytestmark = pytest.mark.timeout(180)

MPIEXEC = shutil.which("mpiexec")


def _mpi_args() -> str:
    """Open MPI refuses root without --allow-run-as-root, and 4 ranks on 2 cores without --oversubscribe."""
    assert MPIEXEC is not None
    version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True, timeout=30).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        return "--oversubscribe" + (" --allow-run-as-root" if os.geteuid() == 0 else "")
    return ""


@pytest.fixture(scope="module")
def mpi_options() -> dict[str, str]:
    if MPIEXEC is None:
        pytest.skip("mpiexec is not installed (.ci/run installs openmpi-bin): the mpi launcher cannot be tested here")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (the integration env installs it): engines cannot use MPI here")
    return {"mpi_args": _mpi_args()}


@interactive
def _ranks_and_sum() -> tuple[int, int, int]:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return comm.rank, comm.size, comm.allreduce(comm.rank + 1, op=MPI.SUM)


def test_engines_are_mpi_ranks_and_allreduce_across_them(mpi_options: dict[str, str]) -> None:
    cluster = Cluster(n=4, engines="mpi", launcher_options=mpi_options, engine_timeout=120)
    with cluster as rc:
        assert rc.ids == [0, 1, 2, 3]
        assert len(cluster.engines) == 1  # one mpiexec runs all four
        assert cluster.engines[0].cmd[:3] == ["mpiexec", "-n", "4"]
        # each engine's id is its rank; the client drives an allreduce among them
        # a collective runs on every rank at once: the client drives all four together
        assert rc[:].apply_sync(_ranks_and_sum) == [(rank, 4, 1 + 2 + 3 + 4) for rank in range(4)]
        # data scattered from the client, reduced among the engines with MPI
        dv = rc[:]
        dv.scatter("part", list(range(100)), block=True)

        @interactive
        def reduce_part() -> int:
            from mpi4py import MPI

            return MPI.COMM_WORLD.allreduce(sum(part), op=MPI.SUM)  # type: ignore[name-defined]  # noqa: F821

        assert dv.apply_sync(reduce_part) == [sum(range(100))] * 4
        engine_pids = dv.apply_sync(interactive(lambda: __import__("os").getpid()))
        mpiexec = cluster.engines[0]
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in engine_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in engine_pids)
    assert not mpiexec.alive()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_missing_mpiexec_fails_at_once_with_the_fix() -> None:
    cluster = Cluster(n=2, engines="mpi", launcher_options={"mpiexec": "/nonexistent/mpiexec"})
    t0 = time.monotonic()
    with pytest.raises(LaunchError, match=r"needs `/nonexistent/mpiexec`, which is not on PATH.*apt-get install"):
        cluster.start_and_connect_sync()
    assert time.monotonic() - t0 < 30
    assert cluster.controller is None  # the controller it had started was stopped again
    assert not cluster.connection_file.exists()


def test_ranks_that_cannot_start_report_command_and_output(mpi_options: dict[str, str]) -> None:
    options = {**mpi_options, "python": "/nonexistent/python3"}
    cluster = Cluster(n=2, engines="mpi", launcher_options=options, engine_timeout=90)
    t0 = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        cluster.start_and_connect_sync()
    elapsed = time.monotonic() - t0
    text = str(caught.value)
    assert "an engine of cluster" in text
    assert f"command: mpiexec -n 2 {options['mpi_args']}".rstrip() in text
    assert "/nonexistent/python3 -m corral.engine" in text  # the command it ran
    assert "/nonexistent/python3" in text.split("\n", 3)[-1]  # and mpiexec's own output naming it
    assert elapsed < 90
    assert cluster.controller is None
    assert cluster.engines == []


def test_mpi_rank_is_requested_and_a_taken_id_is_refused(cluster_factory: Callable[..., Any]) -> None:
    """Without mpiexec: an engine started with --mpi asks for the rank its environment names."""
    cluster, rc = cluster_factory(2)
    engine = [sys.executable, "-m", "corral.engine", "--connection-file", str(cluster.connection_file), "--mpi"]
    taken = subprocess.run(
        engine, env={**os.environ, "OMPI_COMM_WORLD_RANK": "1"}, capture_output=True, text=True, timeout=60
    )
    assert taken.returncode == 1
    assert "refused this engine" in taken.stderr
    assert "engine id 1 is held by a live engine" in taken.stderr
    none = subprocess.run(engine, capture_output=True, text=True, timeout=60, env={
        k: v for k, v in os.environ.items() if k not in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")
    })  # fmt: skip
    assert none.returncode == 1
    assert "--mpi needs an MPI rank in the environment" in none.stderr
    free = subprocess.Popen(
        engine, env={**os.environ, "PMI_RANK": "7"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        rc.wait_for_engines(3, timeout=60)
        assert sorted(rc.ids) == [0, 1, 7]
        assert rc[7].apply_sync(os.getppid) == free.pid  # the supervised engine under that process
    finally:
        free.terminate()
        free.wait(30)


def test_corral_start_and_stop_an_mpi_cluster(mpi_options: dict[str, str], cli: Any) -> None:
    out = cli("start", "-n", "4", "--engines", "mpi", "-o", f"mpi_args={mpi_options['mpi_args']}",
              "--cluster-id", "cli-mpi", timeout=150)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "controller and 4 engines ready" in out.stdout
    listing = cli("list").stdout
    row = next(line for line in listing.splitlines() if line.startswith("cli-mpi"))
    assert row.split()[3] == "4"  # one mpiexec entry counted as its 4 engines
    from corral.wire.paths import cluster_record_path

    record = json.loads(cluster_record_path("cli-mpi").read_text())
    assert [(e["launcher"], e["engines"]) for e in record["engines"]] == [("mpi", 4)]
    with Client(cluster_id="cli-mpi") as rc:
        assert rc.ids == [0, 1, 2, 3]
        engine_pids = rc[:].apply_sync(interactive(lambda: __import__("os").getpid()))
    stopped = cli("stop", "--cluster-id", "cli-mpi")
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in [*engine_pids, record["engines"][0]["pid"]]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in [*engine_pids, record["engines"][0]["pid"]])
