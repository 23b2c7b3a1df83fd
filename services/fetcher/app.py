"""The fetcher service: polls every configured feed and publishes new articles.

One task per feed, so a slow feed never delays the others. A poll takes a slot of its host
first (at most NEWSMON_FETCH_PER_HOST_CONCURRENCY requests per host), then one of
NEWSMON_FETCH_CONCURRENCY work slots, which it keeps through fetch, parse and publish (load.py):
the bodies parsed but not yet acknowledged by Kafka are bounded, and when Kafka or the parsers
are slow the next fetches wait instead of piling up. Waiting polls are served oldest due
first, so overload stretches every feed's interval evenly; `Saturation` says so once in the
log and in newsmon_fetcher_saturated. Parsing runs off the loop (tens of ms per feed: it
would block every other feed), in a thread or in NEWSMON_FETCH_PARSE_WORKERS processes
(parse_workers.py).

One refresh, start to end, is `Fetcher.poll_once` (in the manner of miniflux's
internal/reader/handler/handler.go): fetch with validators → 304 / unchanged body / parse →
drop what was published before (by id or canonical URL, across feeds and restarts) →
optional full text → publish (acks=all) → remember (these three: publish.py, the step WebSub
pushes take too) → plan the next poll (schedule.py) → save the feed's state to the compacted
state topic. A failure logs one line naming the feed and the reason, is counted by its kind
(failures.py), and backs off; a feed is never given up on. A publish
that fails keeps its parse: the next poll of the feed publishes the same articles (same ids)
again before it fetches anything, and only then saves the validators and body hash. A failed
publish is not the feed's failure: it does not grow the feed's error back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from aiokafka.errors import KafkaError
from newsmon.shared.backoff import Backoff
from newsmon.shared.clock import Clock
from newsmon.shared.kafka import make_producer, wait_for_leaders
from newsmon.shared.lifecycle import close_within
from newsmon.shared.logging import Outage
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.services import client_id
from newsmon.shared.settings import Settings
from newsmon.shared.statetopic import ensure_output_topics

from .failures import Failure, FailureKind, failure_of
from .feeds import FeedConfig, load_feeds
from .fleet import FeedTasks, OwnedFeeds, run_fleet
from .fulltext import FullTextConfig, PageTexts
from .http import FeedClient, FetchResult, HostLimiter, Validators, fetch, make_client
from .items import Memo
from .load import DueSlots, Saturation
from .parse_workers import FeedParser, parse_workers
from .publish import PublishConfig, Publisher, in_stage
from .schedule import Bounds, adaptive_interval, next_delay
from .ssrf import AllowList
from .state import (
    FeedState,
    KafkaSink,
    PublishError,
    SeenIds,
    ensure_state_topic,
    fetcher_state_topic,
    load_seen_ids,
    load_states,
    state_topic,
)
from .websub import WebSub, WebSubConfig

__all__ = ["Fetcher", "PollConfig", "StateSink", "bounds_for", "run"]

log = logging.getLogger("newsmon.fetcher")


class StateSink(Protocol):
    async def save_state(self, feed: str, state: FeedState) -> None: ...


@dataclass(frozen=True, slots=True)
class PollConfig:
    """The settings a Fetcher polls with: intervals and back-off (NEWSMON_POLL_INTERVAL_S,
    _POLL_INTERVAL_MAX_S, _FETCH_BACKOFF_MAX_S), one fetch's limits (_FETCH_MAX_BYTES,
    _FETCH_TOTAL_TIMEOUT_S, _FETCH_MAX_REDIRECTS) and the work and per-host slots
    (_FETCH_CONCURRENCY, _FETCH_PER_HOST_CONCURRENCY)."""

    poll_interval_s: float
    poll_interval_max_s: float
    backoff_max_s: float
    max_bytes: int
    deadline_s: float
    max_redirects: int
    concurrency: int
    per_host_concurrency: int

    @classmethod
    def from_settings(cls, settings: Settings) -> PollConfig:
        return cls(
            poll_interval_s=settings.poll_interval_s,
            poll_interval_max_s=settings.poll_interval_max_s,
            backoff_max_s=settings.fetch_backoff_max_s,
            max_bytes=settings.fetch_max_bytes,
            deadline_s=settings.fetch_total_timeout_s,
            max_redirects=settings.fetch_max_redirects,
            concurrency=settings.fetch_concurrency,
            per_host_concurrency=settings.fetch_per_host_concurrency,
        )


def bounds_for(feed: FeedConfig, config: PollConfig) -> Bounds:
    low = feed.interval_min_s or config.poll_interval_s
    high = max(feed.interval_max_s or config.poll_interval_max_s, low)
    return Bounds(low, high, max(config.backoff_max_s, low))


@dataclass
class Unpublished:
    """A parse whose publish failed: the articles the broker did not acknowledge, and what to
    save in the feed's state once they are (validators, body hash, interval)."""

    articles: list[Article]
    validators: Validators
    body_hash: str
    interval_s: float
    memo: Memo  # the parse's item memo (items.py)


def _code_class(status: int) -> str:
    return "304" if status == 304 else f"{status // 100}xx"


class Fetcher:
    def __init__(
        self,
        config: PollConfig,
        metrics: Metrics,
        sink: StateSink,
        client: FeedClient,
        publisher: Publisher,
        *,
        parser: FeedParser | None = None,
        hosts: HostLimiter | None = None,
        websub: WebSub | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        """`publisher` publishes what a parse brought (publish.py); `parser` parses off the loop
        (default: in a thread); `hosts` limits requests per host (share it with the full-text
        page fetcher); `websub` is the subscriber when NEWSMON_WEBSUB is on."""
        self.config = config
        self.metrics = metrics
        self.sink = sink
        self.client = client
        self.publisher = publisher
        self.parser = parser or FeedParser()
        self.hosts = hosts or HostLimiter(config.per_host_concurrency)
        self.websub = websub
        self.clock = clock
        self.rng = rng or random.Random()
        self.slots = DueSlots(config.concurrency)  # held from fetch to publish
        self.saturation = Saturation()
        self.naps = Naps()  # the sleeps of poll_forever between polls
        # Per feed: the articles of a parse whose publish failed, published again first.
        self.unpublished: dict[str, Unpublished] = {}
        # Per feed: fingerprints of the items of its last fully published parse (items.py).
        self.memos: dict[str, Memo] = {}
        # Publishing failing: one line when it starts and one when it ends (not one per feed).
        self.publish_outage = Outage()

    async def poll_forever(self, feed: FeedConfig, state: FeedState, stop: asyncio.Event) -> None:
        bounds = bounds_for(feed, self.config)
        now = self.clock()
        if state.next_poll_at is not None and state.next_poll_at > now:
            # Restored from the state topic: keep the plan (never longer than the back-off cap).
            first = min(state.next_poll_at - now, bounds.backoff_max_s)
        else:
            first = self.rng.uniform(0, min(5.0, bounds.min_s))  # spread the first polls
        await self.naps.sleep(stop, first)
        while not stop.is_set():
            try:
                delay = await self.poll_once(feed, state)
            except Exception:  # poll_once handles its own errors; this is a last resort
                log.exception("feed %s: poll failed unexpectedly; retrying later", feed.name)
                delay = bounds.backoff_max_s
            await self.naps.sleep(stop, delay)

    async def poll_once(self, feed: FeedConfig, state: FeedState) -> float:
        """One refresh of `feed`; returns the seconds until its next poll."""
        bounds = bounds_for(feed, self.config)
        started, now = time.monotonic(), self.clock()
        max_age: float | None = None
        failure: Failure | None = None
        outcome = "ok"
        try:
            async with self._work_slot(feed, state, bounds):
                if feed.name in self.unpublished:
                    outcome = await self._republish(feed, state)
                else:
                    result = await self._fetch(feed, state, self.clock())
                    max_age = result.max_age_s
                    outcome = await self._handle(feed, state, result, now, bounds)
        except Exception as exc:  # every failure, sorted into its kind (failures.py)
            # Articles whose publish failed were not marked seen: the next poll publishes them.
            failure = failure_of(exc)
            if failure.kind is FailureKind.INTERNAL:
                # A bug (in parsing, a worker, a client library) must not end this feed's
                # task: the TaskGroup of run() would then stop every feed. Logged with its
                # traceback.
                log.exception("feed %s: unexpected error in a poll", feed.name)
            if failure.kind is FailureKind.KAFKA:
                outcome = self._publish_failed(feed, state, failure)
            else:
                outcome = self._failed(feed, state, failure)
        else:
            state.error_streak = 0
            state.last_success_at = self.clock()
            self.metrics.feed_fetches.labels(feed.name, outcome).inc()
            self.metrics.feed_last_success.labels(feed.name).set(state.last_success_at)
            self.metrics.feed_error_streak.labels(feed.name).set(0)
        took = time.monotonic() - started
        self.metrics.feed_fetch_seconds.labels(outcome).observe(took)
        self.metrics.feed_last_fetch_seconds.labels(feed.name).set(took)
        delay = next_delay(
            # While a hub pushes this feed, polling is only a fallback: the max interval.
            interval_s=bounds.max_s
            if self.websub is not None and self.websub.is_active(feed.name)
            else state.interval_s or bounds.min_s,
            error_streak=state.error_streak,
            bounds=bounds,
            retry_after_s=failure.retry_after_s if failure else None,
            max_age_s=max_age,
            permanent=failure is not None and not failure.retriable,
            rng=self.rng,
        )
        state.next_poll_at = self.clock() + delay
        self.metrics.feed_interval.labels(feed.name).set(state.interval_s or bounds.min_s)
        try:
            await self.sink.save_state(feed.name, state)
        except Exception as exc:  # KafkaError, or anything else: the feed is polled again
            log.warning("feed %s: could not save its state: %s", feed.name, exc)
        else:
            if failure is None or failure.kind is not FailureKind.KAFKA:
                self._publish_recovered()  # the broker acknowledged this state record
        return delay

    @contextlib.asynccontextmanager
    async def _work_slot(
        self, feed: FeedConfig, state: FeedState, bounds: Bounds
    ) -> AsyncIterator[None]:
        """Hold one of the NEWSMON_FETCH_CONCURRENCY work slots for the whole refresh (fetch,
        parse, publish); polls waiting for one are served oldest due first."""
        due = state.next_poll_at if state.next_poll_at is not None else self.clock()
        waited = time.monotonic()
        polls = self.metrics.fetcher_polls
        polls.labels("waiting").inc()
        try:
            await self.slots.acquire(due)
        finally:
            polls.labels("waiting").dec()
        self.metrics.fetcher_slot_wait.observe(time.monotonic() - waited)
        lateness = max(0.0, self.clock() - due)
        self.metrics.fetcher_poll_delay.observe(lateness)
        self._saturation(lateness, state.interval_s or bounds.min_s)
        try:
            yield
        finally:
            self.slots.release()

    def _saturation(self, lateness_s: float, interval_s: float) -> None:
        change = self.saturation.observe(lateness_s, interval_s)
        if change is None:
            return
        self.metrics.fetcher_saturated.set(1 if change else 0)
        if change:
            log.warning(
                "fetcher saturated: most polls start late (this one %.0fs); intervals stretch "
                "evenly, oldest due first. Raise NEWSMON_FETCH_CONCURRENCY or "
                "NEWSMON_FETCH_PARSE_WORKERS, or run more fetchers",
                lateness_s,
            )
        else:
            log.info("fetcher no longer saturated: polls start on time again")

    async def _fetch(self, feed: FeedConfig, state: FeedState, now: float) -> FetchResult:
        limits = self.config
        async with self.hosts.slot(feed.url):
            with in_stage(self.metrics, "fetch"):
                result = await fetch(
                    self.client,
                    feed.url,
                    validators=state.validators,
                    max_bytes=limits.max_bytes,
                    deadline_s=limits.deadline_s,
                    max_redirects=limits.max_redirects,
                    now=datetime.fromtimestamp(now, UTC),
                )
        if not feed.url.startswith("file://"):
            self.metrics.feed_responses.labels(_code_class(result.status)).inc()
        self.metrics.feed_bytes.inc(result.raw_bytes)
        if result.permanent_url:
            log.info(
                "feed %s moved permanently to %s: update the feeds file",
                feed.name,
                result.permanent_url,
                extra={"feed": feed.name},
            )
        return result

    async def _handle(
        self, feed: FeedConfig, state: FeedState, result: FetchResult, now: float, bounds: Bounds
    ) -> str:
        if result.not_modified:
            return "not_modified"
        body_hash = hashlib.sha256(result.body).hexdigest()
        if body_hash == state.body_hash:
            state.validators = result.validators
            return "unchanged"
        fetched_at = datetime.fromtimestamp(now, UTC)
        with in_stage(self.metrics, "parse"):
            parsed = await self.parser.parse(
                result.body,
                feed=feed,
                fetched_at=fetched_at,
                content_type=result.content_type,
                base_url=result.final_url,
                memo=self.memos.get(feed.name),
            )
        if self.websub is not None:
            self.websub.feed_parsed(feed, state, parsed)  # subscribes when it names a hub
        interval = adaptive_interval(parsed.published, fetched_at, bounds)
        try:
            await self.publisher.publish_parsed(feed, state, parsed)
        except PublishError as exc:
            # Keep the parse: the next poll publishes what was not acknowledged (same ids)
            # before fetching again, then saves these validators.
            kept = Unpublished(exc.unacked, result.validators, body_hash, interval, parsed.memo)
            self._keep_unpublished(feed, kept)
            raise
        # Only now: validators (like the body hash) kept from a poll whose items were not all
        # published (parse error, Kafka down) would turn the next poll into a 304, and those
        # items would never be published.
        state.validators = result.validators
        state.body_hash = body_hash
        state.interval_s = interval
        self._remember_items(feed, parsed.memo)
        return "ok"

    def release_feed(self, feed: FeedConfig) -> None:
        """This process stops polling `feed` (moved to another fetcher replica, removed):
        forget what it kept for it. Kept articles are not published here; the next owner
        fetches the feed again, with the articles topic as its dedup memory (fleet.py)."""
        self._release_unpublished(feed)
        self.memos.pop(feed.name, None)
        if self.websub is not None:
            self.websub.subscriptions.drop(feed.name)  # a push for it now gets 410

    def _remember_items(self, feed: FeedConfig, memo: Memo) -> None:
        # Like the validators: only once everything of the parse was published.
        if memo:
            self.memos[feed.name] = memo
        else:
            self.memos.pop(feed.name, None)

    def _keep_unpublished(self, feed: FeedConfig, kept: Unpublished) -> None:
        self.unpublished[feed.name] = kept
        # Claimed by this feed meanwhile: another feed polled now must not publish them.
        self.publisher.claim(feed, kept.articles)
        self.metrics.fetcher_unpublished.set(
            sum(len(k.articles) for k in self.unpublished.values())
        )

    def _release_unpublished(self, feed: FeedConfig) -> Unpublished | None:
        kept = self.unpublished.pop(feed.name, None)
        if kept is not None:
            self.publisher.unclaim(kept.articles)
            self.metrics.fetcher_unpublished.set(
                sum(len(k.articles) for k in self.unpublished.values())
            )
        return kept

    async def _republish(self, feed: FeedConfig, state: FeedState) -> str:
        """Publish the articles a failed publish left (no fetch, no parse); on success save the
        validators and body hash of their poll."""
        kept = self._release_unpublished(feed)
        assert kept is not None
        fresh = [a for a in kept.articles if self.publisher.seen.first_seen(a) is None]
        try:
            await self.publisher.publish_fresh(feed, fresh, len(kept.articles))
        except PublishError as exc:
            self.metrics.fetcher_republish.labels("failed").inc()
            kept.articles = exc.unacked
            self._keep_unpublished(feed, kept)
            raise
        self.metrics.fetcher_republish.labels("ok").inc()
        state.validators = kept.validators
        state.body_hash = kept.body_hash
        state.interval_s = kept.interval_s
        self._remember_items(feed, kept.memo)
        return "ok"

    def _publish_failed(self, feed: FeedConfig, state: FeedState, failure: Failure) -> str:
        """Count a poll whose publish failed. Not the feed's failure (it answered; the broker
        did not), so its error back-off does not grow: the kept parse is published at the
        feed's next regular poll, and while the broker is slow or down the work slots hold the
        polls back. Backing feeds off here would leave them unpolled for up to
        NEWSMON_FETCH_BACKOFF_MAX_S after the broker is back. One line per outage, not per
        feed (`_publish_recovered` says when it ends)."""
        state.error_streak = 0
        self.metrics.feed_fetches.labels(feed.name, failure.kind).inc()
        self.metrics.feed_error_streak.labels(feed.name).set(0)
        self.metrics.errors.labels("fetcher", failure.kind).inc()
        if self.publish_outage.begin():
            log.warning(
                "feed %s: %s; parses are kept and published first at each feed's next poll "
                "(one line when publishing works again)",
                feed.name,
                failure.reason,
                extra={"feed": feed.name, "kind": failure.kind},
            )
        else:
            log.debug("feed %s: %s", feed.name, failure.reason)
        return failure.kind

    def _publish_recovered(self) -> None:
        lasted = self.publish_outage.end()
        if lasted is not None:
            log.info("publishing to Kafka again after %.0fs of failures", lasted)

    def _failed(self, feed: FeedConfig, state: FeedState, failure: Failure) -> str:
        """Count and log a failed poll; returns its outcome (the failure's kind)."""
        kind = failure.kind
        if failure.status is not None:
            self.metrics.feed_responses.labels(_code_class(failure.status)).inc()
        state.error_streak += 1
        # Kept in the state topic so `newsmon web` and `newsmon feeds health` can say why.
        state.extra["last_error"] = f"{kind}: {failure.reason}"[:300]
        self.metrics.feed_fetches.labels(feed.name, kind).inc()
        self.metrics.feed_error_streak.labels(feed.name).set(state.error_streak)
        self.metrics.errors.labels("fetcher", kind).inc()
        log.warning(
            "feed %s: %s (%s; failure %d in a row, will retry%s)",
            feed.name,
            failure.reason,
            kind,
            state.error_streak,
            "" if failure.retriable else " after the longest back-off",
            extra={"feed": feed.name, "url": feed.url, "kind": kind},
        )
        return kind


class Naps:
    """Sleeps that end early when their stop event is set, cheap enough for one per feed: a
    future and a timer each, all woken by one task waiting on the event. (`asyncio.wait_for(
    stop.wait(), t)` takes a task and two more futures a sleeper, 3.2 KB: 32 MB of the
    process with 10,000 feeds; `asyncio.timeout` around `stop.wait()` 2.2 KB; this 0.6 KB.)"""

    def __init__(self) -> None:
        self._sleeping: dict[asyncio.Event, set[asyncio.Future[None]]] = {}
        self._watchers: dict[asyncio.Event, asyncio.Task[None]] = {}

    async def sleep(self, stop: asyncio.Event, seconds: float) -> None:
        if stop.is_set():
            return
        if stop not in self._watchers:
            self._watchers[stop] = asyncio.create_task(self._wake_on(stop), name="naps")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(max(0.0, seconds), _wake, waiter)
        sleeping = self._sleeping.setdefault(stop, set())
        sleeping.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            sleeping.discard(waiter)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        del self._watchers[stop]
        for waiter in self._sleeping.pop(stop, set()):
            _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _load_state(
    settings: Settings, stop: asyncio.Event
) -> tuple[dict[str, FeedState], SeenIds] | None:
    """Feed states and the dedup memory, waiting out a broker that is down or restarting
    (one line per attempt) instead of failing the service. None: stopped while waiting."""
    retry = Backoff(first_s=1.0, cap_s=30.0)
    while not stop.is_set():
        try:
            await ensure_state_topic(settings)
            states = await load_states(settings)
            # Article ids and URL keys: two entries per article.
            return states, await load_seen_ids(settings, settings.dedupe_capacity * 2)
        except KafkaError as exc:
            log.warning(
                "cannot read the fetcher's state from Kafka yet (%s); retrying in %.0fs",
                exc,
                retry.delay_s,
            )
        await retry.pause(stop)
    return None


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    # Every feed, disabled ones too: the file is imported into the feeds topic (fleet.py),
    # which decides what this replica polls.
    feeds = load_feeds(settings.feeds_file)
    loaded = await _load_state(settings, stop)
    if loaded is None:
        return
    _, seen = loaded  # each feed's state is read when this replica gains the feed
    producer = make_producer(
        settings, client_id=client_id(settings.topic_prefix, "fetcher", settings.instance_id)
    )
    await producer.start()
    parser = FeedParser(parse_workers(settings.fetch_parse_workers))
    budget = settings.shutdown_timeout_s
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_for_leaders(
            producer,
            [settings.topics.articles, state_topic(settings)],
            stop=stop,
            # The fetcher's output topics that went missing: its state topic compacted.
            create_missing=lambda topics: ensure_output_topics(
                settings, topics, [fetcher_state_topic(settings.topics)]
            ),
            service="fetcher",
        )
        async with make_client(
            connect_s=settings.fetch_connect_timeout_s,
            read_s=settings.fetch_read_timeout_s,
            contact=settings.fetch_contact,
            allow=AllowList.parse(settings.fetch_allow_hosts),
            max_connections=max(16, settings.fetch_concurrency * 2),
        ) as client:
            sink = KafkaSink(settings.topics, producer)
            # Feed polls and article pages share the per-host limits (politeness per site).
            hosts = HostLimiter(settings.fetch_per_host_concurrency)
            pages = PageTexts(FullTextConfig.from_settings(settings), client, metrics, hosts)
            publisher = Publisher(
                PublishConfig.from_settings(settings), metrics, sink, seen, pages=pages
            )
            owned = OwnedFeeds()  # the feeds this replica polls now (fleet.py)
            websub = None
            if settings.websub:  # pushes take the same dedupe/publish step as polls
                websub = WebSub(
                    WebSubConfig.from_settings(settings),
                    metrics,
                    client,
                    owned.feeds,
                    owned.states,
                    publisher,
                )
                tasks.append(asyncio.create_task(websub.run(stop), name="websub"))
            fetcher = Fetcher(
                PollConfig.from_settings(settings),
                metrics,
                sink,
                client,
                publisher,
                parser=parser,
                hosts=hosts,
                websub=websub,
            )
            # Until `stop`; then the owned feeds' polls in progress get DRAIN_SHARE of the
            # shutdown budget to finish (publish, save their state) before the group is left.
            await run_fleet(
                settings,
                feeds,
                FeedTasks(fetcher, metrics, owned),
                seen,
                producer,
                sink.save_state,
                stop,
                release_budget_s=DRAIN_SHARE * budget,
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        parser.close()
        # Unacknowledged sends are abandoned past the budget (broker gone?).
        await close_within(producer.stop(), PRODUCER_SHARE * budget, "the Kafka producer")


# Shares of NEWSMON_SHUTDOWN_TIMEOUT_S: polls in progress first, then the producer's flush;
# the rest is headroom before the runner cancels the service (shared/lifecycle.py).
DRAIN_SHARE: Final = 0.5
PRODUCER_SHARE: Final = 0.3
