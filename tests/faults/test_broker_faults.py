"""Faults of the broker, on a broker of this module's own (the session's broker is shared by
every other test and must not be stopped): services started before it, stop/start and
kill -9/restart mid-stream, frozen for 40 s (SIGSTOP, then SIGCONT).

The tests run in file order on one pipeline; each starts whatever an earlier one left down,
so any one of them also runs alone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from newsmon.shared.broker import LocalKafka, free_port

from tests.faults.conftest import pipeline
from tests.faults.harness import SERVICES, Fault, Pipeline, Row, assert_clean, run_phase

# A phase waits up to 240 s for its alerts, after a fault that may itself take a minute.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

KAFKA_LIB = Path(__file__).resolve().parents[2] / ".cache" / "kafka" / "lib"
BEFORE_S = 3.0  # services run this long before the broker starts
DOWN_S = 4.0  # the broker stays down this long
FROZEN_S = 40.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this module's own, not started yet."""
    home = tmp_path_factory.mktemp("fault-broker")
    (home / "lib").symlink_to(KAFKA_LIB)
    kafka = LocalKafka(home, port=free_port(), name="faults")
    try:
        yield kafka
    finally:
        kafka.stop()
        shutil.rmtree(kafka.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
async def pipe(
    broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pipeline]:
    async with pipeline(broker.bootstrap, tmp_path_factory.mktemp("broker-faults"), "bf") as p:
        yield p


async def _start_broker(broker: LocalKafka) -> float:
    """Start it and wait until it answers; returns that moment."""
    broker.start()
    await broker.wait_ready(timeout_s=120)
    return time.monotonic()


async def _ensure_up(broker: LocalKafka, pipe: Pipeline) -> None:
    if broker.running_pid() is None:
        await _start_broker(broker)
    pipe.start_services(name for name in SERVICES if not pipe.procs.running(name))


def _log_counts(pipe: Pipeline) -> dict[str, int]:
    return {name: pipe.procs.log_lines(name) for name in SERVICES}


async def _phase_with_log_counts(pipe: Pipeline, name: str, fault: Fault) -> Row:
    """The phase, with the log lines each service wrote during it in the note (a broker
    outage must not flood the logs)."""
    before = _log_counts(pipe)
    row = await run_phase(pipe, name, fault)
    after = _log_counts(pipe)
    row.note = "log lines: " + ", ".join(f"{s} {after[s] - before[s]}" for s in SERVICES)
    return row


async def test_services_started_before_the_broker(broker: LocalKafka, pipe: Pipeline) -> None:
    """Also before any topic exists: the broker is new."""
    if broker.running_pid() is not None:
        pytest.skip("the module's broker is already up (run this test first or alone)")

    async def broker_comes_up_later() -> float:
        pipe.start_services()
        await asyncio.sleep(BEFORE_S)
        return await _start_broker(broker)

    row = await run_phase(
        pipe,
        f"services started {BEFORE_S:.0f} s before the broker (no topics yet)",
        broker_comes_up_later,
        fault_after=0,
    )
    assert_clean(row, pipe)


async def test_broker_stop_and_start(broker: LocalKafka, pipe: Pipeline) -> None:
    await _ensure_up(broker, pipe)

    async def stop_start() -> float:
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(DOWN_S)
        return await _start_broker(broker)

    row = await _phase_with_log_counts(
        pipe, f"broker stopped (SIGTERM) for {DOWN_S:.0f} s, started", stop_start
    )
    assert_clean(row, pipe)


async def test_broker_kill_9_and_restart(broker: LocalKafka, pipe: Pipeline) -> None:
    await _ensure_up(broker, pipe)

    async def kill_restart() -> float:
        pid = broker.running_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(broker.stop)  # reaps it, forgets the pid file
        await asyncio.sleep(DOWN_S)
        return await _start_broker(broker)

    row = await _phase_with_log_counts(
        pipe, f"broker kill -9, restarted after {DOWN_S:.0f} s", kill_restart
    )
    assert_clean(row, pipe)


@pytest.mark.slow
async def test_broker_frozen(broker: LocalKafka, pipe: Pipeline) -> None:
    await _ensure_up(broker, pipe)

    async def freeze() -> float:
        pid = broker.running_pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(FROZEN_S)
        finally:
            os.kill(pid, signal.SIGCONT)
        return time.monotonic()

    row = await _phase_with_log_counts(
        pipe, f"broker frozen {FROZEN_S:.0f} s (SIGSTOP, SIGCONT)", freeze
    )
    assert_clean(row, pipe)
