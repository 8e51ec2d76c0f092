"""corral.cli: the ``corral`` command.

``corral --version`` lists every installed corral distribution and the protocol version;
``corral selfcheck`` checks that this machine can sign, send, verify and run a request over a
real ZeroMQ connection.
"""

from __future__ import annotations

from corral.cli._main import build_parser, main
from corral.cli._version import __version__

__all__ = ["__version__", "build_parser", "main"]
