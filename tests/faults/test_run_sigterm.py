"""SIGTERM of `newsmon run` (every service in one process) while items stream through it, then
a new `newsmon run`: it drains, exits 0, and the restart delivers the rest once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from newsmon.shared.broker import LocalKafka

from tests.faults.conftest import pipeline
from tests.faults.harness import Pipeline, assert_clean, run_phase

# A phase waits up to 240 s for its alerts, after a fault that may itself take a minute.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

GENEROUS_STOP_S = 60.0  # the wait for the exit; the time it took is reported, not asserted


@pytest.fixture
async def pipe(kafka_broker: LocalKafka, tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with pipeline(kafka_broker.bootstrap, tmp_path, "run-sigterm") as running:
        yield running


async def test_sigterm_of_newsmon_run_during_load(pipe: Pipeline) -> None:
    pipe.procs.start("run")
    stopped: dict[str, float] = {}

    async def sigterm_and_restart() -> float:
        code, took = await asyncio.to_thread(pipe.procs.stop, "run", GENEROUS_STOP_S)
        stopped.update(code=code, took=took)
        pipe.procs.start("run")
        return time.monotonic()

    row = await run_phase(
        pipe, "SIGTERM of `newsmon run` mid-stream, run again", sigterm_and_restart, matching=8
    )
    row.note = f"exit status {stopped['code']:.0f} after {stopped['took']:.1f} s (budget 10 s)"
    assert stopped["code"] == 0, pipe.logs()
    assert_clean(row, pipe)
