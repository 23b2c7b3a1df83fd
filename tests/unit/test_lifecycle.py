"""shared/lifecycle.py: the stop-aware pause and the bounded close keep a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from newsmon.shared.lifecycle import close_within, sleep_or_stop


async def test_sleep_or_stop_waits_out_its_time_without_a_stop() -> None:
    stop = asyncio.Event()
    await sleep_or_stop(stop, 0.01)
    assert not stop.is_set()


async def test_sleep_or_stop_returns_when_stop_is_set() -> None:
    stop = asyncio.Event()
    pause = asyncio.create_task(sleep_or_stop(stop, 3600))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(pause, timeout=10)  # done long before the hour


async def test_sleep_or_stop_returns_at_once_when_already_stopped() -> None:
    stop = asyncio.Event()
    stop.set()
    await sleep_or_stop(stop, 3600)


def _stop_waiter(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    return sleep_or_stop(stop, 3600)


def _closer(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    return close_within(stop.wait(), 3600, "client")


@pytest.mark.parametrize("pause", [_stop_waiter, _closer], ids=["sleep_or_stop", "close_within"])
async def test_a_cancel_in_the_same_turn_as_the_wake_up_is_kept(
    pause: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    """Python 3.11's asyncio.wait_for lost this cancellation (returned normally): the task
    that was cancelled then carried on as if nothing had happened."""
    stop = asyncio.Event()
    task = asyncio.create_task(pause(stop))
    await asyncio.sleep(0)  # the task now waits on the event
    stop.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_close_within_gives_up_after_its_time(caplog: pytest.LogCaptureFixture) -> None:
    await close_within(asyncio.Event().wait(), 0.01, "hung client")
    assert "hung client did not close within" in caplog.text
