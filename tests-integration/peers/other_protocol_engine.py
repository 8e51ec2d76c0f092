"""A real engine speaking another protocol version, for tests-integration/test_protocol.py.

``other_protocol_engine.py CONNECTION_FILE VERSION MODE`` runs the engine program in this
process (``--no-supervisor``) after changing the protocol version its messages carry:

- ``header``: only the version written into headers (an engine that still reads 1.x replies);
- ``engine``: the whole engine speaks ``VERSION``, so it cannot read the hub's reply either.
"""

from __future__ import annotations

import sys

import corral.wire.session as session
from corral.engine.app import main

connection_file, version, mode = sys.argv[1:4]
session.PROTOCOL_VERSION = version  # what every header this process sends says
if mode == "engine":
    session._MAJOR = int(version.split(".")[0])  # and what it accepts from peers
sys.exit(main(["--connection-file", connection_file, "--no-supervisor", "--timeout", "10", "--log-level", "WARNING"]))
