"""A joblib parallel backend, ``"corral"``: ``joblib.Parallel`` calls run on a corral cluster.

::

    import joblib
    import corral.client

    corral.client.register_joblib()          # or: import joblib before corral.client
    with joblib.parallel_config(backend="corral"):
        squares = joblib.Parallel()(joblib.delayed(pow)(i, 2) for i in range(100))

The backend sends each batch of calls joblib makes as one load-balanced task, so an engine
that is free takes the next batch. By default it connects a :class:`~corral.client.Client`
to the newest running cluster on this machine (see :func:`default_connection_file`) and
closes it when the ``Parallel`` call ends; pass ``client=`` or ``view=`` to
``parallel_config`` to use one you have (it is then left open).

Registration does not import joblib: importing :mod:`corral.client` registers the backend
only when joblib is already imported, and :func:`register_joblib` registers it explicitly
(importing joblib). Importing joblib on every ``import corral.client`` would add its import
time to every client and engine for a feature most of them never use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.wire.errors import ConnectionFileError
from corral.wire.paths import DEFAULT_CLUSTER_ID, connection_file_path, corral_dir

if TYPE_CHECKING:
    from corral.client._client import Client
    from corral.client._lbview import LoadBalancedView

__all__ = ["BACKEND_NAME", "default_connection_file", "register_joblib"]

#: The name ``joblib.parallel_config(backend=...)`` selects corral by.
BACKEND_NAME = "corral"


def default_connection_file() -> Path:
    """Return the connection file the joblib backend connects to when given no client.

    The default cluster's (``corral start`` without ``--cluster-id``) if it exists, else the
    most recently written connection file under ``$CORRAL_DIR/security`` (``~/.corral``).

    Raises
    ------
    ConnectionFileError
        If there is no connection file at all (no cluster was started on this machine).
    """
    default = connection_file_path(DEFAULT_CLUSTER_ID)
    if default.exists():
        return default
    folder = corral_dir() / "security"
    found = sorted(folder.glob("corral-*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not found:
        raise ConnectionFileError(
            f"the joblib backend 'corral' found no running cluster (no connection file in {folder}): "
            "start one (`corral start -n 4`), or pass one with "
            "joblib.parallel_config(backend='corral', client=Client(...))"
        )
    return found[-1]


def register_joblib(make_default: bool = False) -> None:
    """Register the ``"corral"`` backend with joblib (importing joblib).

    Parameters
    ----------
    make_default
        Also make it joblib's default backend, so every ``Parallel()`` runs on the cluster.

    Raises
    ------
    ImportError
        If joblib is not installed (``pip install joblib``).
    """
    try:
        import joblib  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as err:
        raise ImportError("the corral joblib backend needs joblib: `pip install joblib`") from err
    joblib.register_parallel_backend(BACKEND_NAME, _backend_class(), make_default=make_default)


_BACKEND_CLASS: type[Any] | None = None


def _backend_class() -> type[Any]:
    """Return the backend class, defined on first use so that this module imports without joblib."""
    global _BACKEND_CLASS
    if _BACKEND_CLASS is None:
        _BACKEND_CLASS = _define_backend()
    return _BACKEND_CLASS


def _define_backend() -> type[Any]:
    from joblib.parallel import ParallelBackendBase  # type: ignore[import-untyped,import-not-found,unused-ignore]

    class CorralBackend(ParallelBackendBase):  # type: ignore[misc]  # joblib has no type hints
        """joblib backend running each batch of calls as a corral load-balanced task.

        Parameters
        ----------
        client
            The Client to use; by default one is connected to :func:`default_connection_file`
            at the start of each ``Parallel`` call and closed at its end.
        view
            The LoadBalancedView to send tasks through (its flags apply); overrides ``client``.
        """

        supports_retrieve_callback = True
        supports_sharedmem = False
        uses_threads = False
        default_n_jobs = -1

        def __init__(
            self,
            client: Client | None = None,
            view: LoadBalancedView | None = None,
            nesting_level: int | None = None,
            inner_max_num_threads: int | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **kwargs)
            self._given_view = view
            self._given_client = client if view is None else view.client
            self._own_client: Client | None = None
            self._view: LoadBalancedView | None = view

        def _ensure_view(self) -> LoadBalancedView:
            if self._view is None:
                client = self._given_client
                if client is None:
                    from corral.client._client import Client

                    client = self._own_client = Client(os.fspath(default_connection_file()))
                self._view = client.load_balanced_view()
            return self._view

        def effective_n_jobs(self, n_jobs: int | None) -> int:
            """Return how many batches run at once: the number of engines, at most ``n_jobs``.

            Raises
            ------
            ValueError
                If ``n_jobs`` is 0.
            """
            if n_jobs == 0:
                raise ValueError("n_jobs == 0 in Parallel has no meaning; use n_jobs=-1 for every engine")
            view = self._ensure_view()
            targets = view.targets
            if targets is None or targets == "all":
                engines = len(view.client.ids)
            else:
                engines = 1 if isinstance(targets, int) else len(list(targets))
            engines = max(engines, 1)
            if n_jobs is None or n_jobs < 0:
                return engines
            return min(n_jobs, engines)

        def configure(
            self,
            n_jobs: int | None = 1,
            parallel: Any = None,
            prefer: str | None = None,
            require: str | None = None,
            **backend_kwargs: Any,
        ) -> int:
            """Connect (if needed) and return the number of batches that run at once.

            Raises
            ------
            ValueError
                If ``require="sharedmem"``: engines are other processes.
            """
            if require == "sharedmem":
                raise ValueError(
                    "the corral backend runs calls in other processes and cannot share memory; "
                    "drop require='sharedmem' or use joblib's threading backend"
                )
            self.parallel = parallel
            return self.effective_n_jobs(n_jobs)

        def submit(self, func: Any, callback: Any = None) -> Any:
            """Send one batch of calls as a task; return its AsyncResult (a Future)."""
            ar = self._ensure_view().apply_async(func)
            if callback is not None:
                ar.add_done_callback(callback)
            return ar

        def retrieve_result_callback(self, out: Any) -> Any:
            """Return the result of a finished batch (raising the remote error if it failed)."""
            return out.get()

        def abort_everything(self, ensure_ready: bool = True) -> None:
            """Abort the tasks still queued after a batch failed."""
            if self._view is not None and self._view.outstanding:
                self._view.abort()
            if not ensure_ready:
                self.terminate()

        def terminate(self) -> None:
            """Close the client this backend connected itself."""
            if self._own_client is not None:
                self._own_client.close()
                self._own_client = None
                self._view = self._given_view

    CorralBackend.__module__ = __name__
    return CorralBackend
