"""The joblib backend "corral": joblib.Parallel workloads run on a real cluster's engines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from corral.client import interactive

if TYPE_CHECKING:
    from corral.client import Client
    from corral.cluster import Cluster

joblib = pytest.importorskip("joblib")

pytestmark = pytest.mark.timeout(90)

# The functions are sent by value (`interactive`): engines cannot import this test module.


@interactive
def _pid_and_square(x: int) -> tuple[int, int]:
    import os
    import time

    time.sleep(0.02)  # long enough that one engine cannot take every batch
    return os.getpid(), x * x


@interactive
def _mean_of_random(seed: int) -> float:
    import numpy as np

    return float(np.random.default_rng(seed).random(10_000).mean())


@interactive
def _fails(x: int) -> float:
    return 1 / (x - 3)


@pytest.fixture(autouse=True)
def _registered() -> None:
    from corral.client import register_joblib

    register_joblib()


def test_parallel_runs_every_call_on_the_engines(rc: Client) -> None:
    engine_pids = set(rc[:].apply_sync(os.getpid))
    with joblib.parallel_config(backend="corral", client=rc):
        out = joblib.Parallel(n_jobs=-1, batch_size=1)(joblib.delayed(_pid_and_square)(i) for i in range(40))
    assert [sq for _, sq in out] == [i * i for i in range(40)]
    used = {pid for pid, _ in out}
    assert used <= engine_pids, "calls ran outside the cluster"
    assert os.getpid() not in used
    assert len(used) >= 2, f"all 40 calls ran on one engine: {used}"


def test_numpy_workload_with_auto_batching_matches_a_local_run(rc: Client) -> None:
    with joblib.parallel_config(backend="corral", client=rc):
        remote = joblib.Parallel()(joblib.delayed(_mean_of_random)(s) for s in range(200))
    assert remote == [_mean_of_random(s) for s in range(200)]


def test_n_jobs_is_the_number_of_engines(rc: Client) -> None:
    with joblib.parallel_config(backend="corral", client=rc):
        assert joblib.effective_n_jobs(-1) == len(rc.ids)
        assert joblib.effective_n_jobs(2) == 2


def test_a_failing_call_raises_its_error_here(rc: Client) -> None:
    from corral.client import RemoteError

    with joblib.parallel_config(backend="corral", client=rc), pytest.raises(RemoteError) as info:
        joblib.Parallel(batch_size=1)(joblib.delayed(_fails)(i) for i in range(8))
    assert info.value.ename == "ZeroDivisionError"
    # the cluster still serves afterwards
    with joblib.parallel_config(backend="corral", client=rc):
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]


def test_without_a_client_it_connects_to_the_newest_cluster(
    cluster: Cluster, rc: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "security").mkdir(mode=0o700)
    shutil.copy(cluster.connection_file, tmp_path / "security" / "corral-newest.json")
    monkeypatch.setenv("CORRAL_DIR", str(tmp_path))
    engine_pids = set(rc[:].apply_sync(os.getpid))
    with joblib.parallel_config(backend="corral"):
        out = joblib.Parallel(batch_size=1)(joblib.delayed(_pid_and_square)(i) for i in range(8))
    assert [sq for _, sq in out] == [i * i for i in range(8)]
    assert {pid for pid, _ in out} <= engine_pids


def test_without_any_cluster_the_error_says_how_to_start_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from corral.client import ConnectionFileError

    monkeypatch.setenv("CORRAL_DIR", str(tmp_path))
    with pytest.raises(ConnectionFileError, match="corral start"), joblib.parallel_config(backend="corral"):
        joblib.Parallel()(joblib.delayed(abs)(-1) for _ in range(2))


def _python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_corral_client_does_not_import_joblib() -> None:
    assert _python("import sys, corral.client; print('joblib' in sys.modules)") == "False"


def test_importing_corral_client_after_joblib_registers_the_backend() -> None:
    code = "import joblib, joblib.parallel as p, corral.client; print('corral' in p.BACKENDS)"
    assert _python(code) == "True"
    code = "import joblib.parallel as p; print('corral' in p.BACKENDS)"
    assert _python(code) == "False"
