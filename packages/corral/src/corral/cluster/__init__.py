"""corral.cluster: start and stop a cluster (controller and engines) from Python.

This is the skeleton of the portion; ``Cluster`` lands with the cluster issue.
"""

from __future__ import annotations

from corral.cli._version import __version__

__all__ = ["__version__"]
