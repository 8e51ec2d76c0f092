"""The corral engine: runs requests in a namespace it owns.

This is the skeleton of the package; the engine itself lands with the cluster issue.
"""

from __future__ import annotations

from corral.engine._version import __version__

__all__ = ["__version__"]
