"""The fetcher waits out a broker that is not there at start-up instead of failing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from newsmon.fetcher import app
from newsmon.shared.broker import free_port
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings


async def test_an_absent_broker_at_start_is_waited_for_and_stop_still_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feed]]\nname = "local"\nurl = "file:///nonexistent.xml"\n')
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", feeds_file=feeds)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="newsmon.fetcher")
    task = asyncio.create_task(app.run(settings, Metrics(), stop))
    async with asyncio.timeout(60):
        while True:
            await asyncio.sleep(0.1)
            if any("retrying in" in r.getMessage() for r in caplog.records):
                break
    assert not task.done(), "the fetcher keeps waiting for the broker"
    stop.set()
    await asyncio.wait_for(task, timeout=30)  # returns cleanly, no exception
