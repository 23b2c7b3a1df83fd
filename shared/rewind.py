"""Rewind-with-backoff: what a consumer does when it cannot finish records now.

The pipeline's Processor when a batch's outputs or offsets were not acknowledged, and the
notifier when Slack or Kafka failed: seek every partition back to the first record not done
(its committed offset: nothing after it was committed), pause (capped exponential, cut short
by SIGTERM through `shared.backoff.Backoff`), then read the records again. Nothing is skipped
and nothing piles up in memory: the records stay in Kafka until they can be handled. The model
is quix-streams' sink backpressure (quixio/quix-streams `quixstreams/sinks/base/exceptions.py`
`SinkBackpressureError`: the sink says "not now", the application seeks the partitions back to
the last committed offsets and retries after a while).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from .backoff import Backoff

__all__ = ["KAFKA_RETRY_CAP_S", "Rewind", "first_offsets"]

# The longest pause between two tries after Kafka refused a produce or a commit: a broker back
# from an outage is used again within this. One cap for every consumer.
KAFKA_RETRY_CAP_S = 30.0


class _Seekable(Protocol):
    def seek(self, partition: TopicPartition, offset: int) -> None: ...


def first_offsets(records: Iterable[Any]) -> dict[TopicPartition, int]:
    """The lowest offset of each partition among `records` (aiokafka ConsumerRecords)."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = min(offsets.get(tp, r.offset), r.offset)
    return offsets


class Rewind:
    """Seek back and pause; `reset` after a success brings the pause back to its first step."""

    def __init__(
        self, stop: asyncio.Event, *, first_s: float = 1.0, cap_s: float = KAFKA_RETRY_CAP_S
    ) -> None:
        self.stop = stop
        self._backoff = Backoff(first_s=first_s, cap_s=cap_s)

    @property
    def delay_s(self) -> float:
        """The next pause (for the log line that announces it)."""
        return self._backoff.delay_s

    def reset(self) -> None:
        self._backoff.reset()

    async def replay_later(
        self, consumer: _Seekable, records: Iterable[Any], *, cap_s: float | None = None
    ) -> None:
        """Seek each partition of `records` back to its first record, then `pause`."""
        for tp, offset in first_offsets(records).items():
            # A partition revoked meanwhile is skipped: its new owner starts from the committed
            # offset, which these records never moved.
            with contextlib.suppress(IllegalStateError):
                consumer.seek(tp, offset)
        await self.pause(cap_s=cap_s)

    async def pause(self, *, cap_s: float | None = None) -> None:
        """The current pause, ended early by `stop` (a SIGTERM during an outage drains at once);
        `cap_s` caps one kind of failure lower than the default cap."""
        await self._backoff.pause(self.stop, cap_s=cap_s)
