"""State topics of the alerter and the notifier: compacted topics read back at start-up.

The topic is the state (no extra store to run, as the fetcher does with its articles topic):
each record's key names a thing (a story, a delivered alert), the latest value per key wins,
and Kafka's log compaction keeps only that latest value ("Log Compaction",
kafka.apache.org/documentation/#compaction). `cleanup.policy=compact,delete` also drops records
older than `retention.ms`, so state outside every window does not accumulate for ever.
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import TopicAlreadyExistsError
from newsmon.shared.kafka import client_kwargs, make_admin, new_topic, stop_consumer
from newsmon.shared.settings import Settings

__all__ = ["ensure_state_topic", "read_state_topic"]

log = logging.getLogger("newsmon.alerter.state")

STATE_FETCH_BYTES = 16 * 1024 * 1024


async def ensure_state_topic(settings: Settings, topic: str, *, retention_ms: int) -> bool:
    """Create the compacted state topic if it is missing; True when this call created it.

    One partition: each state topic has one writer (see docs/ARCHITECTURE.md), and reading it
    back whole at start-up is the common case.
    """
    admin = make_admin(settings)
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            return False
        new = new_topic(
            settings,
            topic,
            1,
            {"cleanup.policy": "compact,delete", "retention.ms": str(retention_ms)},
        )
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([new])
        log.info("created state topic %s", topic)
        return True
    finally:
        await admin.close()


async def read_state_topic(settings: Settings, topic: str) -> dict[bytes, bytes | None]:
    """Latest committed value per key (None: a tombstone), read from the start to the end.

    read_committed, and the end is the last stable offset (aiokafka's ListOffsets carries the
    consumer's isolation level): records of a transaction still open are not waited for and not
    read. Call this after the writer's transactional producer started: starting it aborts (or
    completes) whatever transaction a killed predecessor left open, so nothing is pending.
    """
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id=f"newsmon-state-reader.{settings.instance_id}",
        # A restore reads the whole topic: 16 MiB per fetch instead of aiokafka's 1 MiB cuts
        # the round trips (a standby taking over waits for them; docs/SCALING.md).
        max_partition_fetch_bytes=STATE_FETCH_BYTES,
        fetch_max_bytes=STATE_FETCH_BYTES,
    )
    latest: dict[bytes, bytes | None] = {}
    try:
        await consumer.start()  # inside: a start cut short (SIGTERM, frozen broker) closes too
        tps = [TopicPartition(topic, p) for p in await _partitions(settings, topic)]
        if not tps:
            return latest
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key is not None:
                        latest[bytes(record.key)] = record.value
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await stop_consumer(consumer)
    return latest


async def _partitions(settings: Settings, topic: str) -> list[int]:
    """The topic's partition numbers, from a fresh metadata request (it may be brand new)."""
    admin = make_admin(settings)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        int(p["partition"]) for t in described if t.get("topic") == topic for p in t["partitions"]
    )
