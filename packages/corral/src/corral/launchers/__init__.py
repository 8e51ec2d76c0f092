"""corral.launchers: start engines and controllers locally, with MPI, SSH or batch systems.

This is the skeleton of the portion; launchers land with their own issue.
"""

from __future__ import annotations

from corral.cli._version import __version__

__all__ = ["__version__"]
