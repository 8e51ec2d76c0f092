"""``ParallelMagics``: ``%px``, ``%%px``, ``%autopx``, ``%pxresult`` and ``%pxconfig`` for one view.

One instance serves one :class:`~corral.client.DirectView` under one suffix; ``activate`` makes
and registers it. The magics run code with ``view.execute(code, silent=False)`` and show what came
back with :func:`corral.client` 's output rendering (``[stdout:0] ...``, ``Out[0:3]: ...``); failures
are raised so that IPython records them, with the remote tracebacks grouped
(:mod:`corral.magics._errors`).
"""

from __future__ import annotations

import queue
import signal
import sys
from collections.abc import Mapping
from typing import Any, Final

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, magics_class

from corral.client import AsyncResult, Client, DirectView, Metadata, show_outputs
from corral.magics._errors import compact_ids, render_errors
from corral.magics._options import (
    PxOptions,
    config_parser,
    format_targets,
    parse_px,
    parse_result,
    parse_targets,
    split_line,
)

__all__ = ["INTERRUPT_WAIT", "ParallelMagics"]

#: Seconds a blocking ``%px`` waits for interrupted engines to answer before giving up on them.
INTERRUPT_WAIT: Final = 10.0

# how often the streaming loop looks at the result when no output arrives
_STREAM_TICK: Final = 0.25


def _metadata_list(ar: AsyncResult) -> list[Metadata]:
    md = ar.metadata
    return list(md) if isinstance(md, list) else [md]


def _engine_of(md: Mapping[str, Any]) -> Any:
    return md.get("engine_id")


@magics_class
class ParallelMagics(Magics):
    """The parallel magics of one view, named with an optional suffix.

    Parameters
    ----------
    shell
        The IPython shell to register with.
    view
        The view the magics run on; None: connect to the default cluster on first use.
    suffix
        Appended to every magic's name (``%px_even``), so several views can have magics.
    """

    def __init__(self, shell: InteractiveShell | None, view: DirectView | None, suffix: str = "") -> None:
        if not isinstance(suffix, str) or (suffix and not suffix.replace("_", "a").isalnum()):
            raise ValueError(f"suffix must be letters, digits and underscores (like '_even'), not {suffix!r}")
        self.view = view
        self.suffix = suffix
        #: %pxconfig defaults: targets (None: the view's own), block, output grouping, streaming
        self.targets: int | list[int] | slice | str | None = None
        self.block = True
        self.group_outputs = "type"
        self.stream = False
        #: the AsyncResult of the last %px (what %pxresult shows)
        self.last_result: AsyncResult | None = None
        self._autopx = False
        px = "px" + suffix
        self.magics = {
            "line": {
                px: self.px,
                "autopx" + suffix: self.autopx,
                "pxresult" + suffix: self.pxresult,
                "pxconfig" + suffix: self.pxconfig,
            },
            "cell": {px: self.cell_px},
        }
        super().__init__(shell=shell)

    # -- the view ------------------------------------------------------------------------------

    def _view(self) -> DirectView:
        if self.view is None:
            try:
                self.view = Client().direct_view()
            except Exception as err:
                raise UsageError(
                    f"%px{self.suffix} has no view and could not connect to the default cluster ({err}); "
                    "connect and activate one: rc = Client(...); rc[:].activate()"
                ) from None
        return self.view

    def _resolve(self, targets: int | list[int] | slice | str | None) -> Any:
        if isinstance(targets, slice):
            ids = self._view().client.ids[targets]
            if not ids:
                raise UsageError(f"--targets {format_targets(targets)} selects no engine of {self._view().client.ids}")
            return ids
        return targets

    # -- running code --------------------------------------------------------------------------

    def _execute(self, code: str, opts: PxOptions) -> AsyncResult | None:
        if not code.strip():
            raise UsageError(
                f"%px{self.suffix} needs code to run: %px{self.suffix} CODE, or %%px{self.suffix} with a cell"
            )
        view = self._view()
        targets = self._resolve(opts.targets if opts.targets is not None else self.targets)
        block = self.block if opts.block is None else opts.block
        group = opts.group_outputs or self.group_outputs
        stream = self.stream if opts.stream is None else opts.stream
        try:
            ar = view.execute(code, silent=False, targets=targets, block=False)
        except (IndexError, ValueError, TypeError) as err:  # bad targets, no engines
            raise UsageError(f"%px{self.suffix}: {err}") from None
        self.last_result = ar
        if opts.out:
            self._user_ns()[opts.out] = ar
        if opts.local and self.shell is not None:
            self.shell.run_cell(code, store_history=False)  # type: ignore[no-untyped-call]
        if not block:
            return ar
        self._wait_and_show(ar, group, stream)
        return None

    def _user_ns(self) -> dict[str, Any]:
        if self.shell is None:
            raise UsageError("-o/--out needs an IPython shell to store the result in")
        ns: dict[str, Any] = self.shell.user_ns
        return ns

    def _wait_and_show(self, ar: AsyncResult, group: str, stream: bool) -> None:
        mds = _metadata_list(ar)
        printed: list[dict[str, int]] = [{"stdout": 0, "stderr": 0, "outputs": 0} for _ in mds]
        try:
            if stream:
                self._stream(ar, mds, printed)
            else:
                ar.wait()
        except KeyboardInterrupt:
            what = self._interrupt(ar)
            self._show(ar, mds, printed, group, raise_errors=False)
            stop = KeyboardInterrupt(what)
            # the local traceback (this module's frames) tells the user nothing: one line instead
            stop._render_traceback_ = lambda: [f"KeyboardInterrupt: {what}"]  # type: ignore[attr-defined]
            raise stop from None
        self._show(ar, mds, printed, group)

    def _show_new(self, mds: list[Metadata], printed: list[dict[str, int]]) -> None:
        # print what each request wrote since last time; the metadata only grows while it runs
        entries = []
        for md, done in zip(mds, printed, strict=True):
            part: dict[str, Any] = {}
            for name in ("stdout", "stderr"):
                text = str(md.get(name) or "")
                part[name] = text[done[name] :]
                done[name] = max(done[name], len(text))
            outputs = list(md.get("outputs") or [])
            part["outputs"] = outputs[done["outputs"] :]
            done["outputs"] = max(done["outputs"], len(outputs))
            entries.append((_engine_of(md), part))
        show_outputs(entries, "engine")

    def _stream(self, ar: AsyncResult, mds: list[Metadata], printed: list[dict[str, int]]) -> None:
        wake: queue.SimpleQueue[bool] = queue.SimpleQueue()

        def on_output(msg_id: str, kind: str, content: dict[str, Any]) -> None:
            if kind in ("stream", "display_data"):
                wake.put(True)

        ar.add_output_callback(on_output)
        ar.add_done_callback(lambda _: wake.put(True))
        try:
            self._show_new(mds, printed)  # what arrived before the callback was in place
            while not ar.done():
                try:
                    wake.get(timeout=_STREAM_TICK)
                except queue.Empty:
                    continue
                if not ar.done():
                    self._show_new(mds, printed)
        finally:
            ar.remove_output_callback(on_output)

    def _interrupt(self, ar: AsyncResult) -> str:
        # Ctrl-C during a blocking %px: interrupt the engines still running it (control channel,
        # SIGINT), give them a moment to answer, and say what happened
        ids = sorted(
            {eid for md in _metadata_list(ar) if md.get("status") is None and (eid := _engine_of(md)) is not None}
        )
        if not ids:
            return "%px was interrupted after the engines had finished"
        where = compact_ids(ids)
        print(f"KeyboardInterrupt: interrupting engine(s) {where} (SIGINT)", file=sys.stderr)
        client = self._view().client
        try:
            client.send_signal(signal.SIGINT, targets=ids, block=True)
        except Exception as err:
            print(f"could not interrupt the engines: {type(err).__name__}: {err}", file=sys.stderr)
            return f"%px was interrupted; engine(s) {where} could not be told and may still be running it"
        ar.wait(INTERRUPT_WAIT)
        if not ar.done():
            print(
                f"the engines did not stop within {INTERRUPT_WAIT:.0f} s; %pxresult{self.suffix} shows the outcome later",
                file=sys.stderr,
            )
            return f"%px was interrupted; engine(s) {where} were sent SIGINT but had not stopped after {INTERRUPT_WAIT:.0f} s"
        return f"%px was interrupted; engine(s) {where} were sent SIGINT and stopped"

    def _show(
        self, ar: AsyncResult, mds: list[Metadata], printed: list[dict[str, int]], group: str, raise_errors: bool = True
    ) -> None:
        entries = []
        for md, done in zip(mds, printed, strict=True):
            part = dict(md)
            for name in ("stdout", "stderr"):
                part[name] = str(md.get(name) or "")[done[name] :]
            part["outputs"] = list(md.get("outputs") or [])[done["outputs"] :]
            entries.append((_engine_of(md), part))
        show_outputs(entries, group)
        if not ar.done():
            return
        if raise_errors:
            self._raise_failure(ar)
        else:  # interrupted: the KeyboardInterrupt is what the shell records; show what the engines said
            err = ar.exception(timeout=0)
            if err is not None:
                print("\n".join(render_errors(err)), file=sys.stderr)

    def _raise_failure(self, ar: AsyncResult) -> None:
        err = ar.exception(timeout=0)
        if err is None:
            return
        lines = render_errors(err)
        # IPython shows what _render_traceback_ returns instead of the local traceback;
        # set on this instance only (the error's type is the one users catch)
        err._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
        raise err

    # -- the magics ------------------------------------------------------------------------------

    def px(self, line: str = "") -> AsyncResult | None:
        """Run one line of code on the engines: ``%px [options] CODE``.

        Options (before the code): ``--targets T``, ``--block``/``--noblock``,
        ``--group-outputs=type|engine|order``, ``--stream``, ``--local``, ``-o NAME``. A
        non-blocking run returns its AsyncResult (see ``%pxresult``).
        """
        words, code = split_line(line)
        return self._execute(code, parse_px(words, "px" + self.suffix))

    def cell_px(self, line: str = "", cell: str | None = None) -> AsyncResult | None:
        """Run the cell on the engines: ``%%px [options]``, options as for ``%px``."""
        words, rest = split_line(line)
        if rest:
            raise UsageError(f"%%px{self.suffix}: {rest!r} is not an option; the code goes in the cell below")
        return self._execute(cell or "", parse_px(words, "px" + self.suffix))

    def pxresult(self, line: str = "") -> None:
        """Show the outputs of the last ``%px`` (waiting for it): ``%pxresult [--group-outputs=G] [-o NAME]``."""
        words, rest = split_line(line)
        if rest:
            raise UsageError(f"%pxresult{self.suffix}: unexpected {rest!r}")
        opts = parse_result(words, "pxresult" + self.suffix)
        ar = self.last_result
        if ar is None:
            raise UsageError(f"%pxresult{self.suffix}: no %px{self.suffix} has run yet")
        if opts.out:
            self._user_ns()[opts.out] = ar
        self._wait_and_show(ar, opts.group_outputs or self.group_outputs, False)

    def pxconfig(self, line: str = "") -> None:
        """Change the defaults of ``%px``: ``--targets``, ``--block``/``--noblock``, ``--group-outputs``, ``--stream``."""
        ns = config_parser("pxconfig" + self.suffix).parse_args(line.split())
        if ns.targets is not None:
            self.targets = parse_targets(ns.targets)
        if ns.block is not None:
            self.block = ns.block
        if ns.group_outputs is not None:
            self.group_outputs = ns.group_outputs
        if ns.stream is not None:
            self.stream = ns.stream

    def autopx(self, line: str = "") -> None:
        """Toggle sending every following cell to the engines, as ``%%px``, until ``%autopx`` again."""
        if line.strip():
            raise UsageError(f"%autopx{self.suffix} takes no arguments; it toggles")
        if self.shell is None:
            raise UsageError("%autopx needs an IPython shell")
        cleanup = self.shell.input_transformers_cleanup
        if self._autopx:
            while self._autopx_transform in cleanup:
                cleanup.remove(self._autopx_transform)
            self._autopx = False
            print(f"%autopx{self.suffix} disabled")
        else:
            self._view()
            cleanup.append(self._autopx_transform)
            self._autopx = True
            print(
                f"%autopx{self.suffix} enabled: every cell now runs on the engines (%autopx{self.suffix} again to stop)"
            )

    def _autopx_transform(self, lines: list[str]) -> list[str]:
        # an input transformer: make each cell a %%px cell, except the %autopx that ends it
        text = "".join(lines)
        stripped = text.strip()
        if not stripped:
            return lines
        first = stripped.split(None, 1)[0]
        if first.lstrip("%") == "autopx" + self.suffix:
            return lines
        return [f"%%px{self.suffix}\n", *lines]

    # -- information ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<ParallelMagics %px{self.suffix} on {self.view!r}>"
