"""corral.client: connect to a corral cluster and run Python on its engines.

The API of IPython.parallel and ipyparallel, so code ports by changing the import::

    from corral.client import Client

    rc = Client()                      # the default cluster's connection file
    dv = rc[:]                         # a DirectView on every engine
    dv.apply_sync(os.getpid)           # one result per engine
    ar = rc[0].apply_async(f, x)       # an AsyncResult: a concurrent.futures.Future
    ar.get(timeout=5)

Names
-----
Client
    A connection to one cluster: engine ids, views, waiting, results, control.
View, DirectView, LoadBalancedView, BroadcastView
    Run functions and code on engines; move data in and out of their namespaces.
AsyncResult, AsyncMapResult, AsyncHubResult
    Results that are not in yet; futures, awaitable. ``AsyncHubResult``: results another
    client sent, fetched from the hub (``Client.get_result``).
BenchmarkResult, Measurement
    What ``Client.benchmark()`` measured: latency and push throughput, every run.
Metadata
    What is known about one request (timestamps, engine, output).
RemoteFunction, ParallelFunction, remote, parallel
    Functions that run through a view when called.
Dependency, depend, require
    Dependencies of load-balanced tasks: on other tasks (``after``, ``follow``), and on the
    engine itself (a check function, modules to import).
register_joblib
    Register the ``"corral"`` joblib backend (``joblib.parallel_config(backend="corral")``).
Reference, interactive
    Refer to a name in the engine's namespace; send a function to run in it.
RemoteError, CompositeError, EngineError, TaskAborted, TimeoutError, NoEnginesRegistered, ...
    Errors, also in :mod:`corral.client.errors`.
"""

from __future__ import annotations

import sys as _sys

from corral.client._asyncresult import AsyncMapResult, AsyncResult
from corral.client._benchmark import BenchmarkResult, Measurement
from corral.client._broadcastview import BroadcastView
from corral.client._client import Client
from corral.client._directview import DirectView
from corral.client._executor import ViewExecutor
from corral.client._hubresult import AsyncHubResult
from corral.client._joblib import register_joblib
from corral.client._lbview import LoadBalancedView
from corral.client._metadata import Metadata
from corral.client._outputs import show_outputs
from corral.client._remotefunction import ParallelFunction, RemoteFunction, parallel, remote
from corral.client._version import __version__
from corral.client._view import View
from corral.client.errors import (
    CompositeError,
    ConnectionFileError,
    ControllerLost,
    CorralError,
    DependencyTimeout,
    EngineError,
    ImpossibleDependency,
    NoEnginesRegistered,
    RemoteError,
    ResultExpired,
    SerializationError,
    TaskAborted,
    TimeoutError,  # noqa: A004 - corral's, a subclass of the builtin
)
from corral.wire.canning import Reference, interactive
from corral.wire.dependencies import Dependency, depend, require

__all__ = [
    "AsyncHubResult",
    "AsyncMapResult",
    "AsyncResult",
    "BenchmarkResult",
    "BroadcastView",
    "Client",
    "CompositeError",
    "ConnectionFileError",
    "ControllerLost",
    "CorralError",
    "Dependency",
    "DependencyTimeout",
    "DirectView",
    "EngineError",
    "ImpossibleDependency",
    "LoadBalancedView",
    "Measurement",
    "Metadata",
    "NoEnginesRegistered",
    "ParallelFunction",
    "Reference",
    "RemoteError",
    "RemoteFunction",
    "ResultExpired",
    "SerializationError",
    "TaskAborted",
    "TimeoutError",
    "View",
    "ViewExecutor",
    "__version__",
    "depend",
    "interactive",
    "parallel",
    "register_joblib",
    "remote",
    "require",
    "show_outputs",
]

# The joblib backend is registered here only if the program already imported joblib, so that
# `import corral.client` does not import it (docs/decisions.md, "The joblib backend").
if "joblib" in _sys.modules:
    register_joblib()
