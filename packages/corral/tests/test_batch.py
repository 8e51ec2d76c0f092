"""The batch launchers' parsing of what the batch systems print, and template rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.launchers import find_launcher
from corral.launchers.batch import (
    HTCondorLauncher,
    LSFLauncher,
    PBSLauncher,
    SGELauncher,
    SlurmLauncher,
    render_template,
)


@pytest.mark.parametrize(
    ("cls", "printed", "job_id"),
    [
        (SlurmLauncher, "4242\n", "4242"),
        (SlurmLauncher, "sbatch: warning: something\n4242;cluster2\n", "4242"),
        (PBSLauncher, "1234[].pbs-server\n", "1234[].pbs-server"),
        (PBSLauncher, "1234.pbs-server\n", "1234.pbs-server"),
        (SGELauncher, "77.1-4:1\n", "77"),
        (LSFLauncher, "Job <5150> is submitted to queue <normal>.\n", "5150"),
        (HTCondorLauncher, "310.0 - 310.3\n", "310"),
    ],
)
def test_job_ids_are_read_from_the_submit_output(cls: type, printed: str, job_id: str) -> None:
    assert cls.parse_job_id(printed) == job_id


@pytest.mark.parametrize("cls", [SlurmLauncher, PBSLauncher, SGELauncher, LSFLauncher, HTCondorLauncher])
def test_output_without_a_job_id_is_refused(cls: type) -> None:
    with pytest.raises(ValueError, match="error"):
        cls.parse_job_id("some error happened\n")


def test_which_states_count_as_alive() -> None:
    assert SlurmLauncher.job_active(0, "RUNNING\nPENDING\n")
    assert SlurmLauncher.job_active(0, "COMPLETING\n")
    assert not SlurmLauncher.job_active(0, "")
    assert not SlurmLauncher.job_active(1, "slurm_load_jobs error: Invalid job id specified\n")
    # an unanswered question is not taken for the job's end
    assert SlurmLauncher.job_active(1, "squeue: error: Unable to contact slurm controller\n")
    assert LSFLauncher.job_active(0, "RUN\nPEND\n")
    assert not LSFLauncher.job_active(0, "DONE\nEXIT\n")
    assert HTCondorLauncher.job_active(0, "2\n4\n")
    assert not HTCondorLauncher.job_active(0, "4\n3\n")
    assert not PBSLauncher.job_active(35, "qstat: 12.server Job has finished\n")


def test_templates_keep_shell_syntax_and_refuse_unknown_names() -> None:
    text = 'echo "${HOME}" $X %A $(ClusterId) {{n}} {{ n }}'
    assert render_template(text, {"n": "4"}) == 'echo "${HOME}" $X %A $(ClusterId) 4 4'
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \{\{m\}\}; known placeholders: \{\{n\}\}"):
        render_template("{{m}}", {"n": "4"})


def test_every_batch_launcher_is_registered(tmp_path: Path) -> None:
    for name, cls in [
        ("slurm", SlurmLauncher),
        ("pbs", PBSLauncher),
        ("sge", SGELauncher),
        ("lsf", LSFLauncher),
        ("htcondor", HTCondorLauncher),
    ]:
        assert find_launcher(name) is cls
        assert cls.name == name
        launcher = cls(tmp_path, lifeline=False)
        assert "{{" not in launcher.render(3, tmp_path / "corral-x.json")


def test_a_record_restores_the_job(tmp_path: Path) -> None:
    job = SlurmLauncher.restore({"launcher": "slurm", "job_id": "12", "engines": 3, "cmd": ["sbatch"], "log": "x"})
    assert job.to_record()["job_id"] == "12"
    assert job.engines == 3
    with pytest.raises(ValueError, match="no job_id"):
        SlurmLauncher.restore({"launcher": "slurm", "pid": 0})


def test_a_sites_subclass_keeps_its_own_commands() -> None:
    class SiteSlurm(SlurmLauncher):
        name = "site-slurm"

        @classmethod
        def cancel_command(cls, job_id: str, force: bool) -> list[str]:
            return ["site-scancel", job_id]

    job = SiteSlurm.restore({"launcher": "site-slurm", "job_id": "9"})
    assert job.system() is SiteSlurm  # type: ignore[attr-defined]
    assert job.system().cancel_command("9", False) == ["site-scancel", "9"]  # type: ignore[attr-defined]
