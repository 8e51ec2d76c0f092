"""``BroadcastView``: a DirectView that sends one message however many engines it runs on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from corral.client._asyncresult import AsyncResult
from corral.client._directview import DirectView

__all__ = ["BroadcastView"]


class BroadcastView(DirectView):
    """A DirectView whose calls reach all its engines as one message through the controller.

    Made with ``rc.broadcast_view(targets='all')``. Calls that send the same request to every
    engine (``apply``, ``execute``, ``push``, ``pull``) go out once on the ``broadcast``
    channel, which copies them to each engine, so the client's cost does not grow with the
    number of engines. Calls whose requests differ per engine (``map``, ``scatter``,
    ``gather``) are sent as a DirectView sends them. Results are the same as a DirectView's.
    """

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
        if len(payloads) < 2 or any(p is not payloads[0] for p in payloads):
            return super()._send(
                msg_type,
                payloads,
                ids,
                uuids,
                fname=fname,
                single=single,
                track=track,
                result_class=result_class,
                **kwargs,
            )
        ar = self.client._submit_broadcast(
            msg_type,
            payloads[0],
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
