"""Outputs larger than their topic takes (max.message.bytes), on the real broker: a matching
article with a very long full text is still classified and alerted, its text trimmed and the
message flagged; only an output that cannot be made to fit goes to the DLQ."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from newsmon.alerter import app as alerter
from newsmon.classifier import app as classifier
from newsmon.shared.kafka import ensure_topics, header
from newsmon.shared.messages import Alert, Article, Classified, decode, encode
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.kafka_admin import create_topic
from tests.support.kafka_read import read_topic
from tests.support.kafka_write import produce

pytestmark = pytest.mark.kafka

CLASSIFIED_MAX_BYTES = 20_000
MATCHING_TITLE = "North Korean troops suffer heavy casualties in Russia's Kursk region"
MATCHING_SUMMARY = (
    "North Korean soldiers deployed to Russia's Kursk region have suffered heavy casualties, "
    "South Korea's intelligence service said. Pyongyang has also shipped KN-23 ballistic "
    "missiles to Russia in exchange for military technology."
)


def article(article_id: str, *, title: str = MATCHING_TITLE, text: str = "") -> Article:
    return Article(
        id=article_id,
        feed="size",
        source="Size Wire",
        url=f"https://size.example/{article_id}",
        title=title,
        summary=MATCHING_SUMMARY,
        text=text,
        fetched=datetime.now(UTC),
        lang="en",
    )


@contextlib.asynccontextmanager
async def running_stages(settings: Settings, metrics: Metrics) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(classifier.run(settings, metrics, stop)),
        asyncio.create_task(alerter.run(settings, metrics, stop)),
    ]
    try:
        yield
        assert not any(t.done() for t in tasks), tasks
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=40)


async def test_too_long_text_is_trimmed_and_alerted_unfittable_goes_to_dlq(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    limit = {"max.message.bytes": str(CLASSIFIED_MAX_BYTES)}
    await create_topic(settings, settings.topics.classified, settings.topic_partitions, limit)
    await ensure_topics(settings)  # the others, default size limit
    long_text = " ".join([MATCHING_SUMMARY] * 400)  # about 90 KB of full text
    huge_title = "Pyongyang " * 3_000  # 30 KB of headline: nothing we trim can make it fit
    items = (article("long-text", text=long_text), article("huge-title", title=huge_title))
    await produce(
        settings.kafka_bootstrap or "",
        settings.topics.articles,
        [(item.id.encode(), encode(item)) for item in items],
    )

    metrics = Metrics()
    bootstrap = settings.kafka_bootstrap or ""
    async with running_stages(settings, metrics):
        dead = await read_topic(bootstrap, settings.topics.dlq, until=lambda rs: len(rs) >= 1)
        alerts = await read_topic(
            bootstrap, settings.topics.alerts, until=lambda rs: len(rs) >= 1, settle_s=1.0
        )
        classified = await read_topic(
            bootstrap, settings.topics.classified, until=lambda rs: len(rs) >= 1, settle_s=0.5
        )

    # The long article: classified with its text trimmed and flagged, and alerted.
    assert [r.key for r in classified] == [b"long-text"]
    assert len(classified[0].value) <= CLASSIFIED_MAX_BYTES
    verdict = decode(Classified, classified[0].value)
    assert verdict.trimmed
    assert verdict.match
    assert verdict.article.title == MATCHING_TITLE
    assert 0 < len(verdict.article.text) < len(long_text)
    assert long_text.startswith(verdict.article.text)
    assert [decode(Alert, r.value).article_id for r in alerts] == ["long-text"]

    # The unfittable one: dead-lettered with its input kept and the reason named.
    assert [r.key for r in dead] == [b"huge-title"]
    assert header(dead[0], "dlq_error_type") == "OutputTooLargeError"
    assert json.loads(dead[0].value)["title"] == huge_title

    m = metrics.registry.get_sample_value
    topic = settings.topics.classified
    assert m("newsmon_outputs_trimmed_total", {"service": "classifier", "topic": topic}) == 1
    reason = {"service": "classifier", "reason": "OutputTooLargeError"}
    assert m("newsmon_dlq_messages_total", reason) == 1
    assert m("newsmon_errors_total", {"service": "classifier", "kind": "kafka"}) is None
