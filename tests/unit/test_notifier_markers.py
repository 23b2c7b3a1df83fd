"""The notifier's memory of delivered alert messages stays bounded by the markers' retention."""

from __future__ import annotations

from typing import Any, cast

from aiokafka import AIOKafkaProducer
from newsmon.notifier.markers import MARKER_RETENTION_MS, DeliveryMarkers
from newsmon.shared.settings import Settings

RETENTION_S = MARKER_RETENTION_MS / 1000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def markers(clock: Clock) -> DeliveryMarkers:
    topics = Settings(kafka_bootstrap="127.0.0.1:1").topics
    # No broker is reached: only the in-memory part is under test.
    producer = cast(AIOKafkaProducer, cast(Any, None))
    return DeliveryMarkers(topics, producer, clock=clock)


def test_a_delivery_is_remembered_within_the_retention() -> None:
    clock = Clock()
    book = markers(clock)
    book.note_delivered("a.r1.main")
    clock.now += RETENTION_S - 1
    book.note_delivered("b.r1.main")
    assert book.delivered_before("a.r1.main")
    assert book.delivered_before("b.r1.main")


def test_deliveries_older_than_the_retention_are_forgotten() -> None:
    clock = Clock()
    book = markers(clock)
    for n in range(1_000):
        book.note_delivered(f"old{n}.r1.main")
    clock.now += RETENTION_S + 1
    book.note_delivered("new.r1.main")
    assert not book.delivered_before("old0.r1.main")
    assert book.delivered_before("new.r1.main")
    assert len(book.delivered) == 1


def test_a_delivery_remembered_again_moves_to_the_end() -> None:
    clock = Clock()
    book = markers(clock)
    book.note_delivered("a.r1.main")
    book.note_delivered("b.r1.main")
    clock.now += RETENTION_S - 10
    book.note_delivered("a.r1.main")  # delivered again (another revision path), kept fresh
    clock.now += 20
    book.note_delivered("c.r1.main")
    assert book.delivered_before("a.r1.main")
    assert not book.delivered_before("b.r1.main")
