"""``DirectView``: run on chosen engines and read and write their namespaces."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from traitlets import TraitError, validate

from corral.client._asyncresult import AsyncMapResult, AsyncResult
from corral.client._engines import Targets, _is_int
from corral.client._partition import as_sequence, block_bounds, check_dist, join_partitions, partition
from corral.client._sync_imports import SyncImports
from corral.client._view import View
from corral.wire.remote_calls import map_chunk
from corral.wire.serialize import pack_apply_message

if TYPE_CHECKING:
    from traitlets.utils.bunch import Bunch

    from corral.client._client import Client

__all__ = ["DirectView"]


def _name_of(f: Callable[..., Any]) -> str:
    return str(getattr(f, "__name__", None) or type(f).__name__)


def _concat(chunks: list[Any]) -> list[Any]:
    return [x for chunk in chunks for x in chunk]


class DirectView(View):
    """Run on chosen engines, each keeping its own namespace.

    Made by indexing a client (``rc[0]``, ``rc[::2]``, ``rc[:]``) or with
    ``rc.direct_view()``. The engines' namespaces read like a dict: ``dv["a"] = 5`` pushes,
    ``dv["a"]`` pulls. A view on one engine (``rc[0]``) returns single values; a view on
    several returns lists in target order.
    """

    def __init__(self, client: Client, targets: Targets = "all", **flags: Any) -> None:
        super().__init__(client, targets=targets, **flags)

    @validate("targets")
    def _valid_targets(self, proposal: Bunch) -> Any:
        value = proposal["value"]
        if value is None or (isinstance(value, str) and value == "all"):
            return "all"
        if _is_int(value):
            return int(value)
        if isinstance(value, (list, tuple, range)):
            if not all(_is_int(t) for t in value):
                raise TraitError(f"targets must hold engine ids (ints), not {list(value)!r}")
            if not value:
                raise TraitError("targets cannot be an empty list; use 'all' or name engines")
            return [int(t) for t in value]
        raise TraitError(f"targets must be an engine id, a list of ids or 'all', not {value!r}")

    def _resolve(self, targets: Targets) -> tuple[list[int], list[str], bool]:
        t = self.targets if targets is None else targets
        ids, uuids = self.client._engines.resolve(t)
        return ids, uuids, _is_int(t)

    def _send(
        self,
        msg_type: str,
        payloads: Sequence[tuple[Mapping[str, Any], Sequence[Any]]],
        ids: list[int],
        uuids: list[str],
        *,
        fname: str,
        single: bool,
        track: bool | None,
        result_class: type[AsyncResult] = AsyncResult,
        **kwargs: Any,
    ) -> AsyncResult:
        ar = self.client._submit(
            "mux",
            msg_type,
            payloads,
            ids,
            uuids,
            fname=fname,
            single=single,
            track=bool(self.track if track is None else track),
            result_class=result_class,
            **kwargs,
        )
        self.history.extend(ar.msg_ids)
        return ar

    def _really_apply(
        self,
        f: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        block: bool | None = None,
        track: bool | None = None,
        targets: Targets = None,
    ) -> Any:
        ids, uuids, single = self._resolve(targets)
        ser = self._serializer
        payload = ({"serializer": ser.name}, pack_apply_message(f, args, kwargs, ser))
        ar = self._send(
            "apply_request", [payload] * len(ids), ids, uuids, fname=_name_of(f), single=single, track=track
        )
        return ar.get() if self._block(block) else ar

    def map(self, f: Callable[..., Any], *sequences: Any, block: bool | None = None, track: bool | None = None) -> Any:
        """Parallel ``map(f, *sequences)``: one contiguous block of the sequences per engine.

        Returns
        -------
        list (blocking) or AsyncMapResult: the results in the order of the sequences.

        Raises
        ------
        ValueError
            If no sequence is given or they differ in length.
        TypeError
            If a sequence is not iterable.
        SerializationError, NoEnginesRegistered, IndexError
            As :meth:`apply`.
        RemoteError, CompositeError
            When blocking, if ``f`` failed on an engine.
        """
        if not sequences:
            raise ValueError("map needs at least one sequence")
        seqs = [as_sequence(s) for s in sequences]
        n = len(seqs[0])
        if any(len(s) != n for s in seqs):
            raise ValueError(f"the sequences differ in length: {[len(s) for s in seqs]}")
        ids, uuids, _ = self._resolve(None)
        ser = self._serializer
        payloads, used_ids, used_uuids, bounds = [], [], [], []
        for i, (eid, uuid) in enumerate(zip(ids, uuids, strict=True)):
            lo, hi = block_bounds(n, i, len(ids))
            if hi > lo:
                frames = pack_apply_message(map_chunk, (f, *(s[lo:hi] for s in seqs)), {}, ser)
                payloads.append(({"serializer": ser.name}, frames))
                used_ids.append(eid)
                used_uuids.append(uuid)
                bounds.append((lo, hi))
        amr = self._send(
            "apply_request",
            payloads,
            used_ids,
            used_uuids,
            fname=_name_of(f),
            single=False,
            track=track,
            result_class=AsyncMapResult,
            join=_concat,
            bounds=bounds,
        )
        return amr.get() if self._block(block) else amr

    def execute(
        self, code: str, silent: bool = True, targets: Targets = None, block: bool | None = None
    ) -> AsyncResult:
        """Run a string of code in the engines' namespaces.

        The AsyncResult's value is that of the code's last expression on each engine (None
        when the code ends with a statement or the value cannot be pickled; its text form is
        in ``metadata["execute_result"]`` then).

        Returns
        -------
        AsyncResult
            Also when blocking: then it is already finished (and errors were raised).

        Raises
        ------
        TypeError
            If ``code`` is not a str.
        NoEnginesRegistered, IndexError
            If the targets are not registered engines.
        RemoteError, CompositeError
            When blocking, if the code raised on an engine.
        """
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        ids, uuids, single = self._resolve(targets)
        payload = ({"code": code, "silent": bool(silent), "serializer": self._serializer.name}, ())
        ar = self._send(
            "execute_request", [payload] * len(ids), ids, uuids, fname="execute", single=single, track=False
        )
        if self._block(block):
            ar.get()
        return ar

    def run(self, filename: str | os.PathLike[str], targets: Targets = None, block: bool | None = None) -> AsyncResult:
        """Execute the contents of a local file on the engines (see :meth:`execute`).

        Raises
        ------
        OSError
            If the file cannot be read.
        NoEnginesRegistered, IndexError, RemoteError, CompositeError
            As :meth:`execute`.
        """
        with open(filename, encoding="utf-8") as f:
            code = f.read() + "\n"
        return self.execute(code, targets=targets, block=block)

    # -- namespaces ----------------------------------------------------------------------------

    def push(
        self, ns: Mapping[str, Any], targets: Targets = None, block: bool | None = None, track: bool | None = None
    ) -> Any:
        """Update the engines' namespaces with the dict ``ns`` (sent once, without copies).

        Raises
        ------
        TypeError
            If ``ns`` is not a mapping with str keys.
        SerializationError, NoEnginesRegistered, IndexError
            As :meth:`apply`.
        RemoteError, CompositeError
            When blocking, if an engine failed to take the values.
        """
        if not isinstance(ns, Mapping) or not all(isinstance(k, str) for k in ns):
            raise TypeError(f"push needs a dict of names to values, not {type(ns).__name__}")
        ids, uuids, single = self._resolve(targets)
        ser = self._serializer
        payload = ({"serializer": ser.name}, ser.dumps(dict(ns)))
        ar = self._send("push_request", [payload] * len(ids), ids, uuids, fname="push", single=single, track=track)
        return ar.get() if self._block(block) else ar

    def pull(self, names: str | Sequence[str], targets: Targets = None, block: bool | None = None) -> Any:
        """Get one name (a str) or several (a list) from the engines' namespaces.

        Raises
        ------
        TypeError
            If ``names`` is not a str or a sequence of str.
        NoEnginesRegistered, IndexError
            If the targets are not registered engines.
        RemoteError, CompositeError
            When blocking, if a name is not defined on an engine (``NameError``).
        """
        if isinstance(names, str):
            content = {"names": [names], "single": True, "serializer": self._serializer.name}
        elif isinstance(names, (list, tuple, set)) and all(isinstance(n, str) for n in names):
            content = {"names": list(names), "single": False, "serializer": self._serializer.name}
        else:
            raise TypeError(f"names must be a str or a list of str, not {names!r}")
        ids, uuids, single = self._resolve(targets)
        ar = self._send(
            "pull_request", [(content, ())] * len(ids), ids, uuids, fname="pull", single=single, track=False
        )
        return ar.get() if self._block(block) else ar

    def get(self, key_s: str | Sequence[str]) -> Any:
        """``pull(key_s, block=True)``.

        Raises
        ------
        TypeError, NoEnginesRegistered, IndexError, RemoteError, CompositeError
            As :meth:`pull`.
        """
        return self.pull(key_s, block=True)

    def update(self, ns: Mapping[str, Any]) -> Any:
        """``push(ns)`` with the view's flags.

        Raises
        ------
        TypeError, SerializationError, NoEnginesRegistered, IndexError, RemoteError
            As :meth:`push`.
        """
        return self.push(ns)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def clear(self, targets: Targets = None, block: bool | None = None) -> AsyncResult | None:
        """Empty the engines' namespaces, ahead of their queues; see :meth:`Client.clear`.

        Raises
        ------
        NoEnginesRegistered, IndexError, corral.wire.errors.TimeoutError
            As :meth:`Client.clear`.
        """
        return self.client.clear(self.targets if targets is None else targets, block=self._block(block))

    def scatter(
        self,
        key: str,
        seq: Any,
        dist: str = "b",
        flatten: bool = False,
        targets: Targets = None,
        block: bool | None = None,
        track: bool | None = None,
    ) -> AsyncResult | None:
        """Cut ``seq`` into one contiguous block per engine and push each as ``key``.

        Arrays are cut by rows (views, sent without copies), lists, tuples and strings by
        slices. With ``flatten``, a block of one item is pushed as the item itself.

        Returns
        -------
        AsyncResult, or None when blocking.

        Raises
        ------
        ValueError
            If ``dist`` is not ``'b'``.
        TypeError
            If ``key`` is not a str or ``seq`` cannot be partitioned.
        SerializationError, NoEnginesRegistered, IndexError, RemoteError, CompositeError
            As :meth:`push`.
        """
        check_dist(dist)
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        ids, uuids, _ = self._resolve(targets)
        ser = self._serializer
        payloads = []
        for part in partition(as_sequence(seq), len(ids)):
            value = part[0] if flatten and len(part) == 1 else part
            payloads.append(({"serializer": ser.name}, ser.dumps({key: value})))
        ar = self._send("push_request", payloads, ids, uuids, fname="scatter", single=False, track=track)
        if self._block(block):
            ar.get()
            return None
        return ar

    def gather(self, key: str, dist: str = "b", targets: Targets = None, block: bool | None = None) -> Any:
        """Pull ``key`` from each engine and join the blocks (the inverse of :meth:`scatter`).

        Returns
        -------
        The joined sequence (blocking), or an AsyncMapResult.

        Raises
        ------
        ValueError
            If ``dist`` is not ``'b'``.
        NoEnginesRegistered, IndexError, RemoteError, CompositeError
            As :meth:`pull`.
        """
        check_dist(dist)
        ids, uuids, _ = self._resolve(targets)
        content = {"names": [key], "single": True}
        amr = self._send(
            "pull_request",
            [(content, ())] * len(ids),
            ids,
            uuids,
            fname="gather",
            single=False,
            track=False,
            result_class=AsyncMapResult,
            join=join_partitions,
        )
        return amr.get() if self._block(block) else amr

    def sync_imports(self, local: bool = True, quiet: bool = False) -> SyncImports:
        """Import modules locally and on the engines with the same statements.

        Examples
        --------
        >>> with dv.sync_imports():  # doctest: +SKIP
        ...     import numpy
        importing numpy on engine(s)

        Raises
        ------
        NotImplementedError
            With ``local=False``.
        RemoteError, CompositeError
            On leaving the block, if an import failed on an engine.
        """
        return SyncImports(self, local=local, quiet=quiet)

    @property
    def importer(self) -> SyncImports:
        """``sync_imports()``, as a property: ``with dv.importer: import x``."""
        return self.sync_imports()

    def activate(self, suffix: str = "") -> None:
        """Make the parallel magics (``%px``, ``%%px``, ``%autopx``, ``%pxresult``, ``%pxconfig``) run on this view.

        The magics come from the ``corral-magics`` distribution, found through the
        ``corral.activate`` entry point group (corral-client itself never imports IPython).
        With a ``suffix`` the magics get it appended, so several views can have magics at once:
        ``rc[::2].activate("_even")`` gives ``%px_even``, ``%autopx_even`` ...

        Raises
        ------
        ImportError
            If corral-magics (or IPython) is not installed; the message says what to install.
        RuntimeError
            If this process is not an IPython session.
        """
        from importlib.metadata import entry_points

        found = list(entry_points(group="corral.activate", name="magics"))
        if not found:
            raise ImportError(
                "view.activate() needs the corral-magics distribution (and IPython): pip install corral-magics"
            )
        try:
            activate = found[0].load()
        except ImportError as err:
            raise ImportError(
                f"view.activate() could not load corral.magics ({err}); it needs IPython: pip install corral-magics"
            ) from err
        activate(self, suffix)
