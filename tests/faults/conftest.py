"""Fixtures of the fault suite: one pipeline (four service processes, a feed stream, the
Slack stand-in, an alerts reader) per test module, and the table written at the end."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.faults.harness import (
    ROWS,
    TABLE_PATH,
    AlertWatch,
    Pipeline,
    service_env,
    write_feeds_file,
    write_table,
)
from tests.support.news_stream import feed_stream
from tests.support.newsmon_process import NewsmonProcesses
from tests.support.slack_stub import SlackStub


@pytest.fixture(scope="session", autouse=True)
def faults_table() -> Iterator[None]:
    """Writes .cache/faults-table.md once the session's fault tests ran."""
    started = time.monotonic()
    yield
    if ROWS:
        write_table(TABLE_PATH, ROWS, time.monotonic() - started)
        print(f"\nfault table: {TABLE_PATH}")


@asynccontextmanager
async def pipeline(bootstrap: str, work: Path, instance: str) -> AsyncIterator[Pipeline]:
    """A pipeline on `bootstrap` with topics of its own; services not started yet."""
    prefix = f"f{uuid.uuid4().hex[:10]}"
    with feed_stream() as stream:
        async with SlackStub() as slack:
            feeds = write_feeds_file(work / "feeds.toml", stream.url)
            env = service_env(bootstrap, prefix, feeds, slack.webhook_url(), instance)
            procs = NewsmonProcesses(env, work)
            watch = AlertWatch(bootstrap, f"{prefix}.alerts.v1")
            watch.start()
            try:
                yield Pipeline(stream, slack, procs, watch, bootstrap, prefix)
            finally:
                await asyncio.to_thread(procs.stop_all)
                await watch.close()
