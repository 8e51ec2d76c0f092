"""corral.launchers: start controllers and engines.

Launchers are found by name through the ``corral.launchers`` entry-point group, so other
packages can add their own; ``local`` (child processes of this one) is built in. MPI, SSH and
batch-system launchers land with their own issue.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from corral.cli._version import __version__
from corral.launchers.base import Launched, LaunchError, stop_all, tail
from corral.launchers.local import LocalLauncher

__all__ = ["LaunchError", "Launched", "LocalLauncher", "__version__", "find_launcher", "stop_all", "tail"]


def find_launcher(name: str) -> Any:
    """Return the launcher class registered as ``name`` in the ``corral.launchers`` group.

    Raises
    ------
    ValueError
        If no launcher has that name; the message lists the available ones.
    """
    found = {ep.name: ep for ep in entry_points(group="corral.launchers")}
    if name not in found:
        available = ", ".join(sorted(found)) or "none"
        raise ValueError(f"no launcher named {name!r}; available: {available}")
    return found[name].load()
