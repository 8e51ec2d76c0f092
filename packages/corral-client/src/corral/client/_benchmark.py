"""``Client.benchmark()``: what this cluster's network and configuration give a user, measured live.

Two things are measured on the running cluster, each over several runs so that the spread
shows how steady the numbers are:

- **command latency**: the round trip of ``execute("pass")`` (the engines run ``pass``), on
  one engine and on all the chosen engines at once;
- **push throughput**: ``push({name: array}, block=True)`` of a float64 numpy array of a
  chosen size, to one engine and to all of them (aggregate MB/s: bytes delivered to engines
  over time).

The seed's ``benchmark()`` of the Twisted-era client measured the same two things.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corral.client._client import Client
    from corral.client._directview import DirectView
    from corral.client._engines import Targets

__all__ = ["BenchmarkResult", "Measurement", "run_benchmark"]

#: The engine-side name the pushed array is bound to (deleted afterwards).
_NAME = "_corral_benchmark_array"


@dataclass(frozen=True)
class Measurement:
    """One benchmark row: what was measured and its value in every run.

    Attributes
    ----------
    name
        What was measured, e.g. ``"latency, 1 engine"``.
    unit
        ``"ms"`` (lower is better) or ``"MB/s"`` (higher is better).
    values
        One value per run, in run order.
    """

    name: str
    unit: str
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median over runs."""
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        """The smallest value of any run."""
        return min(self.values)

    @property
    def max(self) -> float:
        """The largest value of any run."""
        return max(self.values)


@dataclass(frozen=True)
class BenchmarkResult:
    """The outcome of :meth:`Client.benchmark`; ``str()`` of it is a table.

    Attributes
    ----------
    engines
        The ids of the engines measured.
    runs
        How many timed runs each measurement has.
    size_mb
        Size of the pushed array in MB (1e6 bytes).
    measurements
        The rows, latency first.
    """

    engines: tuple[int, ...]
    runs: int
    size_mb: float
    measurements: tuple[Measurement, ...] = field(default=())

    def __getitem__(self, name: str) -> Measurement:
        """Return the measurement called ``name``.

        Raises
        ------
        KeyError
            If there is none of that name (the message lists the names there are).
        """
        for m in self.measurements:
            if m.name == name:
                return m
        raise KeyError(f"no measurement {name!r}; there are {[m.name for m in self.measurements]}")

    def __str__(self) -> str:
        header = ("measurement", "median", "min - max", "")
        rows = [(m.name, _fmt(m.median), f"{_fmt(m.min)} - {_fmt(m.max)}", m.unit) for m in self.measurements]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        lines = [
            f"corral benchmark: engines {list(self.engines)}, {self.runs} runs each, "
            f"array of {self.size_mb:g} MB (float64)"
        ]
        for j, r in enumerate([header, *rows]):
            cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3]]
            lines.append("  " + "  ".join(cells).rstrip())
            if j == 0:
                lines.append("  " + "  ".join("-" * w for w in widths[:3]))
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _timed(runs: int, once: Callable[[], object]) -> list[float]:
    """Call ``once`` one time untimed (warm-up), then ``runs`` times; return the seconds of each."""
    once()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return times


def run_benchmark(
    client: Client, *, runs: int = 10, size_mb: float = 10.0, targets: Targets = "all"
) -> BenchmarkResult:
    """Measure command latency and push throughput on ``client``'s engines (see :meth:`Client.benchmark`).

    Raises
    ------
    ValueError
        If ``runs`` is below 1 or ``size_mb`` is not positive.
    NoEnginesRegistered, IndexError
        If no engine is registered, or ``targets`` names one that is not.
    ImportError
        If numpy is not installed here.
    RemoteError, CompositeError
        If an engine fails a request (e.g. runs out of memory for the array).
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    if not size_mb > 0:
        raise ValueError(f"size_mb must be a positive number of megabytes, not {size_mb}")
    try:
        import numpy as np
    except ImportError as err:
        raise ImportError("Client.benchmark() pushes a numpy array: `pip install numpy`") from err

    view = client.direct_view(targets)
    ids: Sequence[int] = list(view._resolve(None)[0])
    one = client.direct_view(ids[0])
    array = np.ones(max(1, int(size_mb * 1e6) // 8), dtype=np.float64)
    nbytes = array.nbytes
    rows: list[Measurement] = []

    def latency(name: str, target_view: DirectView) -> None:
        times = _timed(runs, lambda: target_view.execute("pass", block=True))
        rows.append(Measurement(name, "ms", tuple(t * 1e3 for t in times)))

    def push(name: str, target_view: DirectView, n: int) -> None:
        times = _timed(runs, lambda: target_view.push({_NAME: array}, block=True))
        rows.append(Measurement(name, "MB/s", tuple(nbytes * n / t / 1e6 for t in times)))

    latency("latency, 1 engine", one)
    if len(ids) > 1:
        latency(f"latency, {len(ids)} engines at once", view)
    push(f"push {size_mb:g} MB to 1 engine", one, 1)
    if len(ids) > 1:
        push(f"push {size_mb:g} MB to {len(ids)} engines", view, len(ids))
    view.execute(f"globals().pop({_NAME!r}, None)", block=True)
    return BenchmarkResult(engines=tuple(ids), runs=runs, size_mb=size_mb, measurements=tuple(rows))
