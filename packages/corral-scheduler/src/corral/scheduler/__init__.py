"""corral schedulers: direct (MUX) routing, load-balanced tasks and broadcast.

This is the skeleton of the package; the schedulers land with the cluster issue.
"""

from __future__ import annotations

from corral.scheduler._version import __version__

__all__ = ["__version__"]
