"""Review findings on the fetcher: what a real feed or broker can do that must cost neither an
article nor a feed's task (tests/unit; HTTP over httpx.MockTransport, a fake clock)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError
from newsmon.fetcher.app import Fetcher
from newsmon.fetcher.failures import FetchError
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.http import FeedClient, HostLimiter, fetch
from newsmon.fetcher.parse import parse_feed
from newsmon.fetcher.state import FeedState, KafkaSink, PublishError
from newsmon.shared.http_headers import parse_retry_after
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss
from tests.support.fetcher import fetcher_for

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
FEED = FeedConfig(name="f1", url="https://feeds.example.org/rss")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Sink:
    """Publishes into a list; `fail` makes the next publishes raise (a broker outage)."""

    def __init__(self) -> None:
        self.articles: list[Article] = []
        self.fail: list[BaseException] = []

    async def publish(self, articles: list[Article]) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.articles.extend(articles)

    async def save_state(self, feed: str, state: FeedState) -> None:
        pass


def _settings() -> Settings:
    return Settings(kafka_bootstrap="unused:9092", poll_interval_s=300, poll_interval_max_s=3600)


def _fetcher(
    handler: Any, sink: Sink, metrics: Metrics, clock: Clock, settings: Settings | None = None
) -> Fetcher:
    settings = settings or _settings()
    client = FeedClient(transport=httpx.MockTransport(handler))
    return fetcher_for(settings, metrics, sink, client, clock=clock)


def _body(n: int = 3) -> bytes:
    when = datetime.fromtimestamp(T0, UTC)
    return rss(
        [
            Item(f"https://news.example.org/a{i}", f"Story {i}", when - timedelta(hours=i))
            for i in range(n)
        ]
    )


def test_a_date_past_datetime_max_in_utc_is_no_date_not_a_crash() -> None:
    # OverflowError from astimezone escaped parse_feed (not a FeedParseError) and, through
    # the TaskGroup in run(), stopped every feed of the process.
    body = rss([Item("https://news.example.org/x", "Far future")]).replace(
        b"<description>A", b"<pubDate>Fri, 31 Dec 9999 23:59:59 -1200</pubDate><description>A", 1
    )
    parsed = parse_feed(body, feed=FEED, fetched_at=datetime.fromtimestamp(T0, UTC))
    assert [a.title for a in parsed.articles] == ["Far future"]
    assert parsed.articles[0].published is None


async def test_an_unexpected_error_in_a_poll_is_a_counted_failure_and_polling_goes_on() -> None:
    clock, sink, metrics = Clock(), Sink(), Metrics()
    # Short intervals, so that poll_forever below polls again at once.
    fast = _settings().with_overrides(poll_interval_s=0.01, fetch_backoff_max_s=0.01)
    fetcher = _fetcher(lambda r: httpx.Response(200, content=_body()), sink, metrics, clock, fast)
    calls = 0

    async def broken_parse(*args: object, **kwargs: object) -> Any:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug in a parser")

    fetcher.parser.parse = broken_parse  # type: ignore[method-assign]
    state = FeedState(url=FEED.url)
    delay = await fetcher.poll_once(FEED, state)
    assert 0 < delay <= 3600
    assert state.error_streak == 1
    assert (
        metrics.registry.get_sample_value(
            "newsmon_feed_fetches_total", {"feed": "f1", "outcome": "internal"}
        )
        == 1
    )
    # poll_forever survives it and polls again.
    stop = asyncio.Event()
    state.next_poll_at = None
    task = asyncio.create_task(fetcher.poll_forever(FEED, state, stop))
    for _ in range(200):
        if calls >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert calls >= 3


async def test_items_a_failed_publish_left_out_are_published_by_the_next_poll() -> None:
    # The ETag was stored before publishing: after a Kafka failure the next poll sent it,
    # got 304, and the items were never published.
    clock, sink, metrics = Clock(), Sink(), Metrics()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, content=_body(), headers={"ETag": '"v1"'})

    fetcher = _fetcher(handler, sink, metrics, clock)
    state = FeedState(url=FEED.url)
    sink.fail.append(KafkaConnectionError("broker down"))
    await fetcher.poll_once(FEED, state)
    assert sink.articles == []
    assert state.error_streak == 0  # the broker failed, not the feed
    clock.now += 600
    await fetcher.poll_once(FEED, state)
    assert len(sink.articles) == 3
    assert state.etag == '"v1"'
    clock.now += 600
    await fetcher.poll_once(FEED, state)  # now a 304
    assert len(sink.articles) == 3


async def test_articles_acknowledged_before_a_publish_failed_are_not_published_again() -> None:
    clock, sink, metrics = Clock(), Sink(), Metrics()
    fetcher = _fetcher(lambda r: httpx.Response(200, content=_body()), sink, metrics, clock)
    state = FeedState(url=FEED.url)
    first = parse_feed(_body(), feed=FEED, fetched_at=datetime.fromtimestamp(T0, UTC)).articles
    acked = [a for a in first if a.title == "Story 0"]
    sink.articles.extend(acked)
    sink.fail.append(PublishError(acked, KafkaConnectionError("broker down")))
    await fetcher.poll_once(FEED, state)
    clock.now += 600
    await fetcher.poll_once(FEED, state)
    assert sorted(a.title for a in sink.articles) == ["Story 0", "Story 1", "Story 2"]


class _Producer:
    """aiokafka's producer at its boundary: send() gives a future of the broker's answer."""

    def __init__(self, outcomes: list[BaseException | None]) -> None:
        self.outcomes = outcomes

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        outcome = self.outcomes.pop(0)
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
        return future


async def test_the_kafka_sink_names_the_articles_the_broker_acknowledged() -> None:
    articles = list(
        parse_feed(_body(), feed=FEED, fetched_at=datetime.fromtimestamp(T0, UTC)).articles
    )
    producer = _Producer([KafkaConnectionError("lost"), None, None])
    sink = KafkaSink(_settings().topics, producer)  # type: ignore[arg-type]
    with pytest.raises(PublishError) as caught:
        await sink.publish(articles)
    assert isinstance(caught.value, KafkaError)
    assert caught.value.acked == articles[1:]


async def test_a_non_ascii_etag_is_sent_back_not_a_crash_on_every_later_poll() -> None:
    seen: list[bytes | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.raw and dict(request.headers.raw).get(b"If-None-Match"))
        if request.headers.get("If-None-Match"):
            return httpx.Response(304)
        return httpx.Response(200, content=b"x", headers=[(b"ETag", '"v-ü"'.encode())])

    client = FeedClient(transport=httpx.MockTransport(handler))
    first = await fetch(client, "https://e.example.org/f", max_bytes=100, deadline_s=5)
    second = await fetch(
        client,
        "https://e.example.org/f",
        validators=first.validators,
        max_bytes=100,
        deadline_s=5,
    )
    assert second.not_modified
    assert seen[-1] == '"v-ü"'.encode()


async def test_a_retry_after_of_odd_digits_is_ignored_not_a_crash() -> None:
    assert parse_retry_after("²", datetime.fromtimestamp(T0, UTC)) is None

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers=[(b"Retry-After", "²".encode())])

    client = FeedClient(transport=httpx.MockTransport(handler))
    with pytest.raises(FetchError) as caught:
        await fetch(client, "https://e.example.org/f", max_bytes=100, deadline_s=5)
    assert caught.value.kind == "http_429"


async def test_the_host_limiter_forgets_hosts_nobody_uses() -> None:
    # Article pages (full text) name ever new hosts: a semaphore per host kept forever.
    hosts = HostLimiter(2)
    for i in range(100):
        async with hosts.slot(f"https://site{i}.example.org/a"):
            pass
    assert len(hosts) == 0
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with hosts.slot("https://busy.example.org/a"):
            entered.set()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(3)]  # the third waits
    await entered.wait()
    await asyncio.sleep(0)
    assert len(hosts) == 1
    release.set()
    await asyncio.gather(*holders)
    assert len(hosts) == 0


def test_a_state_record_with_fields_of_the_wrong_type_is_refused() -> None:
    good = FeedState(url=FEED.url, error_streak=2).to_json()
    assert FeedState.from_json(good).error_streak == 2
    for bad in (b'"next_poll_at": "soon"', b'"error_streak": "2"', b'"extra": []'):
        payload = good.replace(b'"schema"', bad + b', "schema"', 1)  # the last key wins
        with pytest.raises(ValueError, match="field"):
            FeedState.from_json(payload)
