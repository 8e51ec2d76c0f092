"""Start engines as batch jobs: Slurm, PBS (OpenPBS / PBS Pro), SGE, LSF and HTCondor.

Each launcher renders a job script from a template (a built-in one, or the user's own file
given as the ``template`` option), submits it with the batch system's own command (``sbatch``,
``qsub``, ``bsub``, ``condor_submit``) as a *job array* of ``n`` tasks, one engine per task,
and returns one :class:`BatchJob` handle for the whole array. The handle asks the batch system
whether the job still runs (``squeue``, ``qstat``, ``bjobs``, ``condor_q``) and cancels it
(``scancel``, ``qdel``, ``bkill``, ``condor_rm``), so ``Cluster.stop_cluster()`` and
``corral stop`` leave no job behind.

Templates are text with ``{{name}}`` placeholders (chosen so that the shell's own ``$VAR`` and
``${VAR}`` pass through untouched); :data:`PLACEHOLDERS` lists them. A template naming an
unknown placeholder is refused with the list of known ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from corral.launchers.base import TAIL_LINES, Launched, Launcher, LaunchError
from corral.wire.paths import private_dir

__all__ = [
    "PLACEHOLDERS",
    "BatchJob",
    "BatchLauncher",
    "HTCondorLauncher",
    "LSFLauncher",
    "PBSLauncher",
    "SGELauncher",
    "SlurmLauncher",
    "render_template",
]

#: The placeholders a job-script template may use, and what each becomes.
PLACEHOLDERS: Mapping[str, str] = {
    "n": "number of engines (tasks in the job array)",
    "last_index": "index of the last array task (n - 1; LSF and HTCondor count differently, see each template)",
    "job_name": "the job's name: corral-<cluster id>",
    "queue": "the queue / partition option ('' if not given)",
    "walltime": "the walltime option, HH:MM:SS ('' if not given)",
    "account": "the account / project option ('' if not given)",
    "log_dir": "the cluster's log directory (the job's output files go there)",
    "python": "the Python interpreter that runs the engines",
    "engine_command": "the shell-quoted command that runs one engine",
    "engine_arguments": "the engine's arguments after the interpreter, in HTCondor's quoting",
    "directives": "the batch system's option lines for queue, walltime and account (only those given)",
}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render_template(template: str, values: Mapping[str, str], source: str = "the template") -> str:
    """Replace every ``{{name}}`` in ``template`` with ``values[name]``.

    Raises
    ------
    ValueError
        If the template names a placeholder that is not in ``values``; the message lists the
        known ones.
    """
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if unknown:
        raise ValueError(
            f"{source} uses unknown placeholder(s) {', '.join('{{' + u + '}}' for u in unknown)}; "
            f"known placeholders: {', '.join('{{' + k + '}}' for k in sorted(values))}"
        )
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _run(cmd: Sequence[str], timeout: float, stdin: Path | None = None) -> tuple[int, str]:
    """Run a batch-system command; return (exit code, output). Missing program: code 127."""
    try:
        with open(stdin, "rb") if stdin is not None else open(os.devnull, "rb") as inp:
            done = subprocess.run(
                list(cmd), stdin=inp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
    except FileNotFoundError:
        return 127, f"{cmd[0]}: command not found"
    except subprocess.TimeoutExpired as err:
        out = err.output.decode(errors="replace") if isinstance(err.output, bytes) else ""
        return 124, out + f"\n(killed after {timeout:g} s)"
    return done.returncode, done.stdout.decode(errors="replace")


def _condor_arguments(args: Sequence[str]) -> str:
    """HTCondor's new argument syntax: each argument in single quotes, quotes doubled."""
    return " ".join("'" + a.replace("'", "''").replace('"', '""') + "'" for a in args)


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL_LINES:]) or "(no output)"


@dataclass
class BatchJob(Launched):
    """A submitted job (array) running ``engines`` engines; stands for it in ``Cluster.engines``.

    ``cmd`` is the submit command that was run, ``log`` the job script; the engines' output
    goes to files matching ``output_glob`` in the log directory.
    """

    job_id: str = ""
    output_glob: str = ""
    submit_output: str = ""
    engine_command: str = ""
    #: seconds between two questions to the batch system (``alive`` is polled often)
    poll_interval: float = 1.0
    command_timeout: float = 30.0
    #: the launcher class that submitted it (found by ``launcher`` name if not given)
    batch_system: type[BatchLauncher] | None = field(default=None, repr=False)
    _checked: float = field(default=-1e9, repr=False)
    _alive: bool = field(default=True, repr=False)
    _ended_as: str = field(default="", repr=False)

    def system(self) -> type[BatchLauncher]:
        """The launcher class of this job's batch system (a site's subclass included)."""
        if self.batch_system is None:
            from corral.launchers import find_launcher

            found = find_launcher(self.launcher)
            if not issubclass(found, BatchLauncher):
                raise ValueError(f"the launcher {self.launcher!r} is not a batch launcher")
            self.batch_system = found
        return self.batch_system

    def alive(self) -> bool:
        """True while the job waits in the queue, runs, or its processes are still being stopped."""
        if not self._alive:
            return False
        now = time.monotonic()
        if now - self._checked < self.poll_interval:
            return self._alive
        self._checked = now
        code, out = _run(self.system().status_command(self.job_id), self.command_timeout)
        self._alive = self.system().job_active(code, out)
        if not self._alive:
            self._ended_as = self.system().describe_end(self.job_id, self.command_timeout)
        return self._alive

    def status(self) -> str:
        """``"running"`` (queued counts) or how the job ended."""
        return "running" if self.alive() else self.exit_description()

    def exit_description(self) -> str:
        """How the job ended, as far as the batch system still says."""
        if self.alive():
            return "still queued or running"
        return f"ended ({self._ended_as})" if self._ended_as else "ended"

    def output(self) -> str:
        """The submit command's output and every engine output file of this job, in task order."""
        parts = [f"--- {self.cmd[0]} printed\n{self.submit_output.rstrip()}"] if self.submit_output.strip() else []
        if self.output_glob and self.job_id:
            job_num = self.job_id.split(".")[0].split("[")[0]  # PBS: 1234[].server
            for path in sorted(self.log.parent.glob(self.output_glob.replace("{job_id}", job_num))):
                with contextlib.suppress(OSError):
                    parts.append(f"--- {path.name}\n" + path.read_text(errors="replace").rstrip())
        return "\n".join(parts)

    def failure(self, what: str) -> LaunchError:
        """A :class:`LaunchError` naming the submit command, the engine command and the output tail."""
        return LaunchError(
            f"{what} (a {self.launcher} job {self.job_id} of {self.engines} engine(s)) {self.exit_description()}.\n"
            f"  command: {' '.join(self.cmd)}\n  job script: {self.log}\n  engine command: {self.engine_command}\n"
            f"{_tail(self.output())}"
        )

    def _cancel(self, force: bool) -> None:
        if not self.job_id:
            return
        _run(self.system().cancel_command(self.job_id, force), self.command_timeout)
        self._checked = -1e9  # ask again at the next alive()

    def terminate(self) -> None:
        """Cancel the job (the batch system signals its processes)."""
        self._cancel(force=False)

    def kill(self) -> None:
        """Cancel the job by force (SIGKILL where the batch system can)."""
        self._cancel(force=True)

    def reap(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) until the batch system no longer lists the job."""
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)

    def signal_group(self, sig: int) -> None:
        """Batch jobs have no local process group: cancel the job instead."""
        self._cancel(force=sig == signal.SIGKILL)

    def to_record(self) -> dict[str, Any]:
        """What ``corral stop`` needs to cancel the job from another process."""
        return {
            "pid": 0,
            "cmd": self.cmd,
            "log": str(self.log),
            "launcher": self.launcher,
            "engines": self.engines,
            "job_id": self.job_id,
            "output_glob": self.output_glob,
            "engine_command": self.engine_command,
        }


class BatchLauncher(Launcher):
    """Submit engines as a job array through a batch system (subclasses name one).

    Options (``launcher_options={...}`` / ``corral start -o KEY=VALUE``): see :attr:`options`.

    Raises
    ------
    ValueError
        For an unknown option, a missing or unreadable template file, a template with unknown
        placeholders, or a malformed walltime or timeout.
    """

    options: ClassVar[Mapping[str, str]] = {
        "template": "path of a job-script template replacing the built-in one ({{placeholders}}, see docs/launchers.md)",
        "queue": "queue (partition) to submit to",
        "walltime": "wall-clock limit, HH:MM:SS",
        "account": "account / project to charge",
        "submit_args": "extra arguments for the submit command, as one shell-quoted string",
        "python": "Python interpreter on the compute nodes (default: the one running corral)",
        "command_timeout": "seconds a submit, status or cancel command may take (default: 30)",
    }
    #: the submit command, before the job script
    submit: ClassVar[tuple[str, ...]] = ()
    #: give the script on standard input instead of as an argument (LSF's ``bsub < script``)
    submit_stdin: ClassVar[bool] = False
    #: the built-in template
    template: ClassVar[str] = ""
    #: file name pattern of the engines' output in the log directory (``{job_id}`` is filled in)
    output_glob: ClassVar[str] = ""
    #: how to install the batch system's commands, for the error when they are missing
    install_hint: ClassVar[str] = ""

    def __init__(self, log_dir: Path, *, lifeline: bool = True, **options: Any) -> None:
        super().__init__(log_dir, lifeline=lifeline, **options)
        self.queue = str(options.get("queue", ""))
        self.walltime = str(options.get("walltime", ""))
        if self.walltime and not re.fullmatch(r"\d+:[0-5]\d:[0-5]\d", self.walltime):
            raise ValueError(f"walltime must be HH:MM:SS (e.g. 01:30:00), not {self.walltime!r}")
        self.account = str(options.get("account", ""))
        try:
            self.submit_args = shlex.split(str(options.get("submit_args", "")))
        except ValueError as err:
            raise ValueError(f"submit_args is not a valid shell-quoted string: {err}") from None
        self.python = str(options.get("python", sys.executable))
        try:
            self.command_timeout = float(options.get("command_timeout", 30.0))
        except (TypeError, ValueError):
            raise ValueError(
                f"command_timeout must be a number of seconds, not {options.get('command_timeout')!r}"
            ) from None
        if self.command_timeout <= 0:
            raise ValueError(f"command_timeout must be positive, not {self.command_timeout:g}")
        self.template_source = "the built-in template"
        self.template_text = self.template
        if options.get("template"):
            path = Path(str(options["template"])).expanduser()
            try:
                self.template_text = path.read_text()
            except OSError as err:
                raise ValueError(
                    f"cannot read the job-script template {path}: {err.strerror}; give the path of a readable file"
                ) from None
            self.template_source = f"the template {path}"
            render_template(self.template_text, {k: "" for k in PLACEHOLDERS}, self.template_source)

    # -- what differs between batch systems ---------------------------------------------------

    def directives(self) -> list[str]:
        """The option lines for queue, walltime and account (those given)."""
        return []

    @classmethod
    def parse_job_id(cls, output: str) -> str:
        """The job id in the submit command's output.

        Raises
        ------
        ValueError
            If there is none.
        """
        raise NotImplementedError

    @classmethod
    def status_command(cls, job_id: str) -> list[str]:
        """The command asking whether the job is queued or running."""
        raise NotImplementedError

    @classmethod
    def job_active(cls, code: int, output: str) -> bool:
        """Whether the status command's result says the job is queued or running."""
        return code == 0 and bool(output.strip())

    @classmethod
    def cancel_command(cls, job_id: str, force: bool) -> list[str]:
        """The command cancelling the job (by force: kill its processes now)."""
        raise NotImplementedError

    @classmethod
    def describe_end(cls, job_id: str, timeout: float) -> str:
        """How the job ended, if the batch system still knows ('' if not)."""
        return ""

    # -- the common part ----------------------------------------------------------------------

    def engine_command(self, connection_file: Path, engine_args: Sequence[str]) -> str:
        """The shell command that runs one engine of the cluster."""
        cmd = [self.python, "-m", "corral.engine", "--connection-file", str(connection_file), *engine_args]
        return shlex.join(cmd)

    def values(self, n: int, connection_file: Path, engine_args: Sequence[str]) -> dict[str, str]:
        """What each placeholder becomes for a job of ``n`` engines."""
        cluster = connection_file.stem.removeprefix("corral-")
        return {
            "n": str(n),
            "last_index": str(n - 1),
            "job_name": f"corral-{cluster}",
            "queue": self.queue,
            "walltime": self.walltime,
            "account": self.account,
            "log_dir": str(self.log_dir),
            "python": self.python,
            "engine_command": self.engine_command(connection_file, engine_args),
            "engine_arguments": _condor_arguments(
                ["-m", "corral.engine", "--connection-file", str(connection_file), *engine_args]
            ),
            "directives": "\n".join(self.directives()),
        }

    def render(self, n: int, connection_file: Path, engine_args: Sequence[str] = ()) -> str:
        """The job script for ``n`` engines of the cluster of ``connection_file``.

        Raises
        ------
        ValueError
            If the template uses an unknown placeholder.
        """
        return render_template(self.template_text, self.values(n, connection_file, engine_args), self.template_source)

    def start_engines(
        self, n: int, connection_file: Path, engine_args: Sequence[str], *, first_index: int = 0
    ) -> list[Launched]:
        """Submit one job array of ``n`` engines; return its :class:`BatchJob`.

        Raises
        ------
        LaunchError
            If the submit command is missing, fails, overruns ``command_timeout`` or prints no
            job id; the message has the command and its output.
        """
        if n < 1:
            return []
        private_dir(self.log_dir)
        script = self.log_dir / f"{self.name}-engines-{first_index}.sh"
        script.write_text(self.render(n, Path(connection_file), engine_args))
        script.chmod(0o700)
        cmd = [*self.submit, *self.submit_args]
        if self.submit_stdin:
            shown = [*cmd, "<", str(script)]
        else:
            cmd.append(str(script))
            shown = cmd
        code, out = _run(cmd, self.command_timeout, stdin=script if self.submit_stdin else None)
        what = f"submitting {n} engine(s) to {self.name}"
        if code == 127:
            raise LaunchError(
                f"{what}: `{cmd[0]}` is not installed or not on PATH. {self.install_hint}\n  command: {' '.join(shown)}"
            )
        if code != 0:
            raise LaunchError(
                f"{what} failed (exit code {code}).\n  command: {' '.join(shown)}\n  job script: {script}\n{_tail(out)}"
            )
        try:
            job_id = self.parse_job_id(out)
        except ValueError:
            raise LaunchError(
                f"{what}: the submit command printed no job id.\n  command: {' '.join(shown)}\n{_tail(out)}"
            ) from None
        return [
            BatchJob(
                cmd=shown,
                log=script,
                launcher=self.name,
                engines=n,
                job_id=job_id,
                output_glob=self.output_glob,
                submit_output=out,
                engine_command=self.engine_command(Path(connection_file), engine_args),
                command_timeout=self.command_timeout,
                batch_system=type(self),
            )
        ]

    @classmethod
    def restore(cls, record: Mapping[str, Any]) -> Launched:
        """The :class:`BatchJob` a cluster record describes, so ``corral stop`` can cancel it.

        Raises
        ------
        ValueError
            If the record has no job id.
        """
        if not record.get("job_id"):
            raise ValueError(f"cluster record entry {dict(record)!r} has no job_id")
        return BatchJob(
            cmd=list(record.get("cmd", [])),
            log=Path(str(record.get("log", ""))),
            launcher=cls.name,
            engines=int(record.get("engines", 1)),
            job_id=str(record["job_id"]),
            output_glob=str(record.get("output_glob", "")),
            engine_command=str(record.get("engine_command", "")),
            batch_system=cls,
        )


class SlurmLauncher(BatchLauncher):
    """Engines as a Slurm job array: ``sbatch --parsable``, ``squeue``, ``scancel``."""

    name = "slurm"
    options: ClassVar[Mapping[str, str]] = {
        **BatchLauncher.options,
        "partition": "Slurm's name for queue (give one of the two)",
    }
    submit = ("sbatch", "--parsable")
    output_glob = "engine-{job_id}_*.log"
    install_hint = "Install Slurm's client commands (Debian/Ubuntu: apt-get install slurm-client) or load its module."
    template = """#!/bin/bash
#SBATCH --job-name={{job_name}}
#SBATCH --array=0-{{last_index}}
#SBATCH --ntasks=1
#SBATCH --output={{log_dir}}/engine-%A_%a.log
{{directives}}
# one engine per array task; exec so that scancel's signal reaches the engine itself
exec {{engine_command}}
"""

    def __init__(self, log_dir: Path, *, lifeline: bool = True, **options: Any) -> None:
        partition = options.pop("partition", None)
        if partition is not None:
            if options.get("queue"):
                raise ValueError("give the Slurm partition as queue or as partition, not both")
            options["queue"] = partition
        super().__init__(log_dir, lifeline=lifeline, **options)

    def directives(self) -> list[str]:
        """``#SBATCH`` lines for partition, time and account."""
        lines = []
        if self.queue:
            lines.append(f"#SBATCH --partition={self.queue}")
        if self.walltime:
            lines.append(f"#SBATCH --time={self.walltime}")
        if self.account:
            lines.append(f"#SBATCH --account={self.account}")
        return lines

    @classmethod
    def parse_job_id(cls, output: str) -> str:
        """``sbatch --parsable`` prints ``ID`` or ``ID;CLUSTER``."""
        match = re.search(r"^(\d+)(;\S+)?\s*$", output, re.M)
        if match is None:
            raise ValueError(output)
        return match.group(1)

    @classmethod
    def status_command(cls, job_id: str) -> list[str]:
        """``squeue`` lists the job's tasks while they wait, run or are being stopped."""
        return ["squeue", "--noheader", "--jobs", job_id, "--format", "%T"]

    @classmethod
    def job_active(cls, code: int, output: str) -> bool:
        """Listed by ``squeue``; an unanswered question (controller unreachable) counts as active."""
        if code != 0:
            return "Invalid job id" not in output
        return bool(output.strip())

    @classmethod
    def cancel_command(cls, job_id: str, force: bool) -> list[str]:
        """``scancel`` (``--signal=KILL`` by force)."""
        return ["scancel", *(["--signal=KILL"] if force else []), job_id]

    @classmethod
    def describe_end(cls, job_id: str, timeout: float) -> str:
        """State and exit code per task, from ``scontrol show job`` (kept ``MinJobAge`` seconds)."""
        code, out = _run(["scontrol", "--oneliner", "show", "job", job_id], timeout)
        if code != 0:
            return ""
        ends = sorted(
            {f"{m.group(1)} exit code {m.group(2)}" for m in re.finditer(r"JobState=(\S+).*?ExitCode=(\S+)", out)}
        )
        return ", ".join(ends)


class PBSLauncher(BatchLauncher):
    """Engines as an OpenPBS / PBS Pro job array: ``qsub``, ``qstat``, ``qdel``.

    Torque spells the array option ``-t 0-N`` instead of ``-J``: use a template for it.
    """

    name = "pbs"
    submit = ("qsub",)
    output_glob = "engine-{job_id}[[.]*.log"
    install_hint = "Install the PBS client commands (OpenPBS: openpbs-client) or load its module."
    template = """#!/bin/bash
#PBS -N {{job_name}}
#PBS -J 0-{{last_index}}
#PBS -l select=1:ncpus=1
#PBS -j oe
#PBS -V
#PBS -o {{log_dir}}/
{{directives}}
exec {{engine_command}} >"{{log_dir}}/engine-${PBS_JOBID%%.*}.log" 2>&1
"""

    def directives(self) -> list[str]:
        """``#PBS`` lines for queue, walltime and account."""
        lines = []
        if self.queue:
            lines.append(f"#PBS -q {self.queue}")
        if self.walltime:
            lines.append(f"#PBS -l walltime={self.walltime}")
        if self.account:
            lines.append(f"#PBS -A {self.account}")
        return lines

    def render(self, n: int, connection_file: Path, engine_args: Sequence[str] = ()) -> str:
        """As :meth:`BatchLauncher.render`; PBS Pro refuses an array of one, so ``-J 0-0`` is dropped."""
        text = super().render(n, connection_file, engine_args)
        return text.replace("#PBS -J 0-0\n", "") if n == 1 else text

    @classmethod
    def parse_job_id(cls, output: str) -> str:
        """``qsub`` prints ``1234[].server`` for an array (``1234.server`` otherwise)."""
        match = re.search(r"^(\d+(\[\])?(\.\S+)?)\s*$", output, re.M)
        if match is None:
            raise ValueError(output)
        return match.group(1)

    @classmethod
    def status_command(cls, job_id: str) -> list[str]:
        """``qstat`` exits non-zero once the job has finished."""
        return ["qstat", job_id]

    @classmethod
    def cancel_command(cls, job_id: str, force: bool) -> list[str]:
        """``qdel`` (``-W force`` by force)."""
        return ["qdel", *(["-W", "force"] if force else []), job_id]


class SGELauncher(BatchLauncher):
    """Engines as a (Son of / Univa / Altair) Grid Engine array job: ``qsub -terse``, ``qstat``, ``qdel``."""

    name = "sge"
    submit = ("qsub", "-terse")
    output_glob = "engine-{job_id}.*.log"
    install_hint = "Install Grid Engine's client commands (gridengine-client) or load its module."
    template = """#!/bin/bash
#$ -N {{job_name}}
#$ -t 1-{{n}}
#$ -S /bin/bash
#$ -V
#$ -j y
#$ -o {{log_dir}}/engine-$JOB_ID.$TASK_ID.log
{{directives}}
exec {{engine_command}}
"""

    def directives(self) -> list[str]:
        """``#$`` lines for queue, runtime and project."""
        lines = []
        if self.queue:
            lines.append(f"#$ -q {self.queue}")
        if self.walltime:
            lines.append(f"#$ -l h_rt={self.walltime}")
        if self.account:
            lines.append(f"#$ -P {self.account}")
        return lines

    @classmethod
    def parse_job_id(cls, output: str) -> str:
        """``qsub -terse`` prints ``1234.1-4:1`` for an array job."""
        match = re.search(r"^(\d+)(\.\S+)?\s*$", output, re.M)
        if match is None:
            raise ValueError(output)
        return match.group(1)

    @classmethod
    def status_command(cls, job_id: str) -> list[str]:
        """``qstat -j`` exits non-zero once the job is gone."""
        return ["qstat", "-j", job_id]

    @classmethod
    def cancel_command(cls, job_id: str, force: bool) -> list[str]:
        """``qdel`` (``-f`` by force)."""
        return ["qdel", *(["-f"] if force else []), job_id]


class LSFLauncher(BatchLauncher):
    """Engines as an IBM Spectrum LSF job array: ``bsub < script``, ``bjobs``, ``bkill``."""

    name = "lsf"
    submit = ("bsub",)
    submit_stdin = True
    output_glob = "engine-{job_id}_*.log"
    install_hint = "Source your site's LSF profile (profile.lsf) so that bsub is on PATH."
    template = """#!/bin/bash
#BSUB -J "{{job_name}}[1-{{n}}]"
#BSUB -n 1
#BSUB -o {{log_dir}}/engine-%J_%I.log
{{directives}}
exec {{engine_command}}
"""

    def directives(self) -> list[str]:
        """``#BSUB`` lines for queue, run limit (HH:MM) and project."""
        lines = []
        if self.queue:
            lines.append(f"#BSUB -q {self.queue}")
        if self.walltime:
            hours, minutes, _ = self.walltime.split(":")
            lines.append(f"#BSUB -W {int(hours)}:{minutes}")
        if self.account:
            lines.append(f"#BSUB -P {self.account}")
        return lines

    @classmethod
    def parse_job_id(cls, output: str) -> str:
        """``bsub`` prints ``Job <1234> is submitted to queue <normal>.``"""
        match = re.search(r"Job <(\d+)>", output)
        if match is None:
            raise ValueError(output)
        return match.group(1)

    @classmethod
    def status_command(cls, job_id: str) -> list[str]:
        """``bjobs`` with one state per array element."""
        return ["bjobs", "-noheader", "-o", "stat", job_id]

    @classmethod
    def job_active(cls, code: int, output: str) -> bool:
        """Active while any element is not ``DONE`` or ``EXIT``."""
        states = output.split()
        return code == 0 and any(s not in ("DONE", "EXIT") for s in states) and bool(states)

    @classmethod
    def cancel_command(cls, job_id: str, force: bool) -> list[str]:
        """``bkill`` (``-s KILL`` by force)."""
        return ["bkill", *(["-s", "KILL"] if force else []), job_id]


class HTCondorLauncher(BatchLauncher):
    """Engines as one HTCondor cluster of ``n`` procs: ``condor_submit -terse``, ``condor_q``, ``condor_rm``.

    The template is a submit description, not a shell script.
    """

    name = "htcondor"
    submit = ("condor_submit", "-terse")
    output_glob = "engine-{job_id}.*.log"
    install_hint = "Install HTCondor's tools (htcondor package) or load its module."
    template = """# HTCondor submit description: {{n}} corral engines of {{job_name}}
universe = vanilla
executable = {{python}}
arguments = "{{engine_arguments}}"
getenv = true
batch_name = {{job_name}}
output = {{log_dir}}/engine-$(ClusterId).$(ProcId).log
error = {{log_dir}}/engine-$(ClusterId).$(ProcId).log
log = {{log_dir}}/htcondor-$(ClusterId).events
request_cpus = 1
{{directives}}
queue {{n}}
"""

    def __init__(self, log_dir: Path, *, lifeline: bool = True, **options: Any) -> None:
        super().__init__(log_dir, lifeline=lifeline, **options)
        if self.queue:
            raise ValueError(
                "HTCondor has no queues: drop the queue option, and choose machines with "
                "submit_args (e.g. -o submit_args='-append \"requirements = ...\"') or a template"
            )

    def directives(self) -> list[str]:
        """Submit commands for the accounting group and the runtime limit."""
        lines = []
        if self.account:
            lines.append(f"accounting_group = {self.account}")
        if self.walltime:
            h, m, s = (int(x) for x in self.walltime.split(":"))
            lines.append(
                f"periodic_remove = (JobStatus == 2) && (time() - EnteredCurrentStatus > {h * 3600 + m * 60 + s})"
            )
        return lines

    @classmethod
    def parse_job_id(cls, output: str) -> str:
        """``condor_submit -terse`` prints ``1234.0 - 1234.3``; the id is the cluster, 1234."""
        match = re.search(r"^(\d+)\.\d+\s*-\s*\d+\.\d+\s*$", output, re.M)
        if match is None:
            raise ValueError(output)
        return match.group(1)

    @classmethod
    def status_command(cls, job_id: str) -> list[str]:
        """``condor_q`` printing each proc's JobStatus (1 idle, 2 running, ...)."""
        return ["condor_q", job_id, "-af", "JobStatus"]

    @classmethod
    def job_active(cls, code: int, output: str) -> bool:
        """Active while any proc is idle, running, held or transferring (not removed/completed)."""
        return code == 0 and any(s not in ("3", "4") for s in output.split())

    @classmethod
    def cancel_command(cls, job_id: str, force: bool) -> list[str]:
        """``condor_rm`` (``-forcex`` by force)."""
        return ["condor_rm", *(["-forcex"] if force else []), job_id]
