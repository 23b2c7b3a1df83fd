"""The consume loop's pauses after a failure end as soon as the service is asked to stop."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Processor
from newsmon.shared.settings import Settings


class _Consumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _processor(stop: asyncio.Event, *, first_retry_s: float = 1.0) -> Processor:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", instance_id="t")
    return Processor(
        settings=settings,
        service="test",
        source_topic="in",
        transform=lambda record: (),
        metrics=Metrics(),
        stop=stop,
        first_retry_s=first_retry_s,
    )


async def test_rewind_pause_ends_when_stop_is_set() -> None:
    stop = asyncio.Event()
    processor = _processor(stop, first_retry_s=30.0)  # deep into a broker outage
    consumer = _Consumer()
    record = SimpleNamespace(topic="in", partition=0, offset=7)
    asyncio.get_running_loop().call_later(0.2, stop.set)  # SIGTERM arrives
    started = time.monotonic()
    await processor._rewind(consumer, [record], KafkaTimeoutError())
    assert time.monotonic() - started < 5, "a SIGTERM must not wait out the retry pause"
    assert consumer.seeks == [(TopicPartition("in", 0), 7)], "the batch is still rewound"


async def test_renew_producer_pause_ends_when_stop_is_set(monkeypatch: Any) -> None:
    stop = asyncio.Event()
    processor = _processor(stop, first_retry_s=30.0)

    async def cannot_start() -> None:
        raise KafkaConnectionError("broker down")

    monkeypatch.setattr(processor, "_start_producer", cannot_start)
    asyncio.get_running_loop().call_later(0.2, stop.set)
    started = time.monotonic()
    assert await processor._renew_producer() is False
    assert time.monotonic() - started < 5
