"""The one retry/backoff policy of newsmon: capped exponential delays.

Why not `stamina` (PyPI, a well-kept tenacity wrapper): its async retries sleep with
`asyncio.sleep` and expose no way to swap that sleep, so a SIGTERM (our `stop` event, see
`shared.lifecycle.sleep_or_stop`) cannot cut a pause short without cancelling the task; and it
retries one call that raises, while our loops pause *between* batches (seek back, pause, go on)
and reset after the next success. Two small pieces cover every loop instead:

* `exponential_delay`: the pure rule, used by the Slack sender (with full jitter) and the
  fetcher's feed schedule;
* `Backoff`: the stateful pause for the consume loops (pipeline stages, notifier) and the
  fetcher's start-up, cut short by `stop`.
"""

from __future__ import annotations

import asyncio

from newsmon.shared.lifecycle import sleep_or_stop

__all__ = ["Backoff", "exponential_delay"]


def exponential_delay(first_s: float, failures: int, cap_s: float) -> float:
    """`first_s` after the first failure, doubling per further failure, at most `cap_s`.
    0 when nothing failed."""
    if failures <= 0:
        return 0.0
    exponent = min(failures - 1, 32)  # 2**32 · anything is past any cap
    return min(first_s * 2.0**exponent, cap_s)


class Backoff:
    """The pause of a loop that retries: `first_s`, doubled by each `pause` up to the cap, back
    to `first_s` on `reset` (after a success). A pause ends early when `stop` is set, so a
    SIGTERM during an outage drains at once instead of outliving the shutdown budget."""

    __slots__ = ("_delay_s", "cap_s", "first_s")

    def __init__(self, first_s: float = 1.0, cap_s: float = 30.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._delay_s = first_s

    @property
    def delay_s(self) -> float:
        """The next pause (for the log line that announces it)."""
        return self._delay_s

    def reset(self) -> None:
        self._delay_s = self.first_s

    async def pause(self, stop: asyncio.Event, *, cap_s: float | None = None) -> None:
        """Sleep the current delay (or until `stop`), then double it up to `cap_s` (default:
        the Backoff's own cap; a caller may cap one kind of failure lower)."""
        await sleep_or_stop(stop, self._delay_s)
        self._delay_s = min(self._delay_s * 2, self.cap_s if cap_s is None else cap_s)
