"""The job scripts of the PBS, SGE, LSF and HTCondor launchers, checked without their batch systems.

What is checked, per system (Slurm's scripts also run for real in ``test_batch_slurm.py``):

- every shell script: ``bash -n`` (syntax), and every ``#PBS`` / ``#$`` / ``#BSUB`` directive
  comes before the first command (the batch systems stop reading directives there);
- SGE: Grid Engine's own ``qsub -verify`` (gridengine-client, installed by ``.ci/run``) parses
  the script's ``#$`` directives and prints the job it would submit, without a qmaster;
- PBS and LSF: no free client exists in the OS packages; beyond ``bash -n``, the directives are
  compared with what the options asked for;
- HTCondor: the submit description is parsed as HTCondor does (``key = value`` lines and a
  final ``queue N``) and its ``arguments`` decoded with HTCondor's quoting rules, which must
  give back the engine's exact argument list, even for a path with spaces and quotes.

Submitting through a missing command fails at once with the command and how to install it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ODD_PATH = '/tmp/odd dir/it\'s "quoted"/corral-abc.json'


def _launcher(name: str, tmp_path: Path, **options: str) -> object:
    from corral.launchers import find_launcher

    return find_launcher(name)(tmp_path / "logs", lifeline=False, **options)


def _render(
    name: str, tmp_path: Path, n: int = 4, connection_file: str = "/tmp/c/corral-abc.json", **options: str
) -> str:
    launcher = _launcher(name, tmp_path, **options)
    return launcher.render(n, Path(connection_file), ["--log-level", "INFO"])  # type: ignore[attr-defined]


def _bash_n(script: str, tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    path.write_text(script)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, f"bash -n refused the script:\n{done.stderr}\n{script}"


def _directives(script: str, prefix: str) -> list[str]:
    """The directive lines, checking that none comes after the first command."""
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    late = [line for line in lines[first_command:] if line.startswith(prefix)]
    assert not late, f"directives after the first command are ignored by the batch system: {late}"
    return [line[len(prefix) :].strip() for line in lines[:first_command] if line.startswith(prefix)]


@pytest.mark.parametrize(
    ("name", "prefix", "expected"),
    [
        ("pbs", "#PBS", ["-N corral-abc", "-J 0-3", "-V", "-q short", "-l walltime=02:30:00", "-A proj1"]),
        ("sge", "#$", ["-N corral-abc", "-t 1-4", "-q short", "-l h_rt=02:30:00", "-P proj1"]),
        ("lsf", "#BSUB", ['-J "corral-abc[1-4]"', "-q short", "-W 2:30", "-P proj1"]),
        ("slurm", "#SBATCH", ["--job-name=corral-abc", "--array=0-3", "--partition=short", "--time=02:30:00"]),
    ],
)
def test_shell_job_scripts_are_valid_and_carry_the_options(
    name: str, prefix: str, expected: list[str], tmp_path: Path
) -> None:
    script = _render(name, tmp_path, queue="short", walltime="02:30:00", account="proj1")
    _bash_n(script, tmp_path)
    directives = _directives(script, prefix)
    for option in expected:
        assert option in directives, f"{option!r} missing from {directives}"
    assert f"exec {sys.executable} -m corral.engine --connection-file /tmp/c/corral-abc.json --log-level INFO" in script


@pytest.mark.parametrize("name", ["slurm", "pbs", "sge", "lsf"])
def test_the_script_runs_the_engine_with_its_exact_arguments(name: str, tmp_path: Path) -> None:
    """Run the whole rendered script with bash, a stand-in interpreter printing its arguments."""
    printer = tmp_path / "print-args"
    printer.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    printer.chmod(0o755)
    (tmp_path / "logs").mkdir()
    script = tmp_path / "job.sh"
    script.write_text(_render(name, tmp_path, connection_file=ODD_PATH, python=str(printer)))
    env = {**os.environ, "PBS_JOBID": "7[1].server"}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30, env=env, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout if name != "pbs" else (tmp_path / "logs" / "engine-7[1].log").read_text()
    assert json.loads(out) == ["-m", "corral.engine", "--connection-file", ODD_PATH, "--log-level", "INFO"]


def test_pbs_drops_the_array_for_one_engine(tmp_path: Path) -> None:
    script = _render("pbs", tmp_path, n=1)
    _bash_n(script, tmp_path)
    assert "-J" not in " ".join(_directives(script, "#PBS"))


@pytest.fixture
def sge_cell(tmp_path: Path) -> dict[str, str]:
    """An SGE_ROOT whose cell names a qmaster (none runs): enough for ``qsub -verify``."""
    if shutil.which("qsub") is None or not Path("/var/lib/gridengine/default/common/bootstrap").exists():
        pytest.skip("Grid Engine's qsub is not installed (.ci/run installs gridengine-client)")
    common = tmp_path / "sgeroot" / "default" / "common"
    common.mkdir(parents=True)
    shutil.copy("/var/lib/gridengine/default/common/bootstrap", common / "bootstrap")
    (common / "act_qmaster").write_text("localhost\n")
    return {**os.environ, "SGE_ROOT": str(tmp_path / "sgeroot"), "SGE_CELL": "default"}


def test_sge_qsub_verify_parses_the_script(tmp_path: Path, sge_cell: dict[str, str]) -> None:
    script = tmp_path / "sge.sh"
    script.write_text(_render("sge", tmp_path, queue="short", walltime="02:30:00", account="proj1"))
    done = subprocess.run(
        ["qsub", "-verify", str(script)], capture_output=True, text=True, timeout=30, env=sge_cell, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    parsed = dict(re.findall(r"^([a-z_ -]+):\s+(.*)$", done.stdout, re.M))
    assert parsed["job_name"] == "corral-abc"
    assert parsed["job-array tasks"] == "1-4:1"
    assert parsed["hard_queue_list"] == "short"
    assert parsed["hard resource_list"] == "h_rt=02:30:00"
    assert parsed["project"] == "proj1"
    assert parsed["stdout_path_list"].endswith("/logs/engine-$JOB_ID.$TASK_ID.log")


def test_sge_qsub_verify_refuses_a_broken_template(tmp_path: Path, sge_cell: dict[str, str]) -> None:
    """The check can fail: a template with a malformed array range is refused by qsub itself."""
    template = tmp_path / "broken.tmpl"
    template.write_text("#!/bin/bash\n#$ -t 1-{{job_name}}\nexec {{engine_command}}\n")
    script = tmp_path / "sge.sh"
    script.write_text(_render("sge", tmp_path, template=str(template)))
    done = subprocess.run(
        ["qsub", "-verify", str(script)], capture_output=True, text=True, timeout=30, env=sge_cell, check=False
    )
    assert done.returncode != 0
    assert "Numerical value invalid" in done.stdout + done.stderr


def _condor_submit_file(text: str) -> tuple[dict[str, str], int]:
    """Parse a submit description as HTCondor does: ``key = value`` lines, then ``queue N``."""
    commands: dict[str, str] = {}
    queue = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assert queue is None, f"line {number} comes after the queue statement: {line!r}"
        match = re.fullmatch(r"queue\s+(\d+)", stripped, re.I)
        if match:
            queue = int(match.group(1))
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"line {number} is not key = value: {line!r}"
        assert re.fullmatch(r"[A-Za-z_+.][A-Za-z0-9_.]*", key.strip()), f"line {number}: bad command {key!r}"
        commands[key.strip().lower()] = value.strip()
    assert queue is not None, "no queue statement"
    return commands, queue


def _condor_arguments(value: str) -> list[str]:
    """Decode HTCondor's new argument syntax: "..." around all, '...' around each, quotes doubled."""
    assert value.startswith('"'), value
    assert value.endswith('"'), value
    body = value[1:-1].replace('""', '"')
    args, i = [], 0
    while i < len(body):
        if body[i] == " ":
            i += 1
            continue
        assert body[i] == "'", f"unquoted argument at {body[i:]!r}"
        j, word = i + 1, ""
        while True:
            if body[j] == "'" and body[j + 1 : j + 2] == "'":
                word, j = word + "'", j + 2
            elif body[j] == "'":
                break
            else:
                word, j = word + body[j], j + 1
        args.append(word)
        i = j + 1
    return args


def test_htcondor_submit_description(tmp_path: Path) -> None:
    text = _render("htcondor", tmp_path, connection_file=ODD_PATH, walltime="00:10:00", account="group_a")
    commands, queue = _condor_submit_file(text)
    assert queue == 4
    assert commands["executable"] == sys.executable
    assert _condor_arguments(commands["arguments"]) == [
        "-m", "corral.engine", "--connection-file", ODD_PATH, "--log-level", "INFO",
    ]  # fmt: skip
    assert commands["output"].endswith("/logs/engine-$(ClusterId).$(ProcId).log")
    assert commands["accounting_group"] == "group_a"
    assert "600" in commands["periodic_remove"]


def test_htcondor_has_no_queues(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HTCondor has no queues"):
        _launcher("htcondor", tmp_path, queue="short")


def test_a_user_template_replaces_the_built_in_one(tmp_path: Path) -> None:
    template = tmp_path / "site.tmpl"
    template.write_text(
        "#!/bin/bash\n#PBS -N {{job_name}}\n#PBS -t 0-{{last_index}}\n#PBS -l nodes=1:ppn=1\n"
        "module load python  # the site's own setup\nexec {{engine_command}}\n"
    )
    script = _render("pbs", tmp_path, template=str(template))
    _bash_n(script, tmp_path)
    assert _directives(script, "#PBS") == ["-N corral-abc", "-t 0-3", "-l nodes=1:ppn=1"]
    assert "module load python" in script


def test_bad_templates_and_options_are_refused_with_the_fix(tmp_path: Path) -> None:
    template = tmp_path / "typo.tmpl"
    template.write_text("#!/bin/bash\nexec {{engine_comand}}\n")
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \{\{engine_comand\}\}.*\{\{engine_command\}\}"):
        _launcher("slurm", tmp_path, template=str(template))
    with pytest.raises(ValueError, match=r"cannot read the job-script template .*nothere"):
        _launcher("slurm", tmp_path, template=str(tmp_path / "nothere"))
    with pytest.raises(ValueError, match=r"walltime must be HH:MM:SS"):
        _launcher("lsf", tmp_path, walltime="90 minutes")
    with pytest.raises(ValueError, match=r"has no option 'partition'; its options: account, "):
        _launcher("pbs", tmp_path, partition="short")
    with pytest.raises(ValueError, match=r"as queue or as partition, not both"):
        _launcher("slurm", tmp_path, partition="short", queue="long")
    assert "#SBATCH --partition=short" in _render("slurm", tmp_path, partition="short")


@pytest.mark.parametrize(
    ("name", "program"),
    [("slurm", "sbatch"), ("pbs", "qsub"), ("sge", "qsub"), ("lsf", "bsub"), ("htcondor", "condor_submit")],
)
def test_a_missing_submit_command_fails_at_once(
    name: str, program: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.launchers import LaunchError

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no batch system here
    launcher = _launcher(name, tmp_path)
    with pytest.raises(LaunchError, match=rf"`{program}` is not installed or not on PATH.*\n  command: {program}"):
        launcher.start_engines(2, tmp_path / "corral-x.json", [])  # type: ignore[attr-defined]


def test_a_batch_system_that_cannot_be_reached_fails_the_start_at_once(
    sge_cell: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Grid Engine ``qsub`` with no qmaster listening: the start fails with its command and output."""
    from corral.cluster import Cluster
    from corral.launchers import LaunchError

    monkeypatch.setenv("SGE_ROOT", sge_cell["SGE_ROOT"])
    monkeypatch.setenv("SGE_CELL", "default")
    monkeypatch.setenv("SGE_QMASTER_PORT", "1")  # nothing listens on port 1
    cluster = Cluster(n=2, engines="sge", launcher_options={"command_timeout": "20"})
    t0 = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        cluster.start_and_connect_sync()
    assert time.monotonic() - t0 < 30
    message = str(caught.value)
    assert "submitting 2 engine(s) to sge failed" in message
    assert f"command: qsub -terse {cluster.log_dir}/sge-engines-0.sh" in message
    assert "unable to send message to qmaster" in message  # qsub's own words
    assert cluster.controller is None  # the controller was stopped again
    assert not cluster.connection_file.exists()
