"""``python -m corral.cluster`` runs a controller (same as ``corral controller``)."""

from __future__ import annotations

import sys

from corral.cluster.app import controller_main

sys.exit(controller_main())
