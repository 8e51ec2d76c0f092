"""Replay protection: remember which (sender, counter) pairs were accepted, within bounds.

Every signed message carries, in its signature frame, the sender's session id, a counter that
the sender increments per message, and the sender's clock. A receiver accepts each
(sender, counter) pair once: it keeps, per sender, the highest counter seen and a window of the
:data:`WINDOW` counters below it (the anti-replay window of IPsec, RFC 4303 section 3.4.3), so
memory per sender is constant. Messages older than the window, or stamped further than
``max_age`` seconds from the receiver's clock, are refused; the least recently heard sender is
forgotten when more than ``max_senders`` are tracked.

What this does not stop: a message from a sender the guard no longer remembers (forgotten
after ``max_senders`` others, or from before the receiver restarted) is accepted again if it
is replayed within ``max_age``; with ``max_age=0`` such replays have no time bound at all.
Per-hop re-signing (below) keeps the number of senders a receiver hears from small.

Senders hand their messages to one peer over one FIFO connection, so counters arrive in order
except where one sender's messages meet at a receiver through several sockets; the window
absorbs that reordering. Relays (schedulers) re-sign what they forward, so held and reordered
tasks are counted on the relay's own stream, never against the original sender.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

from corral.wire.errors import MessageRejected

__all__ = ["WINDOW", "ReplayGuard"]

#: How many counters below the highest seen are still accepted (once each).
WINDOW: Final = 4096


class ReplayGuard:
    """Accept each (stream, sender, counter) once.

    Parameters
    ----------
    max_age
        Refuse messages stamped more than this many seconds before or after the receiver's
        clock; ``0`` turns the age check off.
    max_senders
        How many senders to remember at most.
    """

    def __init__(self, max_age: float = 600.0, max_senders: int = 16384) -> None:
        self.max_age = max_age
        self.max_senders = max_senders
        # (stream, sender) -> [highest counter, bitmask of accepted counters below it]
        self._state: OrderedDict[tuple[Hashable, bytes], list[int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._state)

    def check(self, stream: Hashable, sender: bytes, counter: int, stamp: float) -> None:
        """Record the message, or refuse it.

        Raises
        ------
        MessageRejected
            ``replayed`` if this counter was accepted before or fell behind the window,
            ``stale`` if ``stamp`` is outside ``max_age``.
        """
        if self.max_age and not abs(time.time() - stamp) <= self.max_age:  # also refuses NaN
            raise MessageRejected(
                "stale",
                f"sender clock {stamp:.0f} is more than {self.max_age:.0f}s from ours; "
                "check that both hosts keep time (NTP) or raise the replay window",
            )
        key = (stream, sender)
        state = self._state.get(key)
        if state is None:
            if len(self._state) >= self.max_senders:
                self._state.popitem(last=False)
            self._state[key] = [counter, 1]
            return
        self._state.move_to_end(key)
        top, mask = state
        if counter > top:
            shift = counter - top
            state[0] = counter
            state[1] = ((mask << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            return
        behind = top - counter
        if behind >= WINDOW:
            raise MessageRejected("replayed", f"counter {counter} is behind the replay window (top {top})")
        bit = 1 << behind
        if mask & bit:
            raise MessageRejected("replayed", f"counter {counter} from this sender was already accepted")
        state[1] = mask | bit
