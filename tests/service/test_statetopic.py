"""The state-topic store (shared/statetopic.py) on the real broker: a transactional topic with
aborted transactions and control records is read to its end and the read stops; an empty
topic; a read that cannot reach its end gives up after the idle cap instead of hanging."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import InvalidReplicationFactorError
from newsmon.shared.kafka import (
    ensure_topics,
    make_producer,
    make_reader,
    stop_consumer,
)
from newsmon.shared.settings import Settings
from newsmon.shared.statetopic import (
    StateReadStalledError,
    StateTopic,
    _drain,
    ensure_state_topic,
    read_latest,
    read_to_end,
    tombstone,
    write_many,
)

from tests.support.kafka_admin import topic_configs

pytestmark = pytest.mark.kafka


async def test_empty_and_missing_topics_read_at_once(kafka_settings: Settings) -> None:
    settings = kafka_settings
    topic = StateTopic(f"{settings.topic_prefix}.empty-state.v1", retention_ms=86_400_000)
    assert await read_to_end(settings, topic, lambda k, v: None) == {}, "missing: nothing"
    assert await ensure_state_topic(settings, topic) is True
    assert await ensure_state_topic(settings, topic) is False, "idempotent"
    configs = await topic_configs(settings, topic.name)
    assert configs["cleanup.policy"] == "compact,delete"
    assert configs["retention.ms"] == "86400000"
    assert await read_to_end(settings, topic, lambda k, v: None) == {0: 0}
    assert await read_latest(settings, topic) == {}


async def test_plain_topic_write_many_and_tombstone(kafka_settings: Settings) -> None:
    settings = kafka_settings
    topic = StateTopic(f"{settings.topic_prefix}.plain-state.v1")
    await ensure_state_topic(settings, topic)
    assert (await topic_configs(settings, topic.name))["cleanup.policy"] == "compact"
    producer = make_producer(settings, client_id="test-statetopic-plain")
    await producer.start()
    try:
        records = [(f"k{i % 50}", f"v{i}".encode()) for i in range(500)]
        assert await write_many(producer, topic, records) == 500
        await tombstone(producer, topic, "k7")
    finally:
        await producer.stop()
    latest = await read_latest(settings, topic)
    assert len(latest) == 50
    assert latest[b"k3"] == b"v453", "the last write of a key wins"
    assert latest[b"k7"] is None, "a tombstone reads as None"


async def test_transactional_topic_reads_to_the_last_stable_offset(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    topic = StateTopic(f"{settings.topic_prefix}.txn-state.v1", transactional=True)
    await ensure_state_topic(settings, topic)
    producer = make_producer(
        settings, client_id="test-statetopic-txn", transactional_id=f"t-{uuid.uuid4().hex}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic.name, b"one", key=b"a")
            await producer.send(topic.name, b"two", key=b"b")
        await producer.begin_transaction()
        await producer.send_and_wait(topic.name, b"aborted", key=b"a")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic.name, b"three", key=b"c")
            await producer.send(topic.name, None, key=b"b")
        # The partition now ends with control records (the last one a commit marker, never
        # handed to the application): the read must still reach its end and stop.
        assert await read_latest(settings, topic) == {b"a": b"one", b"b": None, b"c": b"three"}

        # An aborted transaction last: the partition ends with an abort marker.
        await producer.begin_transaction()
        await producer.send_and_wait(topic.name, b"aborted again", key=b"c")
        await producer.abort_transaction()
        seen: list[tuple[bytes | None, bytes | None]] = []
        ends = await read_to_end(settings, topic, lambda k, v: seen.append((k, v)))
        assert seen == [(b"a", b"one"), (b"b", b"two"), (b"c", b"three"), (b"b", None)]
        assert ends[0] >= 8, "records and markers both take offsets"

        # A transaction left open: its records are after the last stable offset, so the read
        # neither returns nor waits for them.
        await producer.begin_transaction()
        await producer.send_and_wait(topic.name, b"pending", key=b"d")
        assert b"d" not in await read_latest(settings, topic)

        # Taking the high watermark as the end while reading committed records only is the
        # mistake the idle cap guards against: the read gives up instead of hanging.
        await _stalled_read_gives_up(settings, topic.name)
        await producer.abort_transaction()
    finally:
        await producer.stop()


async def _stalled_read_gives_up(settings: Settings, topic: str) -> None:
    tp = TopicPartition(topic, 0)
    uncommitted = make_reader(
        settings, client_id="test-uncommitted", isolation_level="read_uncommitted"
    )
    committed = make_reader(settings, client_id="test-committed")  # read_committed
    await uncommitted.start()
    await committed.start()
    try:
        high_watermarks = await uncommitted.end_offsets([tp])
        committed.assign([tp])
        await committed.seek_to_beginning(tp)
        with pytest.raises(StateReadStalledError, match="no progress"):
            await _drain(committed, high_watermarks, lambda record: True, idle_cap_s=1.0)
    finally:
        await stop_consumer(committed)
        await stop_consumer(uncommitted)


async def test_ensure_topics_raises_what_the_broker_refused(kafka_settings: Settings) -> None:
    """CreateTopics answers per topic: a refusal is raised, not ignored (it was), after the
    bounded retry when it may be transient (too few brokers registered yet)."""
    settings = kafka_settings.with_overrides(topic_replication=3)  # the test broker is alone
    with pytest.raises(InvalidReplicationFactorError):
        await ensure_topics(settings, [f"{settings.topic_prefix}.refused.v1"], retry_s=0.1)
