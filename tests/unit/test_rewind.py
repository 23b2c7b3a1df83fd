"""The rewind helper (shared/rewind.py) and the consumer-group name (shared/services.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from newsmon.shared.rewind import KAFKA_RETRY_CAP_S, Rewind, first_offsets
from newsmon.shared.services import consumer_group


def _record(partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="in", partition=partition, offset=offset)


class _Consumer:
    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.seeks: list[tuple[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.seeks.append((tp, offset))


def test_first_offsets_are_the_lowest_per_partition() -> None:
    records = [_record(0, 5), _record(1, 9), _record(0, 3), _record(1, 12)]
    assert first_offsets(records) == {TopicPartition("in", 0): 3, TopicPartition("in", 1): 9}


async def test_replay_later_seeks_back_skips_revoked_partitions_and_backs_off() -> None:
    stop = asyncio.Event()
    stop.set()  # pauses end at once: the test checks what is decided, not the waiting
    rewind = Rewind(stop, first_s=1.0, cap_s=4.0)
    consumer = _Consumer({TopicPartition("in", 0)})
    await rewind.replay_later(consumer, [_record(0, 7), _record(1, 2), _record(0, 8)])
    assert consumer.seeks == [(TopicPartition("in", 0), 7)], "partition 1 was revoked"
    delays = [rewind.delay_s]
    for _ in range(3):
        await rewind.pause()
        delays.append(rewind.delay_s)
    assert delays == [2.0, 4.0, 4.0, 4.0]
    await rewind.pause(cap_s=1.5)
    assert rewind.delay_s == 1.5, "one kind of failure may be capped lower"
    rewind.reset()
    assert rewind.delay_s == 1.0
    assert Rewind(stop)._backoff.cap_s == KAFKA_RETRY_CAP_S


def test_every_service_group_is_named_one_way() -> None:
    assert consumer_group("newsmon", "notifier") == "newsmon-notifier"
