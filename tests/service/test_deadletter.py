"""The one dead-letter writer (shared/deadletter.py) on the real broker: a dead letter keeps
the record and says where and why; a value too large to send again becomes a stub (headers
kept, value left out, its size named) instead of stalling the partition."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from newsmon.shared.deadletter import DeadLetters
from newsmon.shared.kafka import MAX_REQUEST_BYTES, header, make_producer
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.kafka_admin import create_topic
from tests.support.kafka_read import read_topic

pytestmark = pytest.mark.kafka

DLQ_MAX_BYTES = 10_000


def _record(offset: int, value: bytes) -> Any:
    return SimpleNamespace(
        topic="t.in", partition=0, offset=offset, key=b"story-1", value=value, headers=[]
    )


async def test_dead_letters_keep_the_record_or_a_stub_when_it_is_too_large(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    await create_topic(settings, settings.topics.dlq, 1, {"max.message.bytes": str(DLQ_MAX_BYTES)})
    metrics = Metrics()
    letters = DeadLetters(topic=settings.topics.dlq, service="test", metrics=metrics)
    error = ValueError("not an alert")
    producer = make_producer(settings, client_id="test-deadletter")
    await producer.start()
    try:
        await letters.send_and_wait(producer, _record(1, b"bad json"), error)
        # Over the DLQ topic's max.message.bytes (the caller knows the limit).
        big = _record(2, b"x" * (DLQ_MAX_BYTES * 2))
        await (await letters.send(producer, big, error, max_bytes=DLQ_MAX_BYTES))
        # Over our producer's own request limit (another producer allowed it upstream).
        await letters.send_and_wait(producer, _record(3, b"y" * (MAX_REQUEST_BYTES + 1)), error)
    finally:
        await producer.stop()

    dead = await read_topic(
        settings.kafka_bootstrap, settings.topics.dlq, until=lambda r: len(r) >= 3
    )
    by_offset = {header(r, "dlq_offset"): r for r in dead}
    kept = by_offset["1"]
    assert (kept.key, kept.value) == (b"story-1", b"bad json")
    assert header(kept, "dlq_stage") == "test"
    assert header(kept, "dlq_error_type") == "ValueError"
    assert header(kept, "dlq_topic") == "t.in"
    assert header(kept, "dlq_value_dropped") is None
    for offset, size in (("2", DLQ_MAX_BYTES * 2), ("3", MAX_REQUEST_BYTES + 1)):
        stub = by_offset[offset]
        assert stub.value is None
        assert stub.key == b"story-1"
        assert header(stub, "dlq_value_dropped") == f"{size} bytes over the size limit"
        assert header(stub, "dlq_error") == "ValueError: not an alert"
    value = metrics.registry.get_sample_value
    # `send` alone does not count (the Processor counts once its transaction committed).
    assert value("newsmon_dlq_messages_total", {"service": "test", "reason": "ValueError"}) == 2
    assert value("newsmon_errors_total", {"service": "test", "kind": "poison"}) == 2
