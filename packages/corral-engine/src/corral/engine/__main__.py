"""``python -m corral.engine``: run an engine (see :mod:`corral.engine.app`)."""

from __future__ import annotations

import sys

from corral.engine.app import main

if __name__ == "__main__":
    sys.exit(main())
