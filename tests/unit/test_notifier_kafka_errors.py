"""The notifier's loop when Kafka calls fail: a rebalance (commit refused, partition revoked)
or a broker outage (marker or dead letter not acknowledged) is logged, counted and retried;
it must not end the service (which stops every other service of `newsmon run`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaTimeoutError
from newsmon.alerter.alerts import alert_from
from newsmon.notifier.app import Notifier
from newsmon.notifier.slack import RetryPolicy, SlackSender, WebhookRateLimiter, WebhookUrl
from newsmon.shared.messages import encode
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.unit.test_alerts import classified

TP = TopicPartition("t.alerts.v1", 0)
WEBHOOK = WebhookUrl("https://hooks.slack.com/services/T000/B000/secret")


def _record(offset: int, article_id: str) -> Any:
    alert = alert_from(classified(article_id), now=datetime(2025, 1, 1, tzinfo=UTC))
    return SimpleNamespace(
        topic=TP.topic,
        partition=TP.partition,
        offset=offset,
        key=alert.story_id.encode(),
        value=encode(alert),
        headers=[],
    )


class FakeConsumer:
    def __init__(self, batches: list[dict[TopicPartition, list[Any]]]) -> None:
        self.batches = batches
        self.assigned = {TP}
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.commit_errors: list[Exception] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(0.01)
        return {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        if any(tp not in self.assigned for tp in offsets):
            raise IllegalStateError("Partition is not assigned")
        self.commits.append(dict(offsets))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.seeks.append((tp, offset))


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []
        self.errors: list[Exception] = []

    async def send_and_wait(self, topic: str, value: bytes, **kwargs: Any) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((topic, kwargs.get("key")))


def _notifier(
    consumer: FakeConsumer,
    producer: FakeProducer,
    posts: list[bytes],
    *,
    slack: Callable[[httpx.Request], httpx.Response] | None = None,
    first_retry_s: float = 1.0,
) -> Notifier:
    """A notifier on fakes of Kafka; Slack answers 2xx (each post kept in `posts`) unless
    `slack` answers instead."""

    def slack_ok(request: httpx.Request) -> httpx.Response:
        posts.append(request.content)
        return httpx.Response(200, text="ok")

    client = httpx.AsyncClient(transport=httpx.MockTransport(slack or slack_ok))
    sender = SlackSender(
        client,
        policy=RetryPolicy(max_attempts=1),
        limiter=WebhookRateLimiter(interval_s=0.0),
    )
    settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="t", instance_id="x")
    stop = asyncio.Event()
    return Notifier(
        settings,
        Metrics(),
        sender,
        WEBHOOK,
        consumer,  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        stop,
        first_retry_s=first_retry_s,
    )


async def _run_until(notifier: Notifier, done: Any, timeout_s: float = 10.0) -> None:
    task = asyncio.create_task(notifier.loop())
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                if task.done():
                    task.result()  # raises what ended the loop
                    pytest.fail("the notifier loop returned by itself")
                await asyncio.sleep(0.01)
    finally:
        notifier.stop.set()
        await asyncio.wait_for(task, timeout=5)


def _kafka_errors(notifier: Notifier) -> float:
    value = notifier.metrics.registry.get_sample_value(
        "newsmon_errors_total", {"service": "notifier", "kind": "kafka"}
    )
    return value or 0.0


async def test_a_refused_commit_after_a_rebalance_does_not_end_the_notifier() -> None:
    first = _record(0, "a1")
    consumer = FakeConsumer([{TP: [first]}, {TP: [first]}])
    consumer.commit_errors.append(CommitFailedError("group rebalanced"))
    producer = FakeProducer()
    posts: list[bytes] = []
    notifier = _notifier(consumer, producer, posts, first_retry_s=0.01)
    await _run_until(notifier, lambda: consumer.commits)
    assert consumer.commits == [{TP: 1}], "the replayed alert is committed"
    assert len(posts) == 1, "the replay is not posted again (delivered marker)"
    assert _kafka_errors(notifier) == 1


async def test_records_of_a_partition_revoked_meanwhile_are_left_to_its_new_owner() -> None:
    consumer = FakeConsumer([])
    records = [_record(0, "a1"), _record(1, "a2")]
    producer = FakeProducer()
    posts: list[bytes] = []
    notifier = _notifier(consumer, producer, posts)

    original = notifier.handle

    async def handle_then_revoke(tp: TopicPartition, record: Any) -> bool:
        result = await original(tp, record)
        consumer.assigned.clear()  # a rebalance while the batch is being worked through
        return result

    notifier.handle = handle_then_revoke  # type: ignore[method-assign]
    consumer.batches.append({TP: records})
    await _run_until(notifier, lambda: not consumer.batches and posts, timeout_s=5)
    await asyncio.sleep(0.1)
    assert len(posts) == 1, "the second alert belongs to the partition's new owner now"


async def test_a_broker_outage_while_writing_the_marker_is_retried_without_a_second_post() -> None:
    first = _record(0, "a1")
    consumer = FakeConsumer([{TP: [first]}, {TP: [first]}])
    producer = FakeProducer()
    producer.errors.append(KafkaTimeoutError())
    posts: list[bytes] = []
    notifier = _notifier(consumer, producer, posts, first_retry_s=0.01)
    await _run_until(notifier, lambda: consumer.commits)
    assert consumer.seeks == [(TP, 0)], "rewound to the alert"
    assert consumer.commits == [{TP: 1}]
    assert len(posts) == 1, "Slack already has it: the retry must not post it again"
    assert _kafka_errors(notifier) == 1


async def test_a_rewind_of_a_revoked_partition_does_not_end_the_notifier() -> None:
    first = _record(0, "a1")
    consumer = FakeConsumer([{TP: [first]}])
    producer = FakeProducer()
    posts: list[bytes] = []

    def revoke_then_fail(request: httpx.Request) -> httpx.Response:
        consumer.assigned.clear()  # rebalanced while Slack was being retried
        return httpx.Response(503, text="unavailable")

    notifier = _notifier(consumer, producer, posts, slack=revoke_then_fail, first_retry_s=0.01)
    await _run_until(notifier, lambda: not consumer.batches and not consumer.assigned)
    await asyncio.sleep(0.1)
    assert consumer.seeks == []
