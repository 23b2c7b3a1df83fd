"""Process lifecycle: SIGTERM/SIGINT set a stop event; services drain and return."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal, TypeVar

from .errors import ConfigError

__all__ = [
    "Abandoned",
    "close_within",
    "finish_or_abandon",
    "install_stop_signals",
    "run_main",
    "run_until_stopped",
    "sleep_or_stop",
]

log = logging.getLogger("newsmon")

T = TypeVar("T")

# Shares of NEWSMON_SHUTDOWN_TIMEOUT_S for a consume loop's shutdown: the step in progress
# (a publish, a Slack post) first, then each Kafka client's close. What is left is headroom
# before the runner cancels the service.
IN_FLIGHT_SHARE = 0.5
CLOSE_SHARE = 0.2


def run_main(main: Coroutine[Any, Any, T], event_loop: Literal["asyncio", "uvloop"]) -> T:
    """asyncio.run on the chosen event loop (NEWSMON_EVENT_LOOP). uvloop is imported only when
    asked for (bench/bench_stages.py measures both)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if event_loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile (a pause SIGTERM can cut short).

    asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for returns normally when the
    task is cancelled in the same loop turn as the stop event is set, and the cancellation is
    lost (CPython gh-86296, fixed in 3.12 by rewriting wait_for on top of asyncio.timeout)."""
    if stop.is_set():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


class Abandoned(Exception):  # noqa: N818 - an outcome, not a fault
    """Work given up because a stop was asked for and its grace ran out."""


async def finish_or_abandon(work: Coroutine[Any, Any, T], stop: asyncio.Event, grace_s: float) -> T:
    """Await `work`; once `stop` is set, give it `grace_s` more, then cancel it and raise
    Abandoned. A step that waits on an absent broker or a hung HTTP peer (request timeouts of
    30 s) so never holds a SIGTERM past the shutdown budget; what it did not finish is not
    committed, so it is done again after the restart."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait([task], timeout=grace_s)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise Abandoned
        return task.result()
    finally:
        stopping.cancel()
        if not task.done():  # we were cancelled ourselves
            task.cancel()


async def close_within(closing: Awaitable[Any], seconds: float, what: str) -> None:
    """Close a client within `seconds` (a producer's flush to a gone broker would otherwise
    wait out its request timeout), with one line when it did not."""
    try:
        async with asyncio.timeout(seconds):  # not wait_for: see sleep_or_stop
            await closing
    except TimeoutError:
        log.warning("stopping: %s did not close within %.1fs; abandoned it", what, seconds)
    except Exception as exc:
        log.warning("stopping: %s did not close cleanly: %s", what, exc)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def _on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            return
        log.info("received %s: draining in-flight work, then exiting", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig)


async def run_until_stopped(
    services: Sequence[tuple[str, Callable[[], Coroutine[Any, Any, None]]]],
    stop: asyncio.Event,
    shutdown_timeout_s: float,
) -> int:
    """Run each service as a task until `stop` is set or one of them fails (then the others
    are stopped too). Returns the exit code: 0 for a clean stop, 1 if any service failed."""
    tasks: dict[asyncio.Task[Any], str] = {
        asyncio.create_task(factory(), name=name): name for name, factory in services
    }
    stopper = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    # A service that returns (or is cancelled) while nobody asked to stop is a failure too.
    ended_early = [
        t
        for t in done
        if t is not stopper and not stop.is_set() and (t.cancelled() or t.exception() is None)
    ]
    for task in ended_early:
        log.error("service %s stopped by itself; stopping the others", tasks[task])
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=shutdown_timeout_s)
    for task in pending:
        log.warning(
            "service %s did not stop within %.0fs; cancelling it", tasks[task], shutdown_timeout_s
        )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await stopper
    failed = [t for t in tasks if not t.cancelled() and t.exception() is not None]
    for task in failed:
        exc = task.exception()
        # A configuration problem is explained by its message; anything else needs the trace.
        trace = None if isinstance(exc, ConfigError) else exc
        log.error("service %s failed: %s", tasks[task], exc, exc_info=trace)
    return 1 if failed or ended_early else 0
