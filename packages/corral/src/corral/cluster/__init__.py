"""corral.cluster: start and stop a cluster (controller and engines) from Python.

- :class:`Cluster` starts a controller and engines with ipyparallel's method names
  (``start_cluster_sync()``, ``with Cluster(n=4) as rc:``, ...);
- :class:`~corral.cluster.controller.Controller` is the controller itself (hub and schedulers),
  which ``corral controller`` and ``python -m corral.cluster`` run.
"""

from __future__ import annotations

from corral.cli._version import __version__
from corral.cluster.cluster import Cluster
from corral.cluster.controller import Controller

__all__ = ["Cluster", "Controller", "__version__"]
