"""The one store on compacted Kafka topics: create the topic, read it back whole, write to it.

newsmon keeps its state in Kafka itself (no database to run): the fetcher's feed states, the
alerter's stories, the notifier's delivery markers, and the feed list are compacted topics
whose key names a thing and whose latest value per key wins (a null value, a tombstone,
forgets it). Kafka's log compaction keeps only that latest value ("Log Compaction",
kafka.apache.org/documentation/#compaction); `cleanup.policy=compact,delete` also drops
records older than `retention.ms`, so state outside every window does not pile up.

Reading "to the end" has one rule here, for both kinds of topic:

* the end of a partition is what ListOffsets answers for the reader's isolation level, asked
  once when the read begins. aiokafka 0.14 sends the consumer's isolation level with
  ListOffsets (`consumer/fetcher.py` `_proc_offset_request`), so under `read_committed` the
  broker answers the **last stable offset** (LSO: the first offset of a transaction still
  open, or the high watermark when none is; KIP-98), under `read_uncommitted` the high
  watermark;
* the read is done with a partition once the consumer's `position()` reached that end.
  `position()` is the offset after what `getmany` has *returned*, not what was prefetched:
  aiokafka moves it (`FetchResult._update_position`) from `PartitionRecords.next_fetch_offset`,
  which also steps over control batches (commit/abort markers), batches of aborted
  transactions and batches emptied by compaction. So a partition whose last offset is a commit
  marker (every transactional topic: the marker takes the last offset and is never handed to
  the application) still reaches its end; the rule "the record at end-1 was returned" never
  would, and waited for a timeout instead.

What differs per kind (`StateTopic.transactional`):

* **transactional** (written inside Kafka transactions: the alerter's stories): read with
  `read_committed`, the end is the LSO. Records of a transaction still open are neither read
  nor waited for; call the read after the writer's transactional producer started, since
  starting it aborts (or completes) what a killed predecessor left open.
* **plain** (acks=all idempotent writes: fetcher state, markers, feeds, articles): the
  isolation level changes nothing (LSO = high watermark); `read_committed` as well, so a
  topic that is later written transactionally is still read right.

A read never hangs: when no partition moves for `idle_cap_s` (a broker that stopped answering
fetches while ListOffsets worked), it raises StateReadStalledError, a KafkaError, which every
caller already retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from .kafka import (
    ENSURE_TOPICS_RETRY_S,
    create_topics,
    ensure_topics,
    make_admin,
    make_reader,
    new_topic,
    retry_transient,
    seek_to_time,
    stop_consumer,
)
from .lifecycle import sleep_or_stop
from .settings import Settings

__all__ = [
    "READ_IDLE_CAP_S",
    "StateReadStalledError",
    "StateTopic",
    "ensure_output_topics",
    "ensure_state_topic",
    "read_latest",
    "read_to_end",
    "scan_to_end",
    "tombstone",
    "topic_partitions",
    "wait_for_partitions",
    "write",
    "write_many",
]

log = logging.getLogger("newsmon.statetopic")

# Longest time a read waits without any partition moving before it gives up (StateReadStalledError).
READ_IDLE_CAP_S = 30.0

# A restore reads the whole topic: 16 MiB per fetch instead of aiokafka's 1 MiB cuts the round
# trips (a standby alerter taking over waits for them; docs/SCALING.md).
READ_FETCH_BYTES = 16 * 1024 * 1024

OnRecord = Callable[[bytes | None, bytes | None], None]


class StateReadStalledError(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """A read to the end made no progress for the idle cap (retried like any KafkaError)."""


@dataclass(frozen=True)
class StateTopic:
    """A compacted topic as newsmon creates and reads it.

    `retention_ms` None: compaction only (the latest value per key kept for ever); a number:
    `compact,delete`, records older than that dropped too. One partition by default: each
    state topic has one writer (docs/ARCHITECTURE.md) and reading it whole is the common case.
    """

    name: str
    transactional: bool = False
    partitions: int = 1
    retention_ms: int | None = None

    def configs(self) -> dict[str, str]:
        if self.retention_ms is None:
            return {"cleanup.policy": "compact"}
        return {"cleanup.policy": "compact,delete", "retention.ms": str(self.retention_ms)}

    @property
    def isolation_level(self) -> str:
        # Both kinds read committed data only (see the module docstring for why plain too).
        return "read_committed"


async def ensure_state_topic(settings: Settings, topic: StateTopic) -> bool:
    """Create the compacted topic if it is missing; True when this call created it. Safe to
    run concurrently (another process creating it first is fine); a broker that is not ready
    yet is retried like in `ensure_topics`."""
    return await retry_transient(
        lambda: _create_if_missing(settings, topic),
        what=f"create topic {topic.name}",
        bound_s=ENSURE_TOPICS_RETRY_S,
    )


async def ensure_output_topics(
    settings: Settings, topics: Sequence[str], state_topics: Iterable[StateTopic]
) -> None:
    """Create those of a service's output `topics` that are missing: the ones named by one of
    its `state_topics` compacted as that StateTopic says, the others as plain topics
    (shared/kafka.ensure_topics). For `wait_for_leaders`' and the Processor's create hooks."""
    compacted = {topic.name: topic for topic in state_topics}
    plain = [name for name in topics if name not in compacted]
    if plain:
        await ensure_topics(settings, plain)
    for name in topics:
        if name in compacted:
            await ensure_state_topic(settings, compacted[name])


async def _create_if_missing(settings: Settings, topic: StateTopic) -> bool:
    admin = make_admin(settings, client_id="newsmon-state-admin")
    try:
        await admin.start()
        if topic.name in set(await admin.list_topics()):
            return False
        await create_topics(
            admin, [new_topic(settings, topic.name, topic.partitions, topic.configs())]
        )
        log.info("created topic %s (%s)", topic.name, topic.configs()["cleanup.policy"])
        return True
    finally:
        await admin.close()


async def topic_partitions(settings: Settings, topic: str) -> list[int]:
    """The partitions of `topic` ([] when it does not exist). Asked of the broker directly:
    a consumer's cached metadata can show a topic created moments ago with no partitions yet
    (leader not elected), which would silently skip its records."""
    admin = make_admin(settings, client_id="newsmon-state-admin")
    await admin.start()
    try:
        for _ in range(100):
            [described] = await admin.describe_topics([topic])
            if described["error_code"] == 3:  # UNKNOWN_TOPIC_OR_PARTITION: nothing to read
                return []
            found = [p["partition"] for p in described["partitions"] if p["error_code"] == 0]
            if described["error_code"] == 0 and found:
                return sorted(found)
            await asyncio.sleep(0.1)  # leader election after creation
        raise KafkaError(f"topic {topic} has no readable partitions")
    finally:
        await admin.close()


async def wait_for_partitions(
    settings: Settings,
    topic: str,
    *,
    every_s: float,
    on_missing: Callable[[], None],
    stop: asyncio.Event | None = None,
) -> list[int]:
    """The partitions of `topic`, for a reader that waits for a topic not created yet: asked
    again every `every_s` (`on_missing` called once, to say so) until it exists; [] when
    `stop` is set first."""
    said = False
    while not (partitions := await topic_partitions(settings, topic)):
        if not said:
            on_missing()
            said = True
        if stop is None:
            await asyncio.sleep(every_s)
        else:
            await sleep_or_stop(stop, every_s)
            if stop.is_set():
                return []
    return partitions


async def read_to_end(
    settings: Settings,
    topic: StateTopic | str,
    on_record: OnRecord,
    *,
    idle_cap_s: float = READ_IDLE_CAP_S,
    client_id: str = "newsmon-state-reader",
) -> dict[int, int]:
    """Hand every record of `topic` (key, value) to `on_record`, in offset order per
    partition, from the beginning to the end it had when the read began (the rule: module
    docstring); returns that end offset of each partition. A plain name is read as a plain
    topic (the articles topic)."""

    def take(record: ConsumerRecord[bytes, bytes]) -> bool:
        on_record(record.key, record.value)
        return True

    return await scan_to_end(settings, topic, take, idle_cap_s=idle_cap_s, client_id=client_id)


async def scan_to_end(
    settings: Settings,
    topic: StateTopic | str,
    handle: Callable[[ConsumerRecord[bytes, bytes]], bool],
    *,
    since_ms: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    idle_cap_s: float = READ_IDLE_CAP_S,
    client_id: str = "newsmon-state-reader",
) -> dict[int, int]:
    """`read_to_end` for readers that want whole records: from the first record at or after
    `since_ms` (Unix ms; None: the beginning) to the end each partition had when the read
    began; `handle` returning False ends the read of that record's partition (a time window
    that is over). `on_progress(done, total)` after each batch. Returns the end offsets."""
    spec = topic if isinstance(topic, StateTopic) else StateTopic(topic)
    partitions = await topic_partitions(settings, spec.name)
    if not partitions:
        return {}
    consumer = make_reader(
        settings,
        # Records dropped by retention under our feet: go on from the new start (earliest).
        client_id=f"{client_id}.{settings.instance_id}",
        isolation_level=spec.isolation_level,
        max_partition_fetch_bytes=READ_FETCH_BYTES,
        fetch_max_bytes=READ_FETCH_BYTES,
    )
    try:
        await consumer.start()  # inside: a start cut short (SIGTERM, frozen broker) closes too
        tps = [TopicPartition(spec.name, p) for p in partitions]
        consumer.assign(tps)
        # Seek first, then ask for the ends: the other order (aiokafka 0.13, Kafka 4.1) left
        # the consumer at the end offsets without returning a record.
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        if since_ms is not None:
            await seek_to_time(consumer, tps, since_ms)
        await _drain(consumer, ends, handle, idle_cap_s, on_progress)
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await stop_consumer(consumer)


async def _drain(
    consumer: AIOKafkaConsumer,
    ends: dict[TopicPartition, int],
    handle: Callable[[ConsumerRecord[bytes, bytes]], bool],
    idle_cap_s: float,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    positions = {tp: await consumer.position(tp) for tp in ends}
    total = sum(max(end - positions[tp], 0) for tp, end in ends.items())
    remaining = {tp for tp, end in ends.items() if positions[tp] < end}
    done, moved_at = 0, time.monotonic()
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)
        for tp, records in batch.items():
            for record in records:
                # Written after the read began: the next read's (or a tail's) to take.
                if record.offset >= ends[tp] or not handle(record):
                    remaining.discard(tp)
                    break
                done += 1
        for tp in list(remaining):
            position = await consumer.position(tp)
            if position != positions[tp]:
                positions[tp], moved_at = position, time.monotonic()
            if position >= ends[tp]:
                remaining.discard(tp)
        if on_progress is not None:
            on_progress(done, total)
        if remaining and time.monotonic() - moved_at > idle_cap_s:
            where = ", ".join(f"{tp.partition}@{positions[tp]}/{ends[tp]}" for tp in remaining)
            raise StateReadStalledError(
                f"reading {next(iter(remaining)).topic} made no progress for {idle_cap_s:.0f}s "
                f"(partition@position/end: {where})"
            )


async def read_latest(
    settings: Settings, topic: StateTopic, *, idle_cap_s: float = READ_IDLE_CAP_S
) -> dict[bytes, bytes | None]:
    """The latest value per key (None: a tombstone) of the whole topic, read to its end.
    Records without a key are left out (a compacted topic refuses them anyway)."""
    latest: dict[bytes, bytes | None] = {}

    def take(key: bytes | None, value: bytes | None) -> None:
        if key is not None:
            latest[bytes(key)] = value

    await read_to_end(settings, topic, take, idle_cap_s=idle_cap_s)
    return latest


def _bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


async def write(
    producer: AIOKafkaProducer, topic: StateTopic | str, key: str | bytes, value: bytes | None
) -> None:
    """Write one record and wait for its acknowledgement (KafkaError when not acknowledged)."""
    name = topic.name if isinstance(topic, StateTopic) else topic
    await producer.send_and_wait(name, value, key=_bytes(key))


async def tombstone(producer: AIOKafkaProducer, topic: StateTopic | str, key: str | bytes) -> None:
    """Forget `key` (a null value; compaction drops the key after delete.retention.ms)."""
    await write(producer, topic, key, None)


async def write_many(
    producer: AIOKafkaProducer,
    topic: StateTopic | str,
    records: Iterable[tuple[str | bytes, bytes | None]],
) -> int:
    """Write many records (value None: a tombstone) as one stream of sends, then wait for
    every acknowledgement: the producer batches them (linger, max batch size) instead of one
    round trip each. Returns how many were written; raises the first failure once every
    send was awaited (none left with an unread exception). Keys of one partition keep their
    order (idempotent producer), so the last write of a key wins."""
    name = topic.name if isinstance(topic, StateTopic) else topic
    pending: list[asyncio.Future[Any]] = []
    failure: BaseException | None = None
    for key, value in records:
        try:
            pending.append(await producer.send(name, value, key=_bytes(key)))
        except KafkaError as exc:
            failure = exc
            break
    results = await asyncio.gather(*pending, return_exceptions=True)
    failure = failure or next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        raise failure
    return len(pending)
