"""Reading a topic from outside the pipeline, as a subscriber would (read_committed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from newsmon.shared.kafka import stop_consumer

# aiokafka ships no type information, so records are typed loosely here.
Record = Any


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Record]], bool],
    timeout_s: float = 60.0,
    settle_s: float = 0.0,
) -> list[Record]:
    """Read `topic` from the beginning until `until(records)` holds (or `timeout_s` passes),
    then keep reading `settle_s` more seconds so that unexpected extra messages show up."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    records: list[Record] = []
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and not until(records):
            await _drain(consumer, records)
        settle_until = loop.time() + settle_s
        while loop.time() < settle_until:
            await _drain(consumer, records)
    finally:
        await stop_consumer(consumer)
    return records


async def _drain(consumer: AIOKafkaConsumer, records: list[Any]) -> None:
    batch = await consumer.getmany(timeout_ms=300)
    for part in batch.values():
        records.extend(part)
