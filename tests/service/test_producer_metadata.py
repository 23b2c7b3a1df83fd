"""An output topic missing from the producer's first metadata answer must not stall the others.

aiokafka 0.14 refreshes metadata only for the topics a producer tracks, and a refresh replaces
the whole partition map (docs/upstream/aiokafka-metadata-refresh.md): a topic created after the
producer started used to make every other topic lose its leader until the request timeout
(30 s) expired the queued batches and the transaction failed. These tests create a topic only
after the producer started, as a fresh `newsmon run` does in the worst case.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from newsmon.alerter import app as alerter
from newsmon.shared.kafka import ensure_topics, make_producer, wait_for_leaders
from newsmon.shared.settings import Settings

from tests.service.test_alerter_grouping import RunningAlerter, classified, produce, read_alerts
from tests.support.kafka_admin import topic_configs
from tests.support.kafka_read import read_topic

pytestmark = pytest.mark.kafka


async def test_topic_created_after_producer_start_does_not_stall_transaction(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    early, late = settings.topics.alerts, f"{settings.topic_prefix}.late.v1"
    await ensure_topics(settings, [early])
    producer = make_producer(
        settings, client_id="test-metadata", transactional_id=f"test-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    try:
        await ensure_topics(settings, [late])  # not in the producer's first metadata answer
        assert await wait_for_leaders(producer, [early, late], stop=asyncio.Event())
        # Before the fix this transaction's batch for `early` lost its leader when `late` was
        # first sent to, expired after the request timeout, and the commit failed.
        async with producer.transaction():
            first = await producer.send(early, b"to the early topic", key=b"k")
            second = await producer.send(late, b"to the late topic", key=b"k")
        await asyncio.gather(first, second)
    finally:
        await producer.stop()
    for topic in (early, late):
        records = await read_topic(
            settings.kafka_bootstrap or "", topic, until=lambda rs: len(rs) >= 1, timeout_s=30
        )
        assert len(records) == 1


async def test_alerter_creates_its_state_topic_after_its_producer_and_alerts_at_once(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    await ensure_topics(settings)  # the main topics; neither routed nor state topic exists
    await produce(settings, [classified(1, 0)])
    async with RunningAlerter(settings) as running:
        alerts = await read_alerts(settings, 1, settle_s=0.5)
    assert len(alerts) == 1
    m = running.metrics.registry.get_sample_value
    assert m("newsmon_errors_total", {"service": "alerter", "kind": "kafka"}) is None, (
        "no failed publish"
    )
    assert m("newsmon_alerts_published_total", {"topic": settings.topics.alerts}) == 1
    # The topic the processor created is the compacted state topic, not a plain one.
    configs = await topic_configs(settings, alerter.state_topic(settings))
    assert configs["cleanup.policy"] == "compact,delete"
