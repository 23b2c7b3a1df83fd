"""Kafka clients configured the one way newsmon uses them, topic creation, DLQ and headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .settings import Settings

__all__ = [
    "Headers",
    "dlq_headers",
    "ensure_topics",
    "header",
    "make_consumer",
    "make_producer",
]

log = logging.getLogger("newsmon.kafka")

Headers = list[tuple[str, bytes]]


def bootstrap_of(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise ValueError("no Kafka bootstrap servers configured (NEWSMON_KAFKA_BOOTSTRAP)")
    return settings.kafka_bootstrap


def make_producer(
    settings: Settings, *, client_id: str, transactional_id: str | None = None
) -> AIOKafkaProducer:
    """acks=all + idempotence: a send is acknowledged only once every in-sync replica has it,
    and broker-side retries never duplicate it."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_of(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        linger_ms=5,
        request_timeout_ms=30_000,
    )


def make_consumer(
    settings: Settings, *topics: str, group_id: str, client_id: str
) -> AIOKafkaConsumer:
    """Manual commits only (after the output is acknowledged) and read_committed, so aborted
    transactional output of a crashed upstream is never seen."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_of(settings),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=settings.batch_size,
    )


async def ensure_topics(settings: Settings, topics: Sequence[str] | None = None) -> list[str]:
    """Create the topics that are missing; returns the ones created. Safe to run concurrently."""
    wanted = list(topics or settings.topics.all())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(settings), client_id="newsmon-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return []
        new = [NewTopic(t, settings.topic_partitions, settings.topic_replication) for t in missing]
        # Another service may create them between our list and create: that is fine.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
        log.info("created topics", extra={"topics": missing})
        return missing
    finally:
        await admin.close()


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a group-less consumer safely. aiokafka 0.14's NoGroupCoordinator.close() cancels
    its reset-committed task and awaits it; if that task never got to run (a consumer stopped
    right after start), the await raises CancelledError into our task. One loop turn first
    lets the task start, so its own CancelledError handler runs."""
    await asyncio.sleep(0)
    await consumer.stop()


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode("utf-8", errors="replace")
    return None


def dlq_headers(record: ConsumerRecord[Any, Any], *, stage: str, error: BaseException) -> Headers:
    """Headers that say where a dead letter came from and why (the value is kept as it was)."""
    summary = "".join(traceback.format_exception_only(type(error), error)).strip()
    return [
        *list(record.headers or ()),
        ("dlq_stage", stage.encode()),
        ("dlq_error_type", type(error).__name__.encode()),
        ("dlq_error", summary[:1000].encode("utf-8", errors="replace")),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
    ]
