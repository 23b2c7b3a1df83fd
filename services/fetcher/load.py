"""Bounded work and overload control for the fetcher: pure bookkeeping, no I/O, no clock.

* `DueSlots` caps the polls in progress (fetch, parse and publish: a poll keeps its slot until
  the broker acknowledged its articles), so bodies parsed but not yet published can never pile
  up: when Kafka or the parsers are the bottleneck, the next fetches wait. Waiting polls get a
  slot in order of their due time (oldest due first), so when the fetcher falls behind every
  feed is delayed by about the same amount: the intervals stretch evenly, no feed starves.
* `Saturation` tells from how late polls start whether the fetcher has fallen behind its
  schedule, with hysteresis so the state (one log line, a gauge) does not flap.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Final

__all__ = ["DueSlots", "Saturation"]


class DueSlots:
    """At most `size` holders at once; waiters are served by due time, earliest first (FIFO
    among equal due times). `acquire` then `release`, in a try/finally."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be 1 or more, got {size}")
        self.size = size
        self.held = 0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.waiting = 0  # waiters not yet served nor cancelled

    async def acquire(self, due: float) -> None:
        if self.held < self.size and not self.waiting:
            self.held += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (due, next(self._order), future))
        self.waiting += 1
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():
                self.waiting -= 1
            else:
                self.release()  # handed a slot just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        """Hand the slot to the waiter due first, or free it."""
        while self._waiters:
            *_, future = heapq.heappop(self._waiters)
            if not future.done():  # cancelled waiters stay in the heap until reached
                self.waiting -= 1
                future.set_result(None)
                return
        self.held -= 1


# A poll counts as behind schedule when it starts this late: 10 % of its interval, at least
# LATE_MIN_S (timers and jitter make a second or so of lateness normal).
LATE_FRACTION: Final = 0.1
LATE_MIN_S: Final = 2.0


@dataclass
class Saturation:
    """Whether polls keep starting behind schedule: an exponential moving average of the share
    of late polls (weight `alpha` per poll); saturated above `enter`, again fine below `leave`."""

    alpha: float = 0.05
    enter: float = 0.5
    leave: float = 0.1
    late_share: float = 0.0
    saturated: bool = field(default=False)

    @staticmethod
    def is_late(lateness_s: float, interval_s: float) -> bool:
        return lateness_s > max(LATE_MIN_S, LATE_FRACTION * interval_s)

    def observe(self, lateness_s: float, interval_s: float) -> bool | None:
        """Record one poll start; returns the new state when it changed, else None."""
        late = 1.0 if self.is_late(lateness_s, interval_s) else 0.0
        self.late_share += self.alpha * (late - self.late_share)
        if not self.saturated and self.late_share > self.enter:
            self.saturated = True
            return True
        if self.saturated and self.late_share < self.leave:
            self.saturated = False
            return False
        return None
