"""Alerts for the web page's tests, published the way the alerter publishes them, and the
page itself running on the test broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from newsmon.alerter.alerts import alert_headers
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.messages import Alert, AlertSource, Evidence, Term, encode
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings
from newsmon.web import app as web

HOSTILE_TITLE = (
    '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> '
    "North Korean troops & <b>Kursk</b>"
)
HOSTILE_URL = "javascript:window.pwned=3"


def make_alert(
    n: int = 1,
    *,
    title: str = "North Korean troops deployed to Kursk, Seoul says",
    revision: int = 1,
    source: str = "Yonhap",
    feed: str = "yonhap",
    lang: str | None = "en",
    categories: Sequence[str] = ("troops",),
    url: str | None = None,
    sources: Sequence[AlertSource] = (),
    age: timedelta = timedelta(minutes=5),
    **changes: Any,
) -> Alert:
    now = datetime.now(UTC) - age
    sentence = "Pyongyang sent troops to the Kursk region, officials said."
    evidence = Evidence(
        field="summary",
        sentence=sentence,
        start=0,
        terms=(
            Term(term="Pyongyang", category="dprk_actor", start=0, end=9),
            Term(term="troops", category="troops", start=15, end=21),
            Term(term="Kursk", category="russia_actor", start=29, end=34),
        ),
    )
    article_id = changes.pop("article_id", f"art-{n}-{revision}")
    url = url or f"https://news.example/{n}/{revision}"
    own = AlertSource(article_id=article_id, source=source, url=url, feed=feed)
    return Alert(
        alert_id=f"alert-{n}",
        revision=revision,
        story_id=f"story-{n}",
        article_id=article_id,
        title=title,
        url=url,
        source=source,
        feed=feed,
        lang=lang,
        summary=sentence,
        categories=tuple(categories),
        score=0.87,
        evidence=(evidence,),
        classifier_version="test",
        published=now - timedelta(minutes=1),
        fetched=now,
        classified=now,
        alerted=now,
        sources=(*sources, own) if sources else (own,),
        **changes,
    )


async def publish_alerts(settings: Settings, alerts: Sequence[Alert]) -> None:
    """As the alerter does: key = story id, CloudEvents headers, acks=all."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for alert in alerts:
            await producer.send_and_wait(
                settings.topics.alerts,
                encode(alert),
                key=alert.story_id.encode(),
                headers=alert_headers(alert),
            )
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running_web(settings: Settings, metrics: Metrics | None = None) -> AsyncIterator[str]:
    """`newsmon web` as a task on `settings` (port 0); yields its base URL."""
    stop = asyncio.Event()
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        web.run(settings, metrics or Metrics(), stop, on_listening=listening.set_result)
    )
    try:
        done, _ = await asyncio.wait([task, listening], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises why it ended
        yield f"http://127.0.0.1:{listening.result()}"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def wait_for_stories(base: str, count: int, timeout_s: float = 60.0) -> None:
    """Until the page holds `count` stories (its Kafka readers catch up in the background)."""
    import httpx

    async with httpx.AsyncClient() as client, asyncio.timeout(timeout_s):
        while True:
            if len((await client.get(base + "/alerts.json")).json()) >= count:
                return
            await asyncio.sleep(0.2)
