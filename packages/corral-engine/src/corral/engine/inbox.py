"""The queue of requests waiting to run, and which of them are aborted.

Requests are put here in arrival order as they are taken from the sockets (by the execution
thread, or by the IO thread while user code runs), and the execution thread takes them one at a
time. ``abort_request`` marks queued requests (and remembers ids that
have not arrived yet), so that each is answered with ``status: "aborted"`` when its turn comes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from corral.wire import Message

__all__ = ["Inbox", "Pending"]

#: How many aborted msg_ids that have not arrived yet are remembered.
_REMEMBER_ABORTED: Final = 100_000


@dataclass(slots=True, eq=False)
class Pending:
    """A received request waiting to run.

    Attributes
    ----------
    channel
        Where it came from and where the reply goes: ``"mux"``, ``"task"`` or ``"broadcast"``.
    msg
        The verified request.
    aborted
        Set by an ``abort_request`` before it ran.
    """

    channel: str
    msg: Message
    aborted: bool = False


class Inbox:
    """A thread-safe FIFO of :class:`Pending` requests, with abort marks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Pending] = deque()
        self._abort_ids: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, channel: str, msg: Message) -> None:
        """Queue ``msg``; it is marked aborted at once if its id was aborted before it arrived."""
        with self._lock:
            aborted = msg.msg_id in self._abort_ids
            if aborted:
                del self._abort_ids[msg.msg_id]
            self._queue.append(Pending(channel, msg, aborted))

    def pop(self) -> Pending | None:
        """Remove and return the oldest request, or None if none is queued."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def put_back(self, pending: Pending) -> None:
        """Return a request taken with :meth:`pop` to the front of the queue (it did not run)."""
        with self._lock:
            self._queue.appendleft(pending)

    def abort(self, msg_ids: Iterable[str] | None) -> int:
        """Mark requests aborted: those named in ``msg_ids``, or every queued one if None.

        Ids not queued yet are remembered (a bounded number), so that a request aborted before
        it reached the engine is aborted when it arrives.

        Returns
        -------
        int
            How many queued requests were marked now.
        """
        marked = 0
        with self._lock:
            if msg_ids is None:
                for pending in self._queue:
                    if not pending.aborted:
                        pending.aborted = True
                        marked += 1
                return marked
            wanted = set(msg_ids)
            for pending in self._queue:
                if pending.msg.msg_id in wanted:
                    wanted.discard(pending.msg.msg_id)
                    if not pending.aborted:
                        pending.aborted = True
                        marked += 1
            for msg_id in wanted:
                self._abort_ids[msg_id] = None
                self._abort_ids.move_to_end(msg_id)
            while len(self._abort_ids) > _REMEMBER_ABORTED:
                self._abort_ids.popitem(last=False)
        return marked

    def take_all(self) -> list[Pending]:
        """Remove and return every queued request (when the engine stops)."""
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            return items
