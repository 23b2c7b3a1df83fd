"""The fetcher under load, on the real broker: bounded work with a slow sink, a failed publish
that keeps its parse, and SIGTERM with the broker frozen."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.errors import KafkaTimeoutError
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.http import FeedClient, make_client
from newsmon.fetcher.parse import ParsedFeed
from newsmon.fetcher.parse_workers import FeedParser
from newsmon.fetcher.ssrf import AllowList
from newsmon.fetcher.state import FeedState, KafkaSink, PublishError, SeenIds, ensure_state_topic
from newsmon.shared.broker import LocalKafka
from newsmon.shared.kafka import ensure_topics, make_producer
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss
from tests.support.feed_server import serve_directory
from tests.support.fetcher import fetcher_for
from tests.support.kafka_read import read_topic

pytestmark = pytest.mark.kafka

NOW = datetime.now(UTC)


def _write_feeds(folder: Path, count: int, items: int, *, start: int = 0) -> None:
    for f in range(count):
        body = rss(
            [
                Item(
                    f"https://news{f}.example.org/story/{j}",
                    f"Feed {f} story {j}",
                    NOW - timedelta(minutes=j),
                )
                for j in range(start, start + items)
            ]
        )
        (folder / f"f{f}.xml").write_bytes(body)


class Live:
    """Bodies parsed and not yet acknowledged by the broker, and the most seen at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.parses = 0

    def add(self) -> None:
        self.parses += 1
        self.now += 1
        self.most = max(self.most, self.now)


class CountingParser(FeedParser):
    def __init__(self, live: Live) -> None:
        super().__init__(0)
        self.live = live

    async def parse(self, body: bytes, **kwargs: object) -> ParsedFeed:  # type: ignore[override]
        parsed = await super().parse(body, **kwargs)  # type: ignore[arg-type]
        self.live.add()
        return parsed


class SlowSink(KafkaSink):
    """The real sink behind a slow link: each publish waits `delay_s` first."""

    def __init__(self, settings: Settings, producer: object, live: Live, delay_s: float) -> None:
        super().__init__(settings.topics, producer)  # type: ignore[arg-type]
        self.live, self.delay_s = live, delay_s
        self.saved: Counter[str] = Counter()
        self.all_saved = asyncio.Event()
        self.feeds = 0  # set all_saved once this many feeds saved their state

    async def publish(self, articles: list[Article]) -> None:
        await asyncio.sleep(self.delay_s)
        try:
            await super().publish(articles)
        finally:
            self.live.now -= 1

    async def save_state(self, feed: str, state: FeedState) -> None:
        await super().save_state(feed, state)
        self.saved[feed] += 1
        if self.feeds and len(self.saved) >= self.feeds:
            self.all_saved.set()


class FailingOnceSink(SlowSink):
    """The real sink; its first publish times out after the broker acknowledged half."""

    def __init__(self, settings: Settings, producer: object, live: Live) -> None:
        super().__init__(settings, producer, live, 0.0)
        self.calls = 0

    async def publish(self, articles: list[Article]) -> None:
        self.calls += 1
        if self.calls > 1:
            return await super().publish(articles)
        half = articles[: len(articles) // 2]
        await KafkaSink.publish(self, half)
        self.live.now -= 1
        raise PublishError(half, KafkaTimeoutError())


def _client(settings: Settings) -> FeedClient:
    return make_client(
        connect_s=5, read_s=5, contact="test", allow=AllowList.parse(settings.fetch_allow_hosts)
    )


async def _ids(settings: Settings, expected: int) -> Counter[str]:
    records = await read_topic(
        settings.kafka_bootstrap,
        settings.topics.articles,
        until=lambda r: len(r) >= expected,
        timeout_s=30,
        settle_s=1.0,
    )
    return Counter(r.key.decode() for r in records)


async def test_a_slow_sink_bounds_the_work_and_loses_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    feeds_count, items = 30, 4
    settings = kafka_settings.model_copy(
        update={"fetch_concurrency": 3, "fetch_per_host_concurrency": 30, "poll_interval_s": 1.0}
    )
    await ensure_topics(settings)
    await ensure_state_topic(settings)
    _write_feeds(tmp_path, feeds_count, items)
    live, metrics = Live(), Metrics()
    producer = make_producer(settings, client_id="test-fetcher-load")
    await producer.start()
    stop = asyncio.Event()
    try:
        with serve_directory(tmp_path) as base:
            feeds = [FeedConfig(name=f"f{f}", url=f"{base}/f{f}.xml") for f in range(feeds_count)]
            sink = SlowSink(settings, producer, live, delay_s=0.1)
            sink.feeds = feeds_count
            async with _client(settings) as client:
                parser, seen = CountingParser(live), SeenIds(10_000)
                fetcher = fetcher_for(settings, metrics, sink, client, seen=seen, parser=parser)
                due = time.time()  # every feed due at once: 10 rounds of work for 3 slots
                states = {f.name: FeedState(url=f.url, next_poll_at=due) for f in feeds}
                tasks = [
                    asyncio.create_task(fetcher.poll_forever(f, states[f.name], stop))
                    for f in feeds
                ]
                async with asyncio.timeout(60):
                    await sink.all_saved.wait()
                stop.set()
                await asyncio.gather(*tasks)
    finally:
        await producer.stop()
    assert live.most <= settings.fetch_concurrency, "parsed-but-unpublished bodies are bounded"
    assert live.parses >= feeds_count
    assert set(sink.saved) == {f"f{f}" for f in range(feeds_count)}, "every feed polled"
    delays = metrics.registry.get_sample_value("newsmon_fetcher_poll_delay_seconds_count")
    assert delays is not None
    assert delays >= feeds_count
    for stage in ("waiting", "fetch", "parse", "publish"):  # nothing left holding a slot
        assert metrics.registry.get_sample_value("newsmon_fetcher_polls", {"stage": stage}) == 0
    ids = await _ids(settings, feeds_count * items)
    assert len(ids) == feeds_count * items, "no item lost"
    assert max(ids.values()) == 1, "no item published twice"


async def test_a_failed_publish_keeps_its_parse_and_loses_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings
    await ensure_topics(settings)
    await ensure_state_topic(settings)
    _write_feeds(tmp_path, 1, 6)
    live, metrics = Live(), Metrics()
    producer = make_producer(settings, client_id="test-fetcher-republish")
    await producer.start()
    try:
        with serve_directory(tmp_path) as base:
            feed = FeedConfig(name="f0", url=f"{base}/f0.xml")
            state = FeedState(url=feed.url)
            sink = FailingOnceSink(settings, producer, live)
            async with _client(settings) as client:
                parser = CountingParser(live)
                fetcher = fetcher_for(settings, metrics, sink, client, parser=parser)
                delay = await fetcher.poll_once(feed, state)  # parsed; 3 acked, 3 timed out
                assert state.error_streak == 0, "the broker failed, not the feed"
                assert delay <= settings.poll_interval_s * 1.25, "no error back-off"
                assert state.body_hash is None
                assert state.etag is None
                assert state.last_modified is None
                assert len(fetcher.unpublished["f0"].articles) == 3
                await fetcher.poll_once(feed, state)  # publishes the other 3: no fetch/parse
                assert live.parses == 1, "the kept parse was published, not parsed again"
                assert state.error_streak == 0
                assert state.body_hash is not None
                assert state.last_modified is not None  # saved only now, once acknowledged
                assert not fetcher.unpublished
                await fetcher.poll_once(feed, state)  # a conditional GET: 304
    finally:
        await producer.stop()
    outcomes = {
        o: metrics.registry.get_sample_value(
            "newsmon_feed_fetches_total", {"feed": "f0", "outcome": o}
        )
        for o in ("kafka", "ok", "not_modified")
    }
    assert outcomes == {"kafka": 1.0, "ok": 1.0, "not_modified": 1.0}
    assert (
        metrics.registry.get_sample_value("newsmon_fetcher_republish_total", {"outcome": "ok"})
        == 1.0
    )
    assert live.parses == 1
    ids = await _ids(settings, 6)
    assert len(ids) == 6, "no item lost"
    assert max(ids.values()) == 1, "none published twice"


def test_sigterm_with_the_broker_frozen_exits_within_the_budget(
    own_kafka_broker: LocalKafka, kafka_settings: Settings, tmp_path: Path
) -> None:
    """The broker stops answering (SIGSTOP: connections hang, the worst case for a client)
    while polls are publishing; SIGTERM still ends the fetcher within its budget. The broker
    is this test's own: the frozen one is not the session's."""
    budget = 4.0
    _write_feeds(tmp_path, 3, 3)
    kafka_broker = own_kafka_broker
    pid = kafka_broker.running_pid()
    assert pid is not None
    with serve_directory(tmp_path) as base:
        feeds_file = tmp_path / "feeds.toml"
        feeds_file.write_text(
            "".join(f'[[feed]]\nname = "f{f}"\nurl = "{base}/f{f}.xml"\n\n' for f in range(3))
        )
        env = {
            **os.environ,
            "NEWSMON_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
            "NEWSMON_TOPIC_PREFIX": kafka_settings.topic_prefix,
            "NEWSMON_FEEDS_FILE": str(feeds_file),
            "NEWSMON_FETCH_ALLOW_HOSTS": "127.0.0.1",
            "NEWSMON_POLL_INTERVAL_S": "1",
            "NEWSMON_POLL_INTERVAL_MAX_S": "1",
            "NEWSMON_SHUTDOWN_TIMEOUT_S": str(budget),
            "NEWSMON_METRICS_PORT": "0",
            "NEWSMON_FETCH_PARSE_WORKERS": "0",
            "NEWSMON_LOG_FORMAT": "json",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsmon", "fetcher"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        frozen = False
        try:
            assert proc.stderr is not None
            for line in proc.stderr:  # until the first poll published
                lines.append(line)
                if '"new of' in line or " new of " in line:
                    break
            os.kill(pid, signal.SIGSTOP)
            frozen = True
            _write_feeds(tmp_path, 3, 3, start=10)  # new items: the next polls publish
            time.sleep(3.0)  # polls of 1 s interval are now stuck publishing
            os.kill(proc.pid, signal.SIGTERM)
            # Generous, not a speed check: a fetcher that ignores SIGTERM never ends.
            code = proc.wait(timeout=budget + 15)
        finally:
            if frozen:
                os.kill(pid, signal.SIGCONT)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.stderr is not None
        with proc.stderr:
            rest = proc.stderr.read()
    logs = "".join(lines) + rest
    assert code == 0, logs[-3000:]
    messages = [json.loads(x)["msg"] for x in logs.splitlines() if x.startswith("{")]
    assert any("abandon" in m for m in messages), messages[-10:]
