"""Topics deleted while a stage runs are re-created, and SIGTERM stops `newsmon run` within its
shutdown budget with the broker gone and Slack holding it off, on real brokers."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence

import pytest
from newsmon.runner import serve
from newsmon.shared.broker import LocalKafka
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.messages import encode
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Output, Processor, Record
from newsmon.shared.settings import Settings
from pydantic import SecretStr

from tests.service.test_output_size import article
from tests.service.test_pipeline import _produce
from tests.support.kafka_admin import delete_topic, wait_for_topic
from tests.support.kafka_read import read_topic
from tests.support.slack_stub import SlackStub, StubReply

pytestmark = pytest.mark.kafka

MATCHING = article("held-off")


async def test_an_output_topic_deleted_while_running_is_recreated(
    kafka_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = kafka_settings
    topics = settings.topics
    await ensure_topics(settings)
    bootstrap = settings.kafka_bootstrap or ""

    def upper(record: Record) -> Sequence[Output]:
        return (Output(topics.classified, record.key, record.value.upper()),)

    stop = asyncio.Event()
    ready = asyncio.Event()
    processor = Processor(
        settings=settings,
        service="recreate",
        source_topic=topics.articles,
        transform=upper,
        metrics=Metrics(),
        stop=stop,
        outputs=[topics.classified],
        on_ready=ready.set,
    )
    processor.topic_check_interval_s = 0.5  # an idle stage looks every 30 s by default
    caplog.set_level(logging.INFO, logger="newsmon.kafka")
    task = asyncio.create_task(processor.run())
    try:
        async with asyncio.timeout(60):
            await ready.wait()
        await _produce(bootstrap, topics.articles, [b"before"])
        await read_topic(bootstrap, topics.classified, until=lambda rs: len(rs) >= 1)
        await delete_topic(settings, topics.classified)
        await wait_for_topic(settings, topics.classified)  # re-created by the idle stage
        await _produce(bootstrap, topics.articles, [b"after"])
        out = await read_topic(
            bootstrap, topics.classified, until=lambda rs: len(rs) >= 1, timeout_s=90
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=40)
    assert [r.value for r in out] == [b"AFTER"], "the re-created topic got the new output"
    lines = [r.getMessage() for r in caplog.records if r.name == "newsmon.kafka"]
    assert any(
        "missing from the cluster; creating them" in line and topics.classified in line
        for line in lines
    ), lines


# The fetcher's own stop with the broker gone is tested with the fetcher's tests.
STAGES = ("classifier", "alerter", "notifier")


# Clients abandoned on purpose (their close waits on the stopped broker) warn when collected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_sigterm_stops_the_stages_within_budget_with_broker_gone_and_slack_holding(
    own_kafka_broker: LocalKafka, kafka_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with SlackStub() as slack:
        # Slack holds every post for an hour: the notifier waits on Retry-After when stopped.
        slack.script([StubReply.rate_limited(retry_after=3600)] * 100)
        settings = kafka_settings.with_overrides(
            kafka_bootstrap=own_kafka_broker.bootstrap,
            slack_webhook_url=SecretStr(slack.webhook_url()),
            shutdown_timeout_s=5,
        )
        await ensure_topics(settings)
        await _produce(own_kafka_broker.bootstrap, settings.topics.articles, [encode(MATCHING)])
        stop = asyncio.Event()
        running = asyncio.create_task(
            serve(
                settings, STAGES, process_name="run", start_broker=False, stop=stop,
                metrics=Metrics(),
            )
        )  # fmt: skip
        try:
            await read_topic(
                own_kafka_broker.bootstrap,
                settings.topics.alerts,
                until=lambda rs: len(rs) >= 1,
                timeout_s=90,
            )
            async with asyncio.timeout(30):
                await slack.wait_for_requests(1)  # the notifier is now held off
            await asyncio.to_thread(own_kafka_broker.stop)  # every service loses the broker
            await asyncio.sleep(2)
        finally:
            stop.set()
            exit_code = await asyncio.wait_for(running, timeout=60)
    gc.collect()  # here, under this test's warning filters
    assert exit_code == 0
    overran = [r.getMessage() for r in caplog.records if "did not stop within" in r.getMessage()]
    assert overran == [], "every service stopped itself within NEWSMON_SHUTDOWN_TIMEOUT_S"
