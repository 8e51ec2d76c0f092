"""The corral engine: runs the requests a cluster sends it, in a namespace it owns.

Run one as a program, ``python -m corral.engine --connection-file FILE``, or embed one in an
application with :class:`Engine`::

    from corral.engine import Engine

    engine = Engine("corral-default.json", namespace={"model": model})
    engine.start()      # registered, serving in a background thread
    ...
    engine.stop()

Errors (see :mod:`corral.engine.errors`)::

    CorralError
    └── RegistrationError
        └── RegistrationTimeout   (also corral.wire.errors.TimeoutError)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral.engine._version import __version__
from corral.engine.errors import RegistrationError, RegistrationTimeout

if TYPE_CHECKING:
    from corral.engine.engine import Engine

__all__ = ["Engine", "RegistrationError", "RegistrationTimeout", "__version__"]


def __getattr__(name: str) -> Any:
    # Engine is imported on first use: the engine program's supervisor process imports this
    # package too, and never needs the engine's modules (a cluster start pays for every import)
    if name == "Engine":
        from corral.engine.engine import Engine

        return Engine
    raise AttributeError(f"module 'corral.engine' has no attribute {name!r}")
