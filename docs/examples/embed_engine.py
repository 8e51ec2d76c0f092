"""Embed a corral engine in a running application, and steer the application from a cluster.

The application here is a small "sensor station": its main loop samples a (simulated) sensor
and keeps a history. A corral engine embedded in it serves the station's namespace to the
cluster from background threads, so a client can inspect and steer the running program::

    $ python docs/examples/embed_engine.py ~/.corral/security/corral-default.json
    engine 4 serving the namespace of 'sensor-station'

and, from any client of the same cluster::

    >>> from corral.client import Client
    >>> rc = Client()
    >>> station = rc[4]                          # the id the program printed
    >>> station.execute("app.set_rate(5.0)")     # runs in the station's namespace
    >>> station.apply_sync(lambda: app.mean())   # `app` is the station's global

The program ends when a client shuts the engine down (``rc[4].shutdown()``), after
``--seconds``, or on Ctrl-C; the engine always stops cleanly (``engine.stop()``).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Sequence

from corral.engine import Engine, RegistrationError


class SensorStation:
    """The application: samples a sensor at ``rate`` Hz and keeps the last 1000 samples."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rate = 2.0
        self.history: list[float] = []
        self._lock = threading.Lock()  # the engine's requests run in another thread

    def sample(self) -> None:
        """Take one reading."""
        value = math.sin(time.time()) + random.gauss(0.0, 0.1)
        with self._lock:
            self.history.append(value)
            del self.history[:-1000]

    def set_rate(self, rate: float) -> None:
        """Change the sampling rate (Hz); a client calls this remotely."""
        if not rate > 0:
            raise ValueError(f"the rate must be positive, not {rate!r}")
        self.rate = float(rate)

    def mean(self) -> float:
        """The mean of the samples so far (0.0 before the first)."""
        with self._lock:
            return sum(self.history) / len(self.history) if self.history else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("connection_file", help="the cluster's connection file")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")

    app = SensorStation("sensor-station")
    # the engine serves this dict: requests see `app` as a global, and change the real object
    engine = Engine(args.connection_file, namespace={"app": app})
    try:
        engine.start()  # returns once registered; requests are served in background threads
    except RegistrationError as err:
        print(f"could not join the cluster: {err}", file=sys.stderr)
        return 1
    # the application's own output is not captured by the engine: this line reaches the terminal
    print(f"engine {engine.id} serving the namespace of {app.name!r}", flush=True)

    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        # the application's main loop; join() returns True once the engine has stopped
        while not engine.join(timeout=1.0 / app.rate):
            app.sample()
            if deadline is not None and time.monotonic() > deadline:
                break
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
    print(f"engine stopped: {engine.stop_reason}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
