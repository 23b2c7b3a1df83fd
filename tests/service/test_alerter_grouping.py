"""The alerter on the real broker: story grouping, routing, state rebuilt after a restart."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from jsonschema import Draft202012Validator
from newsmon.alerter import app as alerter
from newsmon.shared.kafka import ensure_topics, header
from newsmon.shared.messages import Alert, Article, Classified, Evidence, Term, decode, encode
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.kafka_read import read_topic
from tests.support.news_stream import story_words

pytestmark = pytest.mark.kafka

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "alert.v1.json"
VALIDATOR = Draft202012Validator(
    json.loads(SCHEMA_PATH.read_text(encoding="utf-8")),
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)
T0 = datetime.now(UTC).replace(microsecond=0)
OUTLETS = ("Yonhap", "Reuters", "Korea Herald", "Kyiv Independent", "NK News")


def story_text(story: int) -> tuple[str, str]:
    """A headline and lede that share next to no words with any other story's."""
    words = story_words(story, 16)
    title = f"Story {story}: {' '.join(words[:6])}"
    lede = f"{' '.join(words[6:])}."
    return title, lede


def classified(
    story: int, copy: int, *, categories: Sequence[str] = ("troops",), match: bool = True
) -> Classified:
    title, lede = story_text(story)
    if copy:
        title = f"UPDATE {copy}-{title}"
        lede = f"{lede} Copy {copy} adds a line."
    outlet = OUTLETS[copy % len(OUTLETS)]
    at = T0 + timedelta(minutes=copy)
    article = Article(
        id=f"s{story}-c{copy}",
        feed=outlet.lower().replace(" ", "-"),
        source=outlet,
        url=f"https://{outlet.lower().replace(' ', '')}.example/{story}/{copy}",
        title=title,
        summary=lede,
        published=at,
        fetched=at,
        lang="en",
    )
    evidence = Evidence(
        field="title",
        sentence=title,
        start=0,
        terms=(Term(term="North Korea", category="dprk_actor", start=0, end=11),),
    )
    return Classified(
        article=article,
        match=match,
        score=0.9,
        categories=tuple(categories),
        evidence=(evidence,),
        classifier_version="test-1",
        classified=at,
    )


async def produce(settings: Settings, items: Sequence[Classified]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for item in items:
            await producer.send(
                settings.topics.classified, encode(item), key=item.article.id.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def read_alerts(
    settings: Settings, count: int, topic: str | None = None, *, settle_s: float = 2.0
) -> list[Any]:
    return await read_topic(
        settings.kafka_bootstrap or "",
        topic or settings.topics.alerts,
        until=lambda rs: len(rs) >= count,
        timeout_s=90,
        settle_s=settle_s,
    )


def revisions(records: Sequence[Any]) -> Counter[tuple[str, int]]:
    return Counter((a.alert_id, a.revision) for a in (decode(Alert, r.value) for r in records))


class RunningAlerter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningAlerter:
        self.task = asyncio.create_task(alerter.run(self.settings, self.metrics, self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=30)


async def test_three_copies_make_one_alert_and_two_updates(kafka_settings: Settings) -> None:
    settings = kafka_settings
    await ensure_topics(settings)
    items = [
        classified(1, 0),
        classified(2, 0, categories=("weapons",)),
        classified(1, 1, categories=("casualties",)),
        classified(3, 0, match=False),
        classified(1, 2),
        classified(1, 1, categories=("casualties",)),  # the same article again: nothing new
    ]
    await produce(settings, items)
    async with RunningAlerter(settings) as running:
        records = await read_alerts(settings, 4)

    alerts = [decode(Alert, r.value) for r in records]
    assert len(alerts) == 4, [(a.article_id, a.revision) for a in alerts]
    for record in records:
        VALIDATOR.validate(json.loads(record.value))
        assert header(record, "ce_id") == (
            f"{json.loads(record.value)['alert_id']}.r{json.loads(record.value)['revision']}"
        )
    story1 = sorted((a for a in alerts if a.story_id == "s1-c0"), key=lambda a: a.revision)
    assert [a.revision for a in story1] == [1, 2, 3]
    assert len({a.alert_id for a in story1}) == 1
    assert [len(a.sources) for a in story1] == [1, 2, 3]
    assert [s.source for s in story1[-1].sources] == ["Yonhap", "Reuters", "Korea Herald"]
    assert story1[1].categories == ("troops", "casualties")
    assert [a.article_id for a in story1] == ["s1-c0", "s1-c1", "s1-c2"]
    assert records[0].key == b"s1-c0" or records[0].key == b"s2-c0"

    m = running.metrics.registry.get_sample_value
    assert m("newsmon_alerts_published_total", {"topic": settings.topics.alerts}) == 4
    assert m("newsmon_alert_updates_total", {}) == 2
    assert m("newsmon_alerter_stories", {}) == 2

    # Routing: every revision of story 1 is on the troops topic (its categories say troops),
    # the casualties topic has the updates once casualties joined, story 2 is on weapons.
    prefix = settings.topic_prefix
    troops = await read_alerts(settings, 3, f"{prefix}.alerts.troops.v1", settle_s=0.5)
    casualties = await read_alerts(settings, 2, f"{prefix}.alerts.casualties.v1", settle_s=0.5)
    weapons = await read_alerts(settings, 1, f"{prefix}.alerts.weapons.v1", settle_s=0.5)
    assert sorted(revisions(troops)) == sorted(
        revisions(records[i] for i in range(4)) - revisions(weapons)
    )
    assert sorted(r for _, r in revisions(casualties)) == [2, 3]
    assert [decode(Alert, r.value).story_id for r in weapons] == ["s2-c0"]


async def test_grouping_state_survives_a_restart(kafka_settings: Settings) -> None:
    settings = kafka_settings
    await ensure_topics(settings)
    await produce(settings, [classified(7, 0), classified(8, 0)])
    async with RunningAlerter(settings):
        await read_alerts(settings, 2, settle_s=0.5)
    # A new process (same instance id), new copies of the same stories: updates, not alerts.
    await produce(settings, [classified(7, 1), classified(8, 1), classified(7, 2)])
    async with RunningAlerter(settings) as second:
        records = await read_alerts(settings, 5)
    assert second.metrics.registry.get_sample_value("newsmon_alerter_stories", {}) == 2
    seen = revisions(records)
    assert all(n == 1 for n in seen.values()), seen
    assert sorted(r for _, r in seen) == [1, 1, 2, 2, 3]
