"""Feeds shared by any number of fetcher replicas, through Kafka alone (no coordinator of ours).

* The feed list is the compacted topic `<prefix>.feeds.v1`: key = feed name, value = the
  feed's config as JSON (`FeedRecord`), a tombstone removes it. `newsmon feeds add|remove|
  import-opml` write it; at start-up every fetcher imports the feeds file into it
  (`import_feeds_file`: only records whose value differs are written, so replicas starting
  together write nothing twice that matters).
* Every fetcher joins ONE consumer group on that topic (`<prefix>-fetcher`) and polls only the
  feeds of the partitions it holds (`FeedSource`). The producer's key hash puts a feed in one
  partition, and Kafka gives each partition to one member: a feed has one owner, the group
  spreads them, and a dead member's partitions go to the others after the session timeout.
* A partition's feeds are read from its beginning when it is assigned, then followed live: a
  feed added or changed reaches the owner within a poll of the group consumer, no restart.
* Handover. Before a partition is released (aiokafka's on_partitions_revoked, which Kafka's
  eager rebalance runs on every member before anything is reassigned), its feeds stop: a poll
  in progress may finish within half of NEWSMON_SHUTDOWN_TIMEOUT_S (then it is cancelled), the
  producer is flushed (every article sent is acknowledged) and each feed's latest state
  (validators, interval, back-off, next poll) is saved to `<prefix>.fetcher-state.v1`. The new
  owner, before its first poll of a feed it gains, catches its dedup memory up with the
  articles topic (`ArticlesTail`: what the old owner published is known, so nothing goes out
  twice even when the feed changed meanwhile) and reads the feed's latest state, whose
  next_poll_at it keeps: a feed is not polled again before its time. A killed owner saved its
  state after its last poll; its feeds wait the session timeout, then move the same way.

The pieces: `FeedTasks` runs the poll tasks of the feeds this replica owns (start, stop);
`FeedSource` turns the feeds topic and the group's assignment into those starts and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from newsmon.shared.backoff import Backoff
from newsmon.shared.kafka import make_consumer, make_producer, make_reader, stop_consumer
from newsmon.shared.metrics import Metrics
from newsmon.shared.services import client_id, consumer_group
from newsmon.shared.settings import Settings
from newsmon.shared.statetopic import (
    StateTopic,
    ensure_state_topic,
    read_to_end,
    topic_partitions,
    write_many,
)

from .feeds import FeedConfig, FeedRecord
from .state import FeedState, SeenIds, load_states, remember_article

__all__ = [
    "ArticlesTail",
    "FeedSource",
    "FeedTasks",
    "OwnedFeeds",
    "ensure_feeds_topic",
    "fetcher_group",
    "import_feeds_file",
    "plan_import",
    "read_feeds",
    "run_fleet",
    "write_feeds",
]

log = logging.getLogger("newsmon.fetcher")

# Longest wait for the dedup memory to reach the end of the articles topic before polling a
# gained feed; past it the feed is polled anyway (a duplicate is possible, an orphan is worse).
CATCH_UP_TIMEOUT_S = 30.0


def fetcher_group(settings: Settings) -> str:
    """The consumer group of every fetcher replica (named like the other services' groups)."""
    return consumer_group(settings.topic_prefix, "fetcher")


# --- the feeds topic ---------------------------------------------------------------------------


def feeds_topic(settings: Settings) -> StateTopic:
    """Compacted, no time limit, plain writes; partitioned so replicas can share the feeds."""
    return StateTopic(settings.topics.feeds, partitions=settings.feeds_topic_partitions)


async def ensure_feeds_topic(settings: Settings) -> None:
    await ensure_state_topic(settings, feeds_topic(settings))


async def read_feeds(settings: Settings) -> dict[str, FeedRecord]:
    """Every feed in the feeds topic now (latest value per name; unreadable ones left out)."""
    records: dict[str, FeedRecord] = {}

    def take(key: bytes | None, value: bytes | None) -> None:
        name = _name_of(key)
        if name is None:
            return
        if value is None:
            records.pop(name, None)
            return
        record = _record_of(name, value)
        if record is not None:
            records[name] = record

    await read_to_end(settings, feeds_topic(settings), take)
    return records


async def write_feeds(
    settings: Settings, upserts: Iterable[FeedRecord] = (), removals: Iterable[str] = ()
) -> int:
    """Write feeds (and tombstones for removed names) to the feeds topic, acknowledged;
    returns the number of records written."""
    await ensure_feeds_topic(settings)  # not auto-created by the broker with its defaults
    producer = make_producer(settings, client_id=f"newsmon-feeds.{settings.instance_id}")
    await producer.start()
    try:
        records: list[tuple[str | bytes, bytes | None]] = [
            (r.feed.name, r.to_json()) for r in upserts
        ]
        records += [(name, None) for name in removals]
        return await write_many(producer, feeds_topic(settings), records)
    finally:
        await producer.stop()


def plan_import(
    file_feeds: Iterable[FeedConfig], topic: Mapping[str, FeedRecord]
) -> tuple[list[FeedRecord], list[str]]:
    """What to write so that the topic holds the feeds file's feeds: the records that are new
    or differ, and the names imported from the file before that the file no longer lists.
    Feeds added with `newsmon feeds` (origin "cli") are left alone."""
    wanted = {f.name: FeedRecord(f, "file") for f in file_feeds}
    upserts = [record for name, record in wanted.items() if topic.get(name) != record]
    removals = [n for n, r in topic.items() if r.origin == "file" and n not in wanted]
    return upserts, removals


async def import_feeds_file(settings: Settings, feeds: list[FeedConfig]) -> None:
    """Bring the feeds file's feeds into the feeds topic (the list every replica polls)."""
    await ensure_feeds_topic(settings)  # also when nothing is written: the group needs it
    upserts, removals = plan_import(feeds, await read_feeds(settings))
    if upserts or removals:
        await write_feeds(settings, upserts, removals)
    log.info(
        "feeds file %s: %d feeds, %d written to %s, %d removed from it",
        settings.feeds_file,
        len(feeds),
        len(upserts),
        settings.topics.feeds,
        len(removals),
    )


def _name_of(key: bytes | None) -> str | None:
    return key.decode("utf-8", errors="replace") if key else None


def _record_of(name: str, value: bytes) -> FeedRecord | None:
    """The record of a feeds-topic value, or None (one log line) when it is unusable."""
    try:
        record = FeedRecord.from_json(value)
    except ValueError as exc:
        log.warning("feeds topic: ignoring the record of feed %s: %s", name, exc)
        return None
    if record.feed.name != name:
        log.warning("feeds topic: ignoring a record keyed %s for feed %s", name, record.feed.name)
        return None
    return record


# --- the dedup memory, kept current with every replica's articles ------------------------------


class ArticlesTail:
    """Follows the articles topic from where `load_seen_ids` stopped and adds every article to
    the dedup memory, whichever replica published it: a feed that moves here is not published
    again, and two replicas' feeds carrying one article mostly publish it once (two polls in
    the same second can still both publish it: same id, consumers dedupe by id).

    A live tail, so not shared/statetopic.py's read to the end: it never ends and has no idle
    cap (a quiet topic is normal); `catch_up` waits for the ends asked at its call."""

    def __init__(self, settings: Settings, seen: SeenIds) -> None:
        self.settings = settings
        self.seen = seen
        self._consumer: AIOKafkaConsumer | None = None
        self._next: dict[TopicPartition, int] = {}  # offset of the next record to read
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        topic = self.settings.topics.articles
        consumer = make_reader(
            self.settings,
            client_id=f"newsmon-fetcher-tail.{self.settings.instance_id}",
            auto_offset_reset="latest",  # aiokafka's default, as this tail always had
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in await topic_partitions(self.settings, topic)]
            consumer.assign(tps)
            for tp in tps:
                offset = self.seen.offsets.get(tp.partition)
                if offset is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
                self._next[tp] = await consumer.position(tp)
        except BaseException:
            await stop_consumer(consumer)
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(consumer), name="articles-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await stop_consumer(self._consumer)
        # A tail started again later goes on from here.
        self.seen.offsets.update({tp.partition: offset for tp, offset in self._next.items()})

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for records in batch.values():
                    for record in records:
                        remember_article(self.seen, record.key, record.value)
                # shared/statetopic's end rule: the position, which steps over markers.
                for tp in self._next:
                    self._next[tp] = await consumer.position(tp)
            except KafkaError as exc:
                log.warning(
                    "reading %s for the dedup memory: %s", self.settings.topics.articles, exc
                )
                await asyncio.sleep(1.0)
                continue
            self._progress.set()

    async def catch_up(self, timeout_s: float = CATCH_UP_TIMEOUT_S) -> bool:
        """Wait until every article acknowledged before this call is in the dedup memory;
        False when that took longer than `timeout_s` (or the end could not be asked)."""
        if self._consumer is None or not self._next:
            return True
        try:
            ends = await self._consumer.end_offsets(list(self._next))
            async with asyncio.timeout(timeout_s):
                while any(self._next[tp] < end for tp, end in ends.items()):
                    self._progress.clear()
                    await self._progress.wait()
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "the dedup memory did not reach the end of %s (%s): an article may be "
                "published twice",
                self.settings.topics.articles,
                type(exc).__name__,
            )
            return False
        return True


# --- the poll tasks of the feeds this replica owns ---------------------------------------------


@dataclass(frozen=True, slots=True)
class OwnedFeeds:
    """The feeds this replica polls now, with their states: live views that FeedTasks keeps
    and WebSub reads (made first, so both are built finished)."""

    feeds: dict[str, FeedConfig] = field(default_factory=dict)
    states: dict[str, FeedState] = field(default_factory=dict)


class Poller(Protocol):
    """What FeedTasks needs of the fetcher: `Fetcher` satisfies it."""

    async def poll_forever(
        self, feed: FeedConfig, state: FeedState, stop: asyncio.Event
    ) -> None: ...

    def release_feed(self, feed: FeedConfig) -> None: ...


# The sink's save_state: the feed's state to the compacted state topic, acknowledged.
SaveState = Callable[[str, FeedState], Awaitable[None]]


class FeedTasks:
    """One poll task per owned feed, started with its state and stopped on demand.

    The tasks started since the last full stop share one stop event (a "lease"): stopping
    them all (a rebalance, shutdown) lets each poll in progress finish, as a shutdown does,
    with one event for thousands of feeds. Stopping a few (a feed removed or changed) cancels
    them where they stand; the caller flushes the producer afterwards."""

    def __init__(self, poller: Poller, metrics: Metrics, owned: OwnedFeeds | None = None) -> None:
        self.poller = poller
        self.metrics = metrics
        owned = owned or OwnedFeeds()
        self.feeds = owned.feeds  # live views: WebSub reads them
        self.states = owned.states
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lease = asyncio.Event()

    def start(self, feed: FeedConfig, state: FeedState) -> None:
        if feed.name in self._tasks:
            raise ValueError(f"feed {feed.name} is polled already")
        self.feeds[feed.name] = feed
        self.states[feed.name] = state
        self._tasks[feed.name] = asyncio.create_task(
            self.poller.poll_forever(feed, state, self._lease), name=f"feed:{feed.name}"
        )
        self.metrics.fleet_feeds.set(len(self._tasks))

    async def stop(self, names: Collection[str], budget_s: float) -> dict[str, FeedState]:
        """Stop polling `names`; returns their latest states. All of them: polls in progress
        get `budget_s` to finish. Some: cancelled at once."""
        names = [n for n in names if n in self._tasks]
        tasks = [self._tasks[n] for n in names]
        if tasks and len(tasks) == len(self._tasks):
            self._lease.set()
            self._lease = asyncio.Event()
            _, late = await asyncio.wait(tasks, timeout=budget_s)
            if late:
                log.warning(
                    "%d polls still in progress after %.1fs: cancelled (their feeds are "
                    "polled again by their next owner)",
                    len(late),
                    budget_s,
                )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        states: dict[str, FeedState] = {}
        for name in names:
            del self._tasks[name]
            self.poller.release_feed(self.feeds.pop(name))
            states[name] = self.states.pop(name)
            self.metrics.forget_feed(name)
        self.metrics.fleet_feeds.set(len(self._tasks))
        return states

    def __len__(self) -> int:
        return len(self._tasks)


# --- the feeds topic and the group's assignment → starts and stops -----------------------------


class FeedSource(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Polls (through `tasks`) exactly the enabled feeds of the feeds-topic partitions this
    replica holds in the fetcher group, following the topic live.

    All changes to what runs happen under one lock: in `run`'s loop (records read, partitions
    loaded, feeds started or stopped) and in the rebalance callbacks, so a feed being started
    when its partition is revoked is stopped before the partition goes."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        tasks: FeedTasks,
        tail: ArticlesTail,
        producer: AIOKafkaProducer,
        save_state: SaveState,
        *,
        release_budget_s: float,
    ) -> None:
        """`release_budget_s`: how long polls in progress may take to finish when their feeds
        are released (then they are cancelled)."""
        self.settings = settings
        self.metrics = metrics
        self.tasks = tasks
        self.tail = tail
        self.producer = producer
        self.save_state = save_state
        self.topic = settings.topics.feeds
        self.release_budget_s = release_budget_s
        self._lock = asyncio.Lock()
        self._owned: set[int] = set()  # partitions held
        self._unloaded: set[int] = set()  # held; not yet sought to their beginning
        self._ends: dict[int, int] = {}  # held, being read: the offset where their feeds start
        self._next: dict[int, int] = {}  # next offset to read per held partition
        self._table: dict[int, dict[str, FeedRecord]] = {}  # feeds per held partition
        self._partition_of: dict[str, int] = {}  # running feed -> its partition

    # --- rebalance callbacks (run by the consumer's coordinator) ---

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            await self._release({tp.partition for tp in revoked if tp.topic == self.topic})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            gained = {tp.partition for tp in assigned if tp.topic == self.topic}
            self._owned |= gained
            self._unloaded |= gained
            self.metrics.fleet_partitions.set(len(self._owned))
            log.info(
                "holding %d partitions of %s: %s",
                len(self._owned),
                self.topic,
                ",".join(map(str, sorted(self._owned))) or "none",
            )

    # --- the loop ---

    async def run(self, stop: asyncio.Event) -> None:
        consumer = make_consumer(
            self.settings,
            group_id=fetcher_group(self.settings),
            client_id=client_id(self.settings.topic_prefix, "fetcher", self.settings.instance_id),
        )
        consumer.subscribe([self.topic], listener=self)
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                async with self._lock:
                    self._apply(batch)
                    await self._note_positions(consumer)
                    await self._seek_new(consumer)
                    await self._reconcile()
                if batch:
                    await _commit(consumer)
        finally:
            # close() does not call on_partitions_revoked: hand the feeds over here, then
            # leave the group (the others get them at once, not after the session timeout).
            async with self._lock:
                await self._release(set(self._owned))
            await consumer.stop()

    def _apply(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        for tp, records in batch.items():
            if tp.partition not in self._owned or tp.partition in self._unloaded:
                continue
            table = self._table.setdefault(tp.partition, {})
            for record in records:
                name, value = _name_of(record.key), record.value
                if name is None:
                    continue
                if value is None:
                    table.pop(name, None)
                elif (parsed := _record_of(name, value)) is not None:
                    table[name] = parsed
            if records:
                self._next[tp.partition] = records[-1].offset + 1

    async def _note_positions(self, consumer: AIOKafkaConsumer) -> None:
        """Partitions still being read up to their end: their position, by shared/statetopic's
        end rule (`position()` steps over offsets no record is returned for: commit markers,
        records compacted away), so the end is reached even when the record at end-1 is not
        returned. The feeds topic is otherwise followed live: it never ends."""
        for partition in list(self._ends):
            try:
                position = await consumer.position(TopicPartition(self.topic, partition))
            except (KafkaError, IllegalStateError):
                continue  # being revoked or not sought yet: next round
            self._next[partition] = max(self._next.get(partition, 0), position)

    async def _seek_new(self, consumer: AIOKafkaConsumer) -> None:
        """Read newly assigned partitions from their beginning: their feeds start once the
        end they had now is reached (so a feed removed later in the log never starts)."""
        if not self._unloaded:
            return
        tps = [TopicPartition(self.topic, p) for p in sorted(self._unloaded)]
        try:
            if not await consumer.seek_to_beginning(*tps):
                return  # not done yet: next round
            ends = await consumer.end_offsets(tps)
            starts = {tp: await consumer.position(tp) for tp in tps}
        except (KafkaError, IllegalStateError) as exc:
            log.warning("cannot read the feeds of %s yet: %s", self.topic, exc)
            return
        for tp in tps:
            self._table[tp.partition] = {}
            self._next[tp.partition] = starts[tp]
            self._ends[tp.partition] = ends[tp]
            self._unloaded.discard(tp.partition)

    def _loaded(self) -> set[int]:
        for partition, end in list(self._ends.items()):
            if self._next.get(partition, 0) >= end:
                del self._ends[partition]
        return self._owned - self._unloaded - set(self._ends)

    async def _reconcile(self) -> None:
        """Start the owned enabled feeds not polled yet; stop those removed or changed."""
        wanted: dict[str, tuple[int, FeedConfig]] = {
            name: (partition, record.feed)
            for partition in self._loaded()
            for name, record in self._table.get(partition, {}).items()
            if record.feed.enabled
        }
        changed = [n for n, f in self.tasks.feeds.items() if wanted.get(n, (0, None))[1] != f]
        kept: dict[str, FeedState] = {}
        if changed:
            kept = await self.tasks.stop(changed, self.release_budget_s)
            await self.producer.flush()  # what a cancelled poll sent is acknowledged
            for name in changed:
                self._partition_of.pop(name, None)
                how = "changed: restarting it" if name in wanted else "removed or disabled"
                log.info("feed %s %s", name, how, extra={"feed": name})
            self.metrics.fleet_handovers.labels("removed").inc(len(changed))
        new = {n: pf for n, pf in wanted.items() if n not in self.tasks.feeds}
        if not new:
            return
        await self.tail.catch_up()
        try:
            states = await load_states(self.settings, new.keys())
        except KafkaError as exc:
            log.warning("cannot read the fetcher state yet (%s): will start the feeds later", exc)
            return
        states.update(kept)  # the in-memory state of a feed restarted here is the latest
        for name, (partition, feed) in new.items():
            self.tasks.start(feed, states.get(name, FeedState(url=feed.url)).for_url(feed.url))
            self._partition_of[name] = partition
        self.metrics.fleet_handovers.labels("gained").inc(len(new.keys() - kept.keys()))
        log.info("polling %d more feeds (%d in all)", len(new), len(self.tasks))

    async def _release(self, partitions: set[int]) -> None:
        """Stop the feeds of `partitions`, make what they did durable, then forget them."""
        names = [n for n, p in self._partition_of.items() if p in partitions]
        if names:
            states = await self.tasks.stop(names, self.release_budget_s)
            try:
                await self.producer.flush()
                await asyncio.gather(*(self.save_state(n, s) for n, s in states.items()))
            except KafkaError as exc:
                log.warning(
                    "could not save the state of the feeds handed over (%s): their next "
                    "owner starts from their state after their last poll",
                    exc,
                )
            for name in names:
                del self._partition_of[name]
            self.metrics.fleet_handovers.labels("released").inc(len(names))
            log.info("released %d feeds (%d still polled here)", len(names), len(self.tasks))
        self._owned -= partitions
        self._unloaded -= partitions
        for partition in partitions:
            self._ends.pop(partition, None)
            self._next.pop(partition, None)
            self._table.pop(partition, None)
        self.metrics.fleet_partitions.set(len(self._owned))


async def _commit(consumer: AIOKafkaConsumer) -> None:
    """Commit the group's positions. Never read back (an assigned partition is read from its
    beginning); only so that lag tools (kafka-consumer-groups, exporters) show the fetcher
    group caught up instead of a lag of the whole topic. Outside the lock: a commit during a
    rebalance must not wait on a revoke callback that waits on the lock."""
    with contextlib.suppress(KafkaError, TimeoutError):
        async with asyncio.timeout(10.0):  # not wait_for: see shared.lifecycle.sleep_or_stop
            await consumer.commit()


async def run_fleet(
    settings: Settings,
    feeds: list[FeedConfig],
    tasks: FeedTasks,
    seen: SeenIds,
    producer: AIOKafkaProducer,
    save_state: SaveState,
    stop: asyncio.Event,
    *,
    release_budget_s: float,
) -> None:
    """Import the feeds file's `feeds`, then poll this replica's share of all feeds until
    `stop`. Kafka failing under it (the group consumer cannot start, the broker went away for
    good) hands the feeds over as a rebalance does and joins again after a pause."""
    imported = False
    rejoin = Backoff(first_s=1.0, cap_s=30.0)  # source.run returns on stop or raises
    while not stop.is_set():
        tail = ArticlesTail(settings, seen)
        try:
            if not imported:
                await import_feeds_file(settings, feeds)
                imported = True
            await tail.start()
            source = FeedSource(
                settings,
                tasks.metrics,
                tasks,
                tail,
                producer,
                save_state,
                release_budget_s=release_budget_s,
            )
            await source.run(stop)
        except KafkaError as exc:
            log.warning(
                "fetcher fleet: Kafka failed (%s); joining again in %.0fs", exc, rejoin.delay_s
            )
        finally:
            await tail.stop()
        await rejoin.pause(stop)
