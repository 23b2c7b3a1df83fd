"""The fetcher service on the real broker with a real local HTTP server: article pages fill
Article.text, failing pages (404, timeout, SSRF-blocked) degrade to the summary and are
counted, and one story from two feeds is published once with both sources recorded in the
compacted fetcher-state topic."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from newsmon.fetcher.app import run
from newsmon.fetcher.state import load_states
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.messages import Article, decode
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss
from tests.support.http_stub import HttpStub, Reply, http_stub
from tests.support.kafka_read import read_topic

pytestmark = pytest.mark.kafka

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stub() -> Iterator[HttpStub]:
    with http_stub() as s:
        yield s


async def test_full_text_and_both_sources_on_the_real_broker(
    kafka_settings: Settings, stub: HttpStub, tmp_path: Path
) -> None:
    html = {"Content-Type": "text/html; charset=utf-8"}
    story = stub.route(
        "/a/kursk", Reply(body=(PAGES / "kursk-troops.html").read_bytes(), headers=html)
    )
    missing = stub.base_url + "/a/missing"  # not routed: 404
    never = threading.Event()
    slow = stub.route("/a/slow", Reply(body=b"<html></html>", headers=html, wait=never))
    # Loopback, but not the allowed 127.0.0.1: the SSRF guard refuses it before connecting.
    blocked = stub.base_url.replace("127.0.0.1", "127.0.0.2") + "/a/blocked"
    wire = stub.route(
        "/wire.xml",
        Reply(
            body=rss(
                [
                    Item(story, "North Korean troops in Kursk", WHEN, guid="wire-1"),
                    Item(missing, "A page that is gone", WHEN, guid="wire-2"),
                    Item(slow, "A page that never answers", WHEN, guid="wire-3"),
                    Item(blocked, "A page behind the guard", WHEN, guid="wire-4"),
                ]
            )
        ),
    )
    # The same story (same canonical URL once utm_* is dropped) from a second outlet.
    second = stub.route(
        "/second.xml",
        Reply(body=rss([Item(story + "?utm_source=second", "Troops in Kursk", WHEN)])),
    )
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        f'[[feed]]\nname = "wire"\nurl = "{wire}"\n\n[[feed]]\nname = "second"\nurl = "{second}"\n',
        encoding="utf-8",
    )
    settings = kafka_settings.with_overrides(feeds_file=feeds, fetch_full_text_timeout_s=1.0)
    await ensure_topics(settings)
    metrics = Metrics()
    stop = asyncio.Event()
    fetcher = asyncio.create_task(run(settings, metrics, stop))
    try:
        records = await read_topic(
            settings.kafka_bootstrap or "",
            settings.topics.articles,
            until=lambda rs: len(rs) >= 4,
            timeout_s=60,
            settle_s=1.0,  # room for a wrong fifth article (the story again) to show up
        )
        # Both feeds polled once; wait until the second source is in the state topic.
        states = await load_states(settings)
        for _ in range(150):
            if any("also_seen" in s.extra for s in states.values()) and len(states) == 2:
                break
            await asyncio.sleep(0.2)
            states = await load_states(settings)
    finally:
        stop.set()
        never.set()
        await asyncio.wait_for(fetcher, timeout=30)

    articles = {a.url: a for a in (decode(Article, r.value) for r in records)}
    assert len(records) == 4, [a.url for a in articles.values()]
    assert set(articles) == {story, missing, slow, blocked}

    kursk = articles[story]
    assert "rotated fresh units into the region" in kursk.text
    for junk in ("Most read", "Morning Briefing", "Copyright 2026", "Subscribe today"):
        assert junk not in kursk.text
    for url in (missing, slow, blocked):
        assert articles[url].text == "", url
        assert articles[url].summary == "A short summary.", url

    # Both sources recorded: the feed that did not publish the story names the one that did.
    other = "second" if kursk.feed == "wire" else "wire"
    assert states[other].extra.get("also_seen") == {story: kursk.feed}, states
    assert "also_seen" not in states[kursk.feed].extra

    def count(feed: str, outcome: str) -> float:
        value = metrics.registry.get_sample_value(
            "newsmon_feed_full_text_total", {"feed": feed, "outcome": outcome}
        )
        return value or 0.0

    assert count("wire", "failed") == 3  # 404, timeout, blocked
    assert count("wire", "ok") + count("second", "ok") == 1
    assert stub.hits("/a/kursk") == 1, "the story's page is fetched once, by its publisher"
    assert stub.hits("/a/missing") == 1
