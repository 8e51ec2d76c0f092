"""The corral client: Client, views, AsyncResult, decorators and errors.

This is the skeleton of the package; the client lands with the cluster issue.
"""

from __future__ import annotations

from corral.client._version import __version__

__all__ = ["__version__"]
