"""corral.launchers: start controllers and engines.

Launchers are found by name through the ``corral.launchers`` entry-point group, so other
packages can add their own (see :class:`Launcher` for the interface and ``docs/launchers.md``):
``local`` (child processes of this one), ``mpi`` (``mpiexec``) and ``ssh`` are built in.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from corral.cli._version import __version__
from corral.launchers.base import Launched, Launcher, LaunchError, run_logged, stop_all, tail, which_or_fail
from corral.launchers.local import LocalLauncher, spawn_logged

__all__ = [
    "LaunchError",
    "Launched",
    "Launcher",
    "LocalLauncher",
    "__version__",
    "available_launchers",
    "find_launcher",
    "run_logged",
    "spawn_logged",
    "stop_all",
    "tail",
    "which_or_fail",
]


def available_launchers() -> list[str]:
    """Return the names registered in the ``corral.launchers`` entry-point group, sorted."""
    return sorted({ep.name for ep in entry_points(group="corral.launchers")})


def find_launcher(name: str) -> type[Launcher]:
    """Return the launcher class registered as ``name`` in the ``corral.launchers`` group.

    Raises
    ------
    ValueError
        If no launcher has that name (the message lists the available ones), or what is
        registered under it is not a :class:`Launcher` subclass.
    """
    found = {ep.name: ep for ep in entry_points(group="corral.launchers")}
    if name not in found:
        available = ", ".join(sorted(found)) or "none"
        raise ValueError(f"no launcher named {name!r}; available: {available}")
    cls = found[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Launcher)):
        raise ValueError(
            f"the launcher {name!r} ({found[name].value}) is not a corral.launchers.Launcher subclass; "
            "fix or uninstall the package that registers it"
        )
    return cls
