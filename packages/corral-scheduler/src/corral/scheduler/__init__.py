"""corral.scheduler: route requests from clients to engines, and their replies back.

- :class:`DirectRelay` relays direct (MUX) and control requests to the engine a client names;
- :class:`IOPubRelay` relays engine output to every client;
- :class:`TaskScheduler` schedules load-balanced tasks (engine choice in
  :mod:`corral.scheduler.policies`, dependencies in :mod:`corral.scheduler.dependencies`);
- :class:`BroadcastScheduler` sends one request to many engines, itself or through a tree of
  :class:`BroadcastNode` processes shaped by a :class:`TreeShape`;
- :class:`Monitor` (and :class:`TaskMonitor`) is what they report to the hub.

Schedulers check signatures and read headers only: payload frames pass through untouched and
uncopied.
"""

from __future__ import annotations

from corral.scheduler._version import __version__
from corral.scheduler.broadcast import BroadcastNode, BroadcastScheduler, TreeShape
from corral.scheduler.iopub import IOPubRelay
from corral.scheduler.monitor import Monitor, NullMonitor
from corral.scheduler.relay import DirectRelay, drain
from corral.scheduler.task import TaskMonitor, TaskScheduler

__all__ = [
    "BroadcastNode",
    "BroadcastScheduler",
    "DirectRelay",
    "IOPubRelay",
    "Monitor",
    "NullMonitor",
    "TaskMonitor",
    "TaskScheduler",
    "TreeShape",
    "__version__",
    "drain",
]
