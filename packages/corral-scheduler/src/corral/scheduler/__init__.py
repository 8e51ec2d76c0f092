"""corral.scheduler: route requests from clients to engines, and their replies back.

- :class:`DirectRelay` relays direct (MUX) and control requests to the engine a client names;
- :class:`IOPubRelay` relays engine output to every client;
- :class:`Monitor` is what relays report to the hub.

Relays check signatures and read headers only: payload frames pass through untouched and
uncopied. The load-balanced task scheduler and broadcast land with their own issue.
"""

from __future__ import annotations

from corral.scheduler._version import __version__
from corral.scheduler.iopub import IOPubRelay
from corral.scheduler.monitor import Monitor, NullMonitor
from corral.scheduler.relay import DirectRelay, drain

__all__ = ["DirectRelay", "IOPubRelay", "Monitor", "NullMonitor", "__version__", "drain"]
