"""IPython magics for corral (%px, %%px, %autopx, %pxresult, %pxconfig).

This is the skeleton of the package; the magics land with their own issue.
"""

from __future__ import annotations

from corral.magics._version import __version__

__all__ = ["__version__"]
