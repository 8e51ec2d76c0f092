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

from corral.engine._version import __version__
from corral.engine.engine import Engine
from corral.engine.errors import RegistrationError, RegistrationTimeout

__all__ = ["Engine", "RegistrationError", "RegistrationTimeout", "__version__"]
