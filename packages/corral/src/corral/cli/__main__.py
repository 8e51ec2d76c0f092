"""``python -m corral.cli`` runs the ``corral`` command."""

from __future__ import annotations

import sys

from corral.cli._main import main

sys.exit(main())
