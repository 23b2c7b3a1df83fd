"""The one backoff policy (shared/backoff.py)."""

from __future__ import annotations

import asyncio

from newsmon.shared.backoff import Backoff, exponential_delay


def test_exponential_delay_doubles_up_to_the_cap() -> None:
    assert [exponential_delay(0.5, n, 3.0) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert exponential_delay(1.0, 10**6, 30.0) == 30.0  # no overflow on a long streak


def test_backoff_doubles_caps_and_resets() -> None:
    async def scenario() -> list[float]:
        stopped = asyncio.Event()
        stopped.set()  # every pause returns at once: only the delays are looked at
        retry = Backoff(first_s=1.0, cap_s=4.0)
        seen = []
        for _ in range(4):
            seen.append(retry.delay_s)
            await retry.pause(stopped)
        seen.append(retry.delay_s)
        await retry.pause(stopped, cap_s=2.0)  # one kind of failure capped lower
        seen.append(retry.delay_s)
        retry.reset()
        seen.append(retry.delay_s)
        return seen

    assert asyncio.run(scenario()) == [1.0, 2.0, 4.0, 4.0, 4.0, 2.0, 1.0]
