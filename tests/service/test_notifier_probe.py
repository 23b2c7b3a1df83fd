"""The notifier after a Slack outage, against the Slack stand-in over real HTTP: one line when
Slack starts failing, single-POST probes at a short capped pause (not a pause doubling to a
minute), one line when it answers again, and the alert delivered once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from newsmon.notifier.app import SLACK_PROBE_MAX_S, Notifier
from newsmon.notifier.slack import RetryPolicy, SlackSender, WebhookRateLimiter, WebhookUrl
from newsmon.shared import backoff as backoff_module
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.slack_stub import SlackStub
from tests.unit.test_notifier_kafka_errors import TP, FakeProducer, _record

OUTAGE_POSTS = 12
ATTEMPTS = 3


class ReplayingConsumer:
    """One partition of records; a seek rewinds it, as the real consumer's does."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records
        self.position = 0
        self.committed: int | None = None
        self.done = asyncio.Event()

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        await asyncio.sleep(0)
        batch = self.records[self.position :]
        self.position = len(self.records)
        return {TP: batch} if batch else {}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed = offsets[TP]
        self.done.set()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset


async def test_slack_recovery_is_probed_within_seconds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pauses: list[float] = []

    async def recorded_pause(stop: asyncio.Event, seconds: float) -> None:
        pauses.append(seconds)  # what the notifier decided to wait; the test does not wait
        await asyncio.sleep(0)

    # The notifier pauses through the one Backoff (shared/backoff.py).
    monkeypatch.setattr(backoff_module, "sleep_or_stop", recorded_pause)
    caplog.set_level(logging.INFO, logger="newsmon.notifier")
    async with SlackStub() as slack, httpx.AsyncClient() as client:
        slack.script(["500"] * OUTAGE_POSTS)  # then Slack answers "ok" again
        sender = SlackSender(
            client,
            policy=RetryPolicy(max_attempts=ATTEMPTS, backoff_base_s=0.001),
            limiter=WebhookRateLimiter(interval_s=0.0),
        )
        consumer = ReplayingConsumer([_record(0, "a1")])
        settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="t", instance_id="x")
        stop = asyncio.Event()
        notifier = Notifier(
            settings,
            Metrics(),
            sender,
            WebhookUrl(slack.webhook_url()),
            consumer,  # type: ignore[arg-type]
            FakeProducer(),  # type: ignore[arg-type]
            stop,
        )
        task = asyncio.create_task(notifier.loop())
        try:
            async with asyncio.timeout(60):
                await consumer.done.wait()
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=10)
        posts = len(slack.requests)

    # The first send tried ATTEMPTS times; every later try was one POST (a probe).
    assert posts == OUTAGE_POSTS + 1
    probes = OUTAGE_POSTS - ATTEMPTS
    assert len(pauses) == 1 + probes
    assert pauses[:3] == [1.0, 2.0, 4.0]
    assert max(pauses) == SLACK_PROBE_MAX_S, "the pause is capped at a few seconds"
    assert consumer.committed == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "newsmon.notifier"]
    assert sum("Slack unavailable" in line for line in lines) == 1, lines
    assert sum("Slack answers again" in line for line in lines) == 1, lines
