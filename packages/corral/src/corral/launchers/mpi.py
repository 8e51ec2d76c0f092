"""Start engines with the system's ``mpiexec``: one MPI job, engine id = MPI rank.

``mpiexec -n N [mpi_args] python -m corral.engine --connection-file FILE --mpi`` runs ``N``
engines as one MPI job. Each engine asks the hub for its rank as its id (``--mpi``), so code
the client sends can use ``mpi4py`` among the engines (``MPI.COMM_WORLD.rank == rc.ids[i]``) for
collective operations while the client drives them. Open MPI and MPICH (Hydra) both work; the
rank is read from the environment each sets (``OMPI_COMM_WORLD_RANK``, ``PMIX_RANK``,
``PMI_RANK``), so an engine that is not started by ``mpiexec`` never guesses.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from corral.launchers.base import Launched, Launcher, which_or_fail

__all__ = ["MPILauncher"]


def _words(value: Any, option: str) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"the {option!r} option takes a string or a list of strings, not {value!r}")


class MPILauncher(Launcher):
    """Start all engines as one ``mpiexec`` job whose ranks are the engine ids.

    Options
    -------
    mpiexec
        The program (default ``mpiexec`` on ``PATH``).
    mpi_args
        Extra arguments for it, a string (split like a shell does) or a list, e.g.
        ``"--hostfile hosts --oversubscribe"``.
    python
        The interpreter the ranks run (default: this one).
    """

    name = "mpi"
    options: ClassVar[Mapping[str, str]] = {
        "mpiexec": "the mpiexec program (default: mpiexec on PATH)",
        "mpi_args": "extra mpiexec arguments, e.g. '--hostfile hosts --oversubscribe'",
        "python": "the interpreter the ranks run (default: this one)",
    }

    def __init__(self, log_dir: Path, *, lifeline: bool = True, **options: Any) -> None:
        super().__init__(log_dir, lifeline=lifeline, **options)
        self.mpiexec = str(options.get("mpiexec", "mpiexec"))
        self.mpi_args = _words(options.get("mpi_args", []), "mpi_args")
        self.python = str(options.get("python", sys.executable))
        self._shm_dirs: list[Path] = []

    def command(self, n: int, connection_file: Path, engine_args: Sequence[str], first_index: int = 0) -> list[str]:
        """The ``mpiexec`` command line that starts ``n`` engines (ids ``first_index + rank``)."""
        engine = [self.python, "-m", "corral.engine", "--connection-file", str(connection_file), "--mpi"]
        if first_index:
            engine += ["--id", str(first_index)]
        return [self.mpiexec, "-n", str(n), *self.mpi_args, *engine, *engine_args]

    def start_engines(
        self, n: int, connection_file: Path, engine_args: Sequence[str], *, first_index: int = 0
    ) -> list[Launched]:
        """Run ``mpiexec -n n ...`` (log ``mpiexec-<first_index>.log``); one handle for all ``n`` engines.

        Raises
        ------
        LaunchError
            If ``mpiexec`` is not installed or cannot be run.
        """
        cmd = self.command(n, connection_file, engine_args, first_index)
        which_or_fail(
            self.mpiexec,
            "the 'mpi' launcher",
            "Install an MPI (Debian/Ubuntu: `apt-get install openmpi-bin` or `mpich`), or pass "
            "-o mpiexec=/path/to/mpiexec.",
        )
        # Open MPI keeps its shared-memory segments in /dev/shm, where ranks that are killed
        # leave them behind: keep them in a directory of this launcher's, removed by close()
        shm = self.log_dir / f"mpi-shm-{first_index}"
        shm.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._shm_dirs.append(shm)
        env = dict(os.environ)
        for variable in ("OMPI_MCA_btl_vader_backing_directory", "OMPI_MCA_btl_sm_backing_directory"):
            env.setdefault(variable, str(shm))
        return [self.spawn_command(cmd, f"mpiexec-{first_index}.log", engines=n, env=env)]

    def close(self) -> None:
        """Release the lifeline and remove the MPI shared-memory directories."""
        super().close()
        for shm in self._shm_dirs:
            shutil.rmtree(shm, ignore_errors=True)
        self._shm_dirs.clear()
