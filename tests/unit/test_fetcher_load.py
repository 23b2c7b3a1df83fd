"""Bounded work and overload control (services/fetcher/load.py): slots served oldest due
first, saturation with hysteresis."""

from __future__ import annotations

import asyncio

import pytest
from newsmon.fetcher.load import DueSlots, Saturation
from newsmon.fetcher.parse_workers import parse_workers


async def test_slots_bound_the_holders_and_serve_the_oldest_due_first() -> None:
    slots = DueSlots(2)
    served: list[float] = []
    await slots.acquire(100.0)
    await slots.acquire(101.0)

    async def poll(due: float) -> None:
        await slots.acquire(due)
        served.append(due)

    # Queued in this order, due at these times: served by due time, not arrival.
    waiting = [asyncio.create_task(poll(due)) for due in (50.0, 10.0, 30.0, 20.0)]
    await asyncio.sleep(0)
    assert slots.held == 2
    assert slots.waiting == 4
    assert not served
    waiting[2].cancel()  # a cancelled waiter is skipped, its turn is not lost
    await asyncio.sleep(0)
    for _ in range(3):
        slots.release()
        await asyncio.sleep(0)
    assert served == [10.0, 20.0, 50.0]
    assert slots.held == 2
    assert slots.waiting == 0
    for _ in range(2):
        slots.release()
    assert slots.held == 0


async def test_a_waiter_cancelled_as_it_is_served_passes_the_slot_on() -> None:
    slots = DueSlots(1)
    await slots.acquire(0.0)
    first = asyncio.create_task(slots.acquire(1.0))
    second = asyncio.create_task(slots.acquire(2.0))
    await asyncio.sleep(0)
    slots.release()  # hands the slot to `first` ...
    first.cancel()  # ... which is cancelled before it runs: `second` gets it
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert second.done()
    assert slots.held == 1
    assert slots.waiting == 0


def test_saturation_enters_once_and_leaves_once() -> None:
    sat = Saturation()
    changes = [sat.observe(lateness_s=60.0, interval_s=60.0) for _ in range(40)]
    assert changes.count(True) == 1
    assert sat.saturated
    changes = [sat.observe(lateness_s=0.5, interval_s=60.0) for _ in range(100)]
    assert changes.count(False) == 1
    assert not sat.saturated


def test_saturation_ignores_the_odd_late_poll() -> None:
    sat = Saturation()
    for i in range(500):
        assert sat.observe(lateness_s=30.0 if i % 4 == 0 else 0.0, interval_s=60.0) is None
    assert not sat.saturated


@pytest.mark.parametrize(("setting", "expected"), [(0, 0), (3, 3)])
def test_parse_workers_as_configured(setting: int, expected: int) -> None:
    assert parse_workers(setting) == expected


def test_parse_workers_auto_uses_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    assert parse_workers("auto") == 0  # one core: the thread
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    assert parse_workers("auto") == 2
