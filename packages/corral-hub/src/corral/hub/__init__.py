"""The corral hub: registration, heartbeats, the result store and queries.

This is the skeleton of the package; the hub lands with the cluster issue.
"""

from __future__ import annotations

from corral.hub._version import __version__

__all__ = ["__version__"]
