"""Fetcher.poll_once end to end over httpx.MockTransport, with a fake clock and a list sink:
back-off and recovery, Retry-After, 304 / unchanged bodies, dedup across feeds."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from newsmon.fetcher.app import Fetcher, Naps
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.http import FeedClient
from newsmon.fetcher.state import FeedState
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss
from tests.support.fetcher import ListSink, fetcher_for

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


Handler = Callable[[httpx.Request], httpx.Response]


def _fetcher(handler: Handler, clock: FakeClock, sink: ListSink, metrics: Metrics) -> Fetcher:
    client = FeedClient(transport=httpx.MockTransport(handler))
    settings = Settings(
        kafka_bootstrap="unused:9092", poll_interval_s=300, poll_interval_max_s=3600
    )
    return fetcher_for(settings, metrics, sink, client, clock=clock)


def _body(now: float, n: int = 3, prefix: str = "a") -> bytes:
    when = datetime.fromtimestamp(now, UTC)
    return rss(
        [
            Item(
                f"https://news.example.org/{prefix}{i}?utm_source=x",
                f"Story {i}",
                when - timedelta(hours=i),
            )
            for i in range(n)
        ]
    )


FEED = FeedConfig(name="f1", url="https://feeds.example.org/rss")


async def test_a_feed_failing_for_an_hour_backs_off_then_recovers_on_its_own() -> None:
    clock, sink, metrics = FakeClock(), ListSink(), Metrics()
    fixed_at = T0 + 3600

    def handler(request: httpx.Request) -> httpx.Response:
        if clock.now < fixed_at:
            return httpx.Response(500)
        return httpx.Response(200, content=_body(clock.now))

    fetcher = _fetcher(handler, clock, sink, metrics)
    state = FeedState(url=FEED.url)
    delays: list[float] = []
    while clock.now < fixed_at:
        delays.append(await fetcher.poll_once(FEED, state))
        clock.now += delays[-1]
    assert len(delays) >= 3
    assert all(b > a for a, b in itertools.pairwise(delays)), delays
    assert state.error_streak == len(delays)
    assert metrics.registry.get_sample_value(
        "newsmon_feed_fetches_total", {"feed": "f1", "outcome": "http_5xx"}
    ) == len(delays)
    # The server was fixed while we waited: the next poll succeeds and resets the streak.
    after = await fetcher.poll_once(FEED, state)
    assert state.error_streak == 0
    assert len(sink.articles) == 3
    assert 0.9 * 300 <= after <= 1.1 * 3600
    assert sink.states["f1"].error_streak == 0
    assert sink.states["f1"].next_poll_at == pytest.approx(clock.now + after)
    assert metrics.registry.get_sample_value("newsmon_feed_error_streak", {"feed": "f1"}) == 0
    # Durations: all feeds in one histogram by outcome, the last one per feed.
    sample = metrics.registry.get_sample_value
    assert sample("newsmon_feed_fetch_duration_seconds_count", {"outcome": "http_5xx"}) == len(
        delays
    )
    assert sample("newsmon_feed_fetch_duration_seconds_count", {"outcome": "ok"}) == 1
    last = sample("newsmon_feed_last_fetch_duration_seconds", {"feed": "f1"})
    assert last is not None
    assert 0 <= last < 5


async def test_a_broker_down_for_an_hour_does_not_back_the_feeds_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiokafka.errors import KafkaConnectionError

    clock, metrics = FakeClock(), Metrics()
    back_at = T0 + 3600

    class DownSink(ListSink):
        async def publish(self, articles: list[Article]) -> None:
            if clock.now < back_at:
                raise KafkaConnectionError("broker down")
            await super().publish(articles)

    sink = DownSink()
    fetcher = _fetcher(lambda _: httpx.Response(200, content=_body(T0)), clock, sink, metrics)
    state = FeedState(url=FEED.url)
    delays: list[float] = []
    with caplog.at_level("INFO", logger="newsmon.fetcher"):
        while clock.now < back_at:
            delays.append(await fetcher.poll_once(FEED, state))
            clock.now += delays[-1]
        await fetcher.poll_once(FEED, state)  # the first poll after the broker is back
    assert len(delays) >= 10
    assert max(delays) <= 300 * 1.1, "the poll interval, never an error back-off"
    assert state.error_streak == 0
    assert [a.title for a in sink.articles] == ["Story 0", "Story 1", "Story 2"]
    assert metrics.registry.get_sample_value(
        "newsmon_feed_fetches_total", {"feed": "f1", "outcome": "kafka"}
    ) == len(delays)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert sum("could not publish to Kafka" in line for line in lines) == 1, lines
    assert sum("publishing to Kafka again" in line for line in lines) == 1, lines


async def test_naps_end_on_time_or_when_stop_is_set() -> None:
    naps, stop = Naps(), asyncio.Event()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await naps.sleep(stop, 0.05)
    assert loop.time() - start >= 0.05
    sleepers = [asyncio.create_task(naps.sleep(stop, 3600)) for _ in range(3)]
    await asyncio.sleep(0.01)
    stop.set()
    async with asyncio.timeout(2):
        await asyncio.gather(*sleepers)
    await naps.sleep(stop, 3600)  # already stopped: returns at once
    assert not naps._sleeping
    assert not naps._watchers


async def test_retry_after_is_honoured() -> None:
    clock, sink, metrics = FakeClock(), ListSink(), Metrics()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "5400"})

    fetcher = _fetcher(handler, clock, sink, metrics)
    delay = await fetcher.poll_once(FEED, FeedState(url=FEED.url))
    assert delay == 5400


async def test_304_and_unchanged_bodies_publish_nothing() -> None:
    clock, sink, metrics = FakeClock(), ListSink(), Metrics()
    body = _body(T0)
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 2:
            assert request.headers["If-None-Match"] == '"e1"'
            return httpx.Response(304)
        return httpx.Response(200, content=body, headers={"ETag": '"e1"'})

    fetcher = _fetcher(handler, clock, sink, metrics)
    state = FeedState(url=FEED.url)
    for _ in range(3):
        await fetcher.poll_once(FEED, state)
    assert len(sink.articles) == 3
    outcomes = {
        o: metrics.registry.get_sample_value(
            "newsmon_feed_fetches_total", {"feed": "f1", "outcome": o}
        )
        for o in ("ok", "not_modified", "unchanged")
    }
    assert outcomes == {"ok": 1, "not_modified": 1, "unchanged": 1}
    assert (
        metrics.registry.get_sample_value("newsmon_feed_http_responses_total", {"code": "304"}) == 1
    )
    assert metrics.registry.get_sample_value("newsmon_feed_received_bytes_total") == 2 * len(body)


async def test_the_same_story_from_two_feeds_is_published_once() -> None:
    clock, sink, metrics = FakeClock(), ListSink(), Metrics()
    when = datetime.fromtimestamp(T0, UTC)
    bodies = {
        "/one": rss(
            [Item("https://news.example.org/story?utm_medium=rss", "Story", when, guid="one-1")]
        ),
        "/two": rss(
            [Item("https://news.example.org/story#top", "Story (copy)", when, guid="two-9")]
        ),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bodies[request.url.path])

    fetcher = _fetcher(handler, clock, sink, metrics)
    one = FeedConfig(name="one", url="https://a.example.org/one")
    two = FeedConfig(name="two", url="https://b.example.org/two")
    await fetcher.poll_once(one, FeedState(url=one.url))
    await fetcher.poll_once(two, FeedState(url=two.url))
    assert [a.feed for a in sink.articles] == ["one"]
    assert (
        metrics.registry.get_sample_value(
            "newsmon_feed_items_total", {"feed": "two", "status": "duplicate_other_feed"}
        )
        == 1
    )


async def test_adaptive_interval_is_stored_in_the_state() -> None:
    clock, sink, metrics = FakeClock(), ListSink(), Metrics()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_body(clock.now, n=24))  # hourly items

    fetcher = _fetcher(handler, clock, sink, metrics)
    state = FeedState(url=FEED.url)
    delay = await fetcher.poll_once(FEED, state)
    expected = 23 * 3600 / 24 / 2  # items 0..23 h old: mean gap 23/24 h, two polls per gap
    assert state.interval_s == pytest.approx(expected)
    assert 0.9 * expected <= delay <= 1.1 * expected
