"""FeedParser: parsing in a thread or in worker processes gives the same result, errors keep
their details across the process boundary, and a worker that dies costs one parse only."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.parse import FeedParseError
from newsmon.fetcher.parse_workers import FeedParser

from tests.support.feed_builder import Item, rss

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
FETCHED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
FEED = FeedConfig(name="example", url="https://news.example.com/feed.xml")
BODY = rss(
    [
        Item(
            f"https://news.example.com/{i}?utm_source=x",
            f"Story {i}",
            FETCHED - timedelta(hours=i),
            summary="<p>Some <b>HTML</b> text.</p>",
        )
        for i in range(5)
    ]
)


@pytest.fixture
def processes() -> Iterator[FeedParser]:
    with FeedParser(workers=1) as parser:
        yield parser


async def test_processes_and_thread_parse_alike(processes: FeedParser) -> None:
    with FeedParser() as thread:
        here = await thread.parse(BODY, feed=FEED, fetched_at=FETCHED)
    there = await processes.parse(BODY, feed=FEED, fetched_at=FETCHED)
    assert there == here
    assert [a.url for a in there.articles] == [f"https://news.example.com/{i}" for i in range(5)]


async def test_a_parse_error_crosses_the_process_boundary_whole(processes: FeedParser) -> None:
    body = (FIXTURES / "html-page.html").read_bytes()
    with pytest.raises(FeedParseError) as thread_error:
        await FeedParser().parse(body, feed=FEED, fetched_at=FETCHED, base_url="https://x.org/")
    with pytest.raises(FeedParseError) as process_error:
        await processes.parse(body, feed=FEED, fetched_at=FETCHED, base_url="https://x.org/")
    assert str(process_error.value) == str(thread_error.value)
    assert process_error.value.alternates == thread_error.value.alternates
    assert process_error.value.alternates  # the fixture advertises feeds


async def test_a_dead_worker_fails_one_parse_then_a_fresh_pool_takes_over(
    processes: FeedParser,
) -> None:
    await processes.parse(BODY, feed=FEED, fetched_at=FETCHED)  # starts the worker
    pool = processes._pool
    assert pool is not None
    workers = list(pool._processes.values())
    for worker in workers:  # the OOM killer, say
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
    for worker in workers:
        worker.join(10)
    with pytest.raises(FeedParseError, match="parser process died"):
        await processes.parse(BODY, feed=FEED, fetched_at=FETCHED)
    assert processes.restarts == 1
    again = await processes.parse(BODY, feed=FEED, fetched_at=FETCHED)
    assert len(again.articles) == 5


def test_negative_workers_are_refused() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        FeedParser(workers=-1)
