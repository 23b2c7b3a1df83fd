"""Writing to a topic from outside the pipeline, as an upstream producer would (acks=all)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaProducer

Headers = Sequence[tuple[str, bytes]]


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    *,
    headers: Headers = (),
) -> None:
    """Send every (key, value) record to `topic` in order and wait until the broker
    acknowledged all of them (aiokafka keeps one request in flight per partition, so the
    order of a key's records is kept)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key=key, headers=list(headers) or None)
            for key, value in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
