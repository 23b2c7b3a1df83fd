"""The fetcher service: polls every configured feed and publishes new articles.

One task per feed, so a slow feed never delays the others; a semaphore bounds how many fetch at
once. Parsing runs in a worker thread (tens of ms per feed: it would block every other feed).
A failed fetch logs one line naming the feed and the reason, counts it, and backs off; a feed is
never given up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from newsmon.shared.kafka import bootstrap_of, make_producer, stop_consumer
from newsmon.shared.messages import Article, encode, utc_now
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from .feeds import FeedConfig, load_feeds
from .http import FetchError, Validators, fetch, make_client
from .parse import FeedParseError, ParsedFeed, parse_feed

__all__ = ["SeenIds", "run"]

log = logging.getLogger("newsmon.fetcher")

MAX_BACKOFF_S = 3600.0


class SeenIds:
    """Article ids already published, oldest forgotten first once `capacity` is reached."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, article_id: str) -> None:
        self._ids[article_id] = None
        self._ids.move_to_end(article_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


@dataclass
class FeedState:
    validators: Validators = field(default_factory=Validators)
    body_hash: str | None = None
    error_streak: int = 0


def next_delay(base_s: float, error_streak: int, retry_after_s: float | None = None) -> float:
    """Seconds until the next poll: the interval with ±10% jitter so feeds do not poll in
    lockstep, doubled per consecutive error up to an hour, never shorter than Retry-After."""
    delay = base_s * (2 ** min(error_streak, 10)) if error_streak else base_s
    delay = min(delay, max(base_s, MAX_BACKOFF_S))
    delay *= random.uniform(0.9, 1.1)
    return max(delay, retry_after_s or 0.0)


async def load_seen_ids(settings: Settings, capacity: int) -> SeenIds:
    """Rebuild the dedup memory from the articles topic itself (keys are article ids), so an
    item is published once across restarts without a separate state store."""
    seen = SeenIds(capacity)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_of(settings),
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id="newsmon-fetcher-state",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(settings.topics.articles) or set()
        tps = [TopicPartition(settings.topics.articles, p) for p in partitions]
        if not tps:
            return seen
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if record.key:
                        seen.add(record.key.decode("utf-8", errors="replace"))
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if not batch:
                remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await stop_consumer(consumer)
    log.info("rebuilt dedup memory from %s", settings.topics.articles, extra={"seen": len(seen)})
    return seen


class Fetcher:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        producer: AIOKafkaProducer,
        client: httpx.AsyncClient,
        seen: SeenIds,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.producer = producer
        self.client = client
        self.seen = seen
        self.slots = asyncio.Semaphore(settings.fetch_concurrency)

    async def poll_forever(self, feed: FeedConfig, stop: asyncio.Event) -> None:
        state = FeedState()
        base = feed.interval_min_s or self.settings.poll_interval_s
        # Spread the first polls over a few seconds rather than all at once.
        await _sleep_or_stop(stop, random.uniform(0, min(5.0, base)))
        while not stop.is_set():
            retry_after = await self.poll_once(feed, state)
            await _sleep_or_stop(stop, next_delay(base, state.error_streak, retry_after))

    async def poll_once(self, feed: FeedConfig, state: FeedState) -> float | None:
        """Fetch, parse and publish one feed; returns the server's Retry-After if any."""
        started = time.monotonic()
        try:
            async with self.slots:
                outcome = await self._fetch_and_publish(feed, state)
        except FetchError as exc:
            self._failed(feed, state, exc.kind, str(exc))
            return exc.retry_after_s
        except FeedParseError as exc:
            self._failed(feed, state, "parse", str(exc))
            return None
        except KafkaError as exc:
            # Not published, so not marked seen: the next poll publishes these items again.
            self._failed(feed, state, "kafka", f"could not publish to Kafka: {exc}")
            return None
        finally:
            self.metrics.feed_fetch_seconds.labels(feed.name).observe(time.monotonic() - started)
        state.error_streak = 0
        self.metrics.feed_error_streak.labels(feed.name).set(0)
        self.metrics.feed_fetches.labels(feed.name, outcome).inc()
        self.metrics.feed_last_success.labels(feed.name).set(time.time())
        return None

    def _failed(self, feed: FeedConfig, state: FeedState, kind: str, reason: str) -> None:
        state.error_streak += 1
        self.metrics.feed_fetches.labels(feed.name, kind).inc()
        self.metrics.feed_error_streak.labels(feed.name).set(state.error_streak)
        self.metrics.errors.labels("fetcher", kind).inc()
        log.warning(
            "feed %s: %s (%s; failure %d in a row, will retry)",
            feed.name,
            reason,
            kind,
            state.error_streak,
            extra={"feed": feed.name, "url": feed.url, "kind": kind},
        )

    async def _fetch_and_publish(self, feed: FeedConfig, state: FeedState) -> str:
        s = self.settings
        result = await fetch(
            self.client,
            feed.url,
            validators=state.validators,
            max_bytes=s.fetch_max_bytes,
            deadline_s=s.fetch_total_timeout_s,
        )
        if result.not_modified:
            return "not_modified"
        state.validators = result.validators
        body_hash = hashlib.sha256(result.body).hexdigest()
        if body_hash == state.body_hash:
            return "unchanged"
        parsed = await asyncio.to_thread(
            _parse, result.body, feed, utc_now(), result.content_type, result.final_url
        )
        await self._publish_new(feed, parsed)
        state.body_hash = body_hash
        return "ok"

    async def _publish_new(self, feed: FeedConfig, parsed: ParsedFeed) -> None:
        fresh: list[Article] = []
        for article in parsed.articles:
            if article.id in self.seen or any(a.id == article.id for a in fresh):
                self.metrics.feed_items.labels(feed.name, "duplicate").inc()
            else:
                fresh.append(article)
        if parsed.skipped:
            self.metrics.feed_items.labels(feed.name, "skipped").inc(len(parsed.skipped))
        topic = self.settings.topics.articles
        pending = [await self.producer.send(topic, encode(a), key=a.id.encode()) for a in fresh]
        await asyncio.gather(*pending)  # acks=all before an id counts as published
        for article in fresh:
            self.seen.add(article.id)
            log.debug("published article", extra={"article_id": article.id, "feed": feed.name})
        self.metrics.feed_items.labels(feed.name, "new").inc(len(fresh))
        self.metrics.items_out.labels("fetcher", topic).inc(len(fresh))
        if fresh:
            log.info(
                "feed %s: %d new of %d items",
                feed.name,
                len(fresh),
                len(parsed.articles),
                extra={"feed": feed.name},
            )


def _parse(
    body: bytes, feed: FeedConfig, fetched_at: datetime, content_type: str | None, base_url: str
) -> ParsedFeed:
    return parse_feed(
        body, feed=feed, fetched_at=fetched_at, content_type=content_type, base_url=base_url
    )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    feeds = [f for f in load_feeds(settings.feeds_file) if f.enabled]
    log.info("polling %d feeds from %s", len(feeds), settings.feeds_file)
    if not feeds:
        log.warning("no enabled feeds in %s: the fetcher idles", settings.feeds_file)
    seen = await load_seen_ids(settings, settings.dedupe_capacity)
    producer = make_producer(settings, client_id=f"newsmon-fetcher.{settings.instance_id}")
    await producer.start()
    try:
        async with make_client(
            connect_s=settings.fetch_connect_timeout_s,
            read_s=settings.fetch_read_timeout_s,
            contact=settings.fetch_contact,
        ) as client:
            fetcher = Fetcher(settings, metrics, producer, client, seen)
            async with asyncio.TaskGroup() as group:
                for feed in feeds:
                    group.create_task(fetcher.poll_forever(feed, stop), name=f"feed:{feed.name}")
                await stop.wait()
    finally:
        await producer.stop()
