"""The queue of requests waiting to run, and which of them are aborted.

The engine's IO thread puts every request it receives here, in arrival order; the execution
thread takes them one at a time. ``abort_request`` marks queued requests (and remembers ids that
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
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Pending] = deque()
        self._abort_ids: OrderedDict[str, None] = OrderedDict()
        self._wakeups = 0

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, channel: str, msg: Message) -> None:
        """Queue ``msg``; it is marked aborted at once if its id was aborted before it arrived."""
        with self._cond:
            aborted = msg.msg_id in self._abort_ids
            if aborted:
                del self._abort_ids[msg.msg_id]
            self._queue.append(Pending(channel, msg, aborted))
            self._cond.notify()

    def get(self, timeout: float | None) -> Pending | None:
        """Return the oldest request, waiting up to ``timeout`` seconds; None on timeout or wake-up."""
        with self._cond:
            if not self._queue:
                if self._wakeups:
                    self._wakeups = 0
                    return None
                self._cond.wait(timeout)
                self._wakeups = 0
            if self._queue:
                return self._queue.popleft()
            return None

    def put_back(self, pending: Pending) -> None:
        """Return a request taken with :meth:`get` to the front of the queue (it did not run)."""
        with self._cond:
            self._queue.appendleft(pending)

    def wake(self) -> None:
        """Make a waiting :meth:`get` return (with None if nothing is queued)."""
        with self._cond:
            self._wakeups += 1
            self._cond.notify_all()

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
        with self._cond:
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

    def drain(self) -> list[Pending]:
        """Remove and return every queued request (when the engine stops)."""
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            return items
