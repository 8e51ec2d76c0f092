"""Engines through a real single-node Slurm: ``sbatch`` job arrays, ``squeue``, ``scancel``.

The module's fixture starts its own Slurm from the OS packages (``munged``, ``slurmctld``,
``slurmd``; ``.ci/run`` installs them) with a ``slurm.conf`` written into a temporary
directory: one node (this host, 2 CPUs), one partition, private ports and a private munge key
and socket. The daemons are this test process's children, stopped by pid at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SLURM_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "scontrol")

#: seconds the daemons get to bring the node to ``idle``
SLURM_START = 40.0


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(*cmd: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _stop_daemons(daemons: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(daemons):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in reversed(daemons):
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running single-node Slurm; ``SLURM_CONF`` points the client commands at it."""
    if not sys.platform.startswith("linux"):
        pytest.skip("a local Slurm needs Linux")
    missing = [p for p in SLURM_PROGRAMS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if missing:
        pytest.skip(f"Slurm is not installed (missing {', '.join(missing)}); .ci/run installs slurm-wlm and munge")
    if os.geteuid() != 0:
        pytest.skip("the local Slurm runs slurmd, which needs root (the CI runs as root)")
    base = tmp_path_factory.mktemp("slurm")
    base.chmod(0o755)
    for sub in ("state", "spool", "munge"):
        (base / sub).mkdir()
    (base / "munge").chmod(0o755)
    key = base / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    node = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = _free_ports(2)
    conf = base / "slurm.conf"
    conf.write_text(
        f"""ClusterName=corraltest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={base}/munge/munge.sock
CryptoType=crypto/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
KillWait=5
MinJobAge=300
NodeName={node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=corral Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    )
    # the daemons must not carry the session's CORRAL_DIR (the session's leftover check)
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_DIR"}
    env["SLURM_CONF"] = str(conf)
    sbin = "/usr/sbin:/sbin:"
    env["PATH"] = sbin + env.get("PATH", "")
    commands = {
        "munged": [
            "munged", "--foreground", "--force", f"--socket={base}/munge/munge.sock", f"--key-file={key}",
            f"--log-file={base}/munge/munged.log", f"--pid-file={base}/munge/munged.pid",
            f"--seed-file={base}/munge/seed", "--num-threads=2",
        ],
        "slurmctld": ["slurmctld", "-D", "-i", "-f", str(conf)],
        "slurmd": ["slurmd", "-D", "-f", str(conf), "-N", node],
    }  # fmt: skip
    daemons: list[subprocess.Popen[bytes]] = []
    logs = {name: base / f"{name}.out" for name in commands}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(conf))
        mp.setenv("PATH", sbin + os.environ.get("PATH", ""))
        try:
            for name, cmd in commands.items():
                with open(logs[name], "wb") as out:
                    daemons.append(
                        subprocess.Popen(
                            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True,
                        )
                    )  # fmt: skip
                if name == "munged":
                    deadline = time.monotonic() + 10
                    while not (base / "munge" / "munge.sock").exists() and time.monotonic() < deadline:
                        time.sleep(0.05)
            deadline = time.monotonic() + SLURM_START
            state = ""
            while state != "idle":
                dead = [p.args[0] for p in daemons if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    report = "\n".join(f"--- {n}\n{_tail(logs[n])}" for n in commands)
                    pytest.fail(
                        f"the test Slurm did not come up within {SLURM_START:g} s "
                        f"(node state {state!r}, exited: {dead or 'none'}):\n{report}\n"
                        f"--- slurmctld.log\n{_tail(base / 'slurmctld.log')}\n--- slurmd.log\n{_tail(base / 'slurmd.log')}"
                    )
                done = _run("sinfo", "--noheader", "--nodes", node, "--format", "%t")
                state = done.stdout.strip()
                time.sleep(0.2)
            yield base
        finally:
            with contextlib.suppress(Exception):
                left = _run("squeue", "--noheader", "--format", "%i").stdout.split()
                if left:
                    _run("scancel", "--signal=KILL", *left)
            _stop_daemons(daemons)


def _jobs() -> list[str]:
    """Every job (array task) the test Slurm still lists."""
    done = _run("squeue", "--noheader", "--format", "%i %T")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split("\n")[:-1] if done.stdout.strip() else []


def _engine_processes(connection_file: Path) -> list[int]:
    """Pids of the engine programs (``-m corral.engine``, supervisors included) of one cluster."""
    needle = str(connection_file).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"corral.engine" in argv and needle in argv:
                    found.append(int(entry.name))
    return found


@pytest.mark.timeout(150)
def test_engines_from_a_slurm_job_array_serve_and_are_cancelled(
    slurm: Path, tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    from corral.cluster import Cluster
    from corral.launchers.batch import SlurmLauncher

    # a site's own template: the built-in one plus a directive of its own
    template = tmp_path / "site.sbatch"
    template.write_text(
        SlurmLauncher.template.replace("#SBATCH --ntasks=1\n", "#SBATCH --ntasks=1\n#SBATCH --nice=7\n")
    )
    options = {"queue": "corral", "walltime": "00:10:00", "template": str(template)}
    cluster = Cluster(n=2, engines="slurm", launcher_options=options, log_level="INFO", engine_timeout=60)
    rc = cluster.start_and_connect_sync()
    try:
        assert [e.engines for e in cluster.engines] == [2]  # one job array of two engines
        job_id = cluster.engines[0].job_id  # type: ignore[attr-defined]
        tasks = _jobs()
        assert sorted(tasks) == [f"{job_id}_0 RUNNING", f"{job_id}_1 RUNNING"], tasks
        shown = _run("scontrol", "--oneliner", "show", "job", job_id).stdout
        assert re.search(r"\bNice=7\b", shown), shown  # the user's template was the one submitted
        assert "TimeLimit=00:10:00" in shown
        # every engine runs inside its array task
        env = rc[:].apply_sync(lambda: dict(__import__("os").environ))
        ids = [(e.get("SLURM_ARRAY_JOB_ID"), e.get("SLURM_ARRAY_TASK_ID")) for e in env]
        assert sorted(ids) == [(job_id, "0"), (job_id, "1")]
        assert rc[:].map_sync(lambda x: x * x, range(20)) == [x * x for x in range(20)]
        engine_pids = rc[:].apply_sync(lambda: __import__("os").getpid())
        running = _engine_processes(cluster.connection_file)
        assert set(engine_pids) <= set(running), (engine_pids, running)
    finally:
        cluster.stop_cluster_sync()
    wait_until(lambda: not _jobs(), "squeue lists no job after stop_cluster", timeout=30)
    wait_until(
        lambda: not _engine_processes(cluster.connection_file), "no engine process after stop_cluster", timeout=15
    )


@pytest.mark.timeout(150)
def test_corral_stop_cancels_the_slurm_job(slurm: Path, cli: Any, wait_until: Callable[..., Any]) -> None:
    started = cli("start", "-n", "2", "--cluster-id", "slurmcli", "--engines", "slurm", "--timeout", "60", timeout=90)
    assert started.returncode == 0, started.stderr
    assert "2 engines ready" in started.stdout
    tasks = _jobs()
    assert len(tasks) == 2, tasks
    assert all(t.endswith("RUNNING") for t in tasks), tasks
    listed = cli("list")
    assert "slurmcli" in listed.stdout
    stopped = cli("stop", "--cluster-id", "slurmcli", timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    wait_until(lambda: not _jobs(), "squeue lists no job after corral stop", timeout=30)
    assert "slurmcli" not in cli("list").stdout


@pytest.mark.timeout(120)
def test_a_slurm_job_that_fails_is_reported_with_command_and_output(
    slurm: Path, wait_until: Callable[..., Any]
) -> None:
    from corral.cluster import Cluster
    from corral.launchers import LaunchError

    cluster = Cluster(n=2, engines="slurm", launcher_options={"python": "/nonexistent/python3"}, engine_timeout=60)
    t0 = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        cluster.start_and_connect_sync()
    elapsed = time.monotonic() - t0
    message = str(caught.value)
    assert "sbatch --parsable" in message  # the command it ran
    assert "/nonexistent/python3 -m corral.engine" in message  # what the job ran
    assert "/nonexistent/python3" in message.split("engine command:", 1)[1].split("\n", 1)[1]  # the job's output
    assert elapsed < 45, f"the failure took {elapsed:.0f} s to be reported"
    wait_until(lambda: not _jobs(), "squeue lists no job after the failed start", timeout=30)
    assert cluster.controller is None


def test_a_refused_submission_is_reported_at_once(slurm: Path) -> None:
    from corral.cluster import Cluster
    from corral.launchers import LaunchError

    cluster = Cluster(n=1, engines="slurm", launcher_options={"queue": "nosuchpartition"})
    t0 = time.monotonic()
    with pytest.raises(LaunchError, match=r"(?s)sbatch --parsable.*invalid partition"):
        cluster.start_and_connect_sync()
    assert time.monotonic() - t0 < 30
    assert not _jobs()
    assert cluster.controller is None


def test_sbatch_test_only_accepts_the_rendered_script(slurm: Path, tmp_path: Path) -> None:
    """Slurm's own check (``sbatch --test-only``) of the built-in template; it refuses a bad partition."""
    from corral.launchers import find_launcher

    def check(**options: str) -> subprocess.CompletedProcess[str]:
        launcher: Any = find_launcher("slurm")(tmp_path, lifeline=False, **options)
        script = tmp_path / "job.sh"
        script.write_text(launcher.render(2, tmp_path / "corral-x.json", ["--log-level", "INFO"]))
        return _run("sbatch", "--test-only", str(script))

    good = check(queue="corral", walltime="01:00:00")
    assert good.returncode == 0, good.stderr
    assert "to start at" in good.stderr
    bad = check(queue="nosuchpartition")
    assert bad.returncode != 0
    assert "invalid partition" in bad.stderr.lower()
    assert not _jobs()  # --test-only submits nothing
