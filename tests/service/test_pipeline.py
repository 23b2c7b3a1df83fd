"""The consume-transform-produce loop on the real broker: outputs, DLQ, offsets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from newsmon.shared.kafka import ensure_topics, header
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Output, Processor, Record, Transform
from newsmon.shared.settings import Settings

from tests.support.kafka_read import read_topic
from tests.support.kafka_write import produce

pytestmark = pytest.mark.kafka


def upper_or_refuse(target: str):  # type: ignore[no-untyped-def]
    def transform(record: Record) -> Sequence[Output]:
        if record.value == b"poison":
            raise ValueError("cannot digest this")
        return (Output(target, record.key, record.value.upper()),)

    return transform


async def _produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    await produce(bootstrap, topic, [(f"k{i}".encode(), value) for i, value in enumerate(values)])


async def _committed_total(settings: Settings, topic: str, group: str) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        total = 0
        for p in range(settings.topic_partitions):
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def running(
    settings: Settings, service: str, transform: Transform, metrics: Metrics | None = None
) -> AsyncIterator[Processor]:
    """A Processor running as a task on `settings`' topics; stopped and awaited on exit."""
    stop = asyncio.Event()
    processor = Processor(
        settings=settings,
        service=service,
        source_topic=settings.topics.articles,
        transform=transform,
        metrics=metrics or Metrics(),
        stop=stop,
    )
    task = asyncio.create_task(processor.run())
    try:
        yield processor
        assert not task.done(), task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=40)


@pytest.mark.parametrize("transactions", [True, False], ids=["transactional", "at-least-once"])
async def test_outputs_dead_letters_and_offsets(
    kafka_settings: Settings, transactions: bool
) -> None:
    settings = kafka_settings.with_overrides(kafka_transactions=transactions)
    topics = settings.topics
    await ensure_topics(settings)
    bootstrap = settings.kafka_bootstrap or ""
    await _produce(bootstrap, topics.articles, [b"one", b"poison", b"two", b"three"])

    metrics = Metrics()
    async with running(settings, "test", upper_or_refuse(topics.classified), metrics) as processor:
        out = await read_topic(
            bootstrap, topics.classified, until=lambda rs: len(rs) >= 3, timeout_s=60, settle_s=1.0
        )
        dead = await read_topic(bootstrap, topics.dlq, until=lambda rs: len(rs) >= 1, timeout_s=30)
    assert sorted(r.value for r in out) == [b"ONE", b"THREE", b"TWO"]
    assert len(dead) == 1
    assert dead[0].value == b"poison", "a dead letter keeps the original bytes"
    assert header(dead[0], "dlq_stage") == "test"
    assert header(dead[0], "dlq_error_type") == "ValueError"
    assert "cannot digest this" in (header(dead[0], "dlq_error") or "")
    assert header(dead[0], "dlq_topic") == topics.articles
    assert (
        metrics.registry.get_sample_value(
            "newsmon_dlq_messages_total", {"service": "test", "reason": "ValueError"}
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "newsmon_items_in_total", {"service": "test", "topic": topics.articles}
        )
        == 4
    )
    # Every input, the poison one included, is committed: nothing is read twice on restart.
    assert await _committed_total(settings, topics.articles, processor.group_id) == 4
    # Each batch's size and its two steps are observed once per batch.
    batches = metrics.registry.get_sample_value("newsmon_batch_records_count", {"service": "test"})
    assert metrics.registry.get_sample_value("newsmon_batch_records_sum", {"service": "test"}) == 4
    for step in ("transform", "publish"):
        labels = {"service": "test", "step": step}
        assert metrics.registry.get_sample_value("newsmon_batch_step_seconds_count", labels) == (
            batches
        )


async def test_a_fenced_producer_is_replaced_and_nothing_is_lost(kafka_settings: Settings) -> None:
    """Another producer with the same transactional id bumps the epoch (as a restarted replica
    would): the processor's next transaction is fenced; it starts a fresh producer, replays the
    batch, and a read_committed reader sees every output exactly once."""
    settings = kafka_settings.with_overrides(kafka_transactions=True)
    topics = settings.topics
    await ensure_topics(settings)
    bootstrap = settings.kafka_bootstrap or ""
    async with running(settings, "fenced", upper_or_refuse(topics.classified)) as processor:
        await _produce(bootstrap, topics.articles, [b"a1", b"a2"])
        await read_topic(bootstrap, topics.classified, until=lambda rs: len(rs) >= 2, timeout_s=60)
        intruder = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            transactional_id=processor._transactional_id(),
        )
        await intruder.start()  # InitProducerId: the processor's producer is now fenced
        await intruder.stop()
        await _produce(bootstrap, topics.articles, [b"b1", b"b2"])
        out = await read_topic(
            bootstrap, topics.classified, until=lambda rs: len(rs) >= 4, timeout_s=90, settle_s=1.0
        )
    assert sorted(r.value for r in out) == [b"A1", b"A2", b"B1", b"B2"]


@pytest.mark.parametrize("transactions", [True, False], ids=["transactional", "at-least-once"])
async def test_a_producer_whose_sender_died_is_replaced(
    kafka_settings: Settings, transactions: bool
) -> None:
    """aiokafka's sender task ends for good on an error it does not expect ("Unexpected error
    during batch delivery"): a transactional producer is then in FATAL_ERROR (begin_transaction
    fails an assertion), an idempotent one never sends again. The processor must notice, start
    a fresh producer and go on, not die or time out for ever."""
    settings = kafka_settings.with_overrides(kafka_transactions=transactions)
    topics = settings.topics
    await ensure_topics(settings)
    bootstrap = settings.kafka_bootstrap or ""
    async with running(settings, "sender-died", upper_or_refuse(topics.classified)) as processor:
        await _produce(bootstrap, topics.articles, [b"a1"])
        await read_topic(bootstrap, topics.classified, until=lambda rs: len(rs) >= 1, timeout_s=60)
        producer = processor._producer
        assert producer is not None
        # The sender routine ends with an error; then what Sender._fail_all does.
        sender_task = producer._sender.sender_task
        sender_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender_task
        died = KafkaError("Unexpected error during batch delivery")
        producer._message_accumulator.fail_all(died)
        txn = producer._txn_manager
        if txn is not None and txn.transactional_id is not None:
            txn.fatal_error(died)
            txn._transaction_waiter.exception()  # retrieved: no "never retrieved" noise
        await _produce(bootstrap, topics.articles, [b"b1", b"b2"])
        out = await read_topic(
            bootstrap, topics.classified, until=lambda rs: len(rs) >= 3, timeout_s=25, settle_s=1.0
        )
    assert sorted(r.value for r in out) == [b"A1", b"B1", b"B2"]


async def test_an_output_too_large_for_kafka_is_dead_lettered_not_retried_forever(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings.with_overrides(kafka_transactions=True)
    topics = settings.topics
    await ensure_topics(settings)
    bootstrap = settings.kafka_bootstrap or ""

    def inflate_one(record: Record) -> Sequence[Output]:
        # 2 MB is over the producer's 1 MiB max_request_size (aiokafka's default).
        value = b"x" * 2_000_000 if record.value == b"huge" else record.value.upper()
        return (Output(topics.classified, record.key, value),)

    await _produce(bootstrap, topics.articles, [b"one", b"huge", b"two"])
    metrics = Metrics()
    async with running(settings, "big", inflate_one, metrics):
        out = await read_topic(
            bootstrap, topics.classified, until=lambda rs: len(rs) >= 2, timeout_s=60, settle_s=1.0
        )
        dead = await read_topic(bootstrap, topics.dlq, until=lambda rs: len(rs) >= 1, timeout_s=30)
    assert sorted(r.value for r in out) == [b"ONE", b"TWO"]
    assert [r.value for r in dead] == [b"huge"]
    assert header(dead[0], "dlq_error_type") == "OutputTooLargeError"
    assert (
        metrics.registry.get_sample_value(
            "newsmon_dlq_messages_total", {"service": "big", "reason": "OutputTooLargeError"}
        )
        == 1
    )
