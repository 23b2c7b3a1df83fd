"""The dead-letter writer every consumer uses (the pipeline's Processor and the notifier).

A record a stage cannot handle (it does not decode, the transform refused it, Slack refused
it for good, its output cannot fit its topic) goes to `<prefix>.dlq.v1` so the stream moves
on and nothing is dropped silently. One object owns how: the record format (the original key,
value and headers plus `dlq_*` headers that say where and why), the fallback for a value too
large to send again (a stub: headers kept, value left out, its size named), the one log line
with the record's topic, offset and key, and the metrics. Modelled on arroyo's DLQ policy
(getsentry/arroyo `arroyo/dlq.py`: a small object handed to the consumer strategy, which
only says *which* record is invalid and *why*).

The writer only queues the send and returns its future, so the Processor can put dead letters
in the batch's transaction; the metrics are counted once the caller knows the letter is
committed (`counted`). `send_and_wait` does both for a caller without a transaction.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from .errors import PermanentError
from .kafka import MAX_REQUEST_BYTES, Headers
from .metrics import Metrics

__all__ = ["DeadLetters", "OutputTooLargeError", "dlq_headers"]

log = logging.getLogger("newsmon.deadletter")

# aiokafka ships no type information for records.
Record = Any


class OutputTooLargeError(PermanentError):
    """An output is larger than its topic accepts, even with its text trimmed."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(
            f"output of {size} bytes does not fit {topic} (max.message.bytes {limit}), "
            "even with its text trimmed"
        )


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


def _fits(record: Record, headers: Headers, limit: int) -> bool:
    """Whether the dead letter, value included, fits `limit` (record batch and headers
    counted as aiokafka itself estimates them before a send)."""
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(record.key, record.value, headers)
    return bool(size <= limit)


def _stub_headers(record: Record, headers: Headers) -> Headers:
    size = len(record.value or b"")
    return [*headers, ("dlq_value_dropped", f"{size} bytes over the size limit".encode())]


class DeadLetters:
    """Writes one service's dead letters to `topic` (see the module docstring)."""

    def __init__(self, *, topic: str, service: str, metrics: Metrics) -> None:
        self.topic = topic
        self.service = service
        self.metrics = metrics

    async def send(
        self,
        producer: AIOKafkaProducer,
        record: Record,
        error: Exception,
        *,
        max_bytes: int = MAX_REQUEST_BYTES,
    ) -> asyncio.Future[Any]:
        """Log and queue the dead letter of `record`; the future resolves when the broker
        acknowledged it. `max_bytes`: the DLQ topic's max.message.bytes when known."""
        # A valid message that cannot be made to fit its topic is a real loss: ERROR.
        log.log(
            logging.ERROR if isinstance(error, OutputTooLargeError) else logging.WARNING,
            "dead-lettered a message: %s",
            error,
            extra={
                "service": self.service,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                # The key is the article (or story) id: the thread to follow across stages.
                "message_key": record.key.decode("utf-8", "replace") if record.key else None,
                "error_type": type(error).__name__,
            },
        )
        headers = dlq_headers(record, stage=self.service, error=error)
        if _fits(record, headers, max_bytes):
            try:
                return await producer.send(  # type: ignore[no-any-return]
                    self.topic, record.value, key=record.key, headers=headers
                )
            except MessageSizeTooLargeError:
                pass  # over our producer's own limit after all: the stub below
        # The input itself is too large to send again (another producer allowed it): keep the
        # where and why, say the value was left out and how big it was.
        return await producer.send(  # type: ignore[no-any-return]
            self.topic, None, key=record.key, headers=_stub_headers(record, headers)
        )

    def counted(self, error: Exception) -> None:
        """The dead letter of a record that failed with `error` is committed: count it."""
        self.metrics.dlq.labels(self.service, type(error).__name__).inc()
        self.metrics.errors.labels(self.service, "poison").inc()

    async def send_and_wait(
        self, producer: AIOKafkaProducer, record: Record, error: Exception
    ) -> None:
        """`send`, wait for the broker's acknowledgement, then count it."""
        await (await self.send(producer, record, error))
        self.counted(error)
