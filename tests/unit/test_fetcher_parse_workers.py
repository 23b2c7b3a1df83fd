"""Fetcher.poll_once with NEWSMON_FETCH_PARSE_WORKERS: the poll parses in a worker process and
publishes what a thread-parsing fetcher publishes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
from newsmon.fetcher.app import Fetcher
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.parse_workers import FeedParser
from newsmon.fetcher.publish import Publisher
from newsmon.fetcher.state import FeedState, SeenIds
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEED = FeedConfig(name="f1", url="https://feeds.example.org/rss")
BODY = rss(
    [
        Item(f"https://news.example.org/{i}", f"Story {i}", NOW - timedelta(hours=i))
        for i in range(4)
    ]
)


class ListSink:
    def __init__(self) -> None:
        self.articles: list[Article] = []

    async def publish(self, articles: list[Article]) -> None:
        self.articles.extend(articles)

    async def save_state(self, feed: str, state: FeedState) -> None:
        pass


async def _poll(parser: FeedParser) -> list[Article]:
    sink = ListSink()
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, content=BODY))
    )
    settings = Settings(kafka_bootstrap="unused:9092", fetch_parse_workers=parser.workers)
    async with client:
        fetcher = Fetcher(
            settings,
            Metrics(),
            sink,
            client,
            Publisher.from_settings(settings, Metrics(), sink, SeenIds(100), clock=NOW.timestamp),
            parser=parser,
            clock=NOW.timestamp,
            rng=random.Random(0),
        )
        await fetcher.poll_once(FEED, FeedState(url=FEED.url))
    return sink.articles


async def test_a_poll_parses_in_a_worker_process_like_in_a_thread() -> None:
    with FeedParser(workers=1) as processes, FeedParser() as thread:
        in_process = await _poll(processes)
        assert processes._pool is not None  # the pool did the parsing
        in_thread = await _poll(thread)
    assert in_process == in_thread
    assert [a.title for a in in_process] == [f"Story {i}" for i in range(4)]
