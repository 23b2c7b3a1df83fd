"""Fetcher state on the real broker: compacted state topic and dedup memory survive a restart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from newsmon.fetcher.state import (
    FeedState,
    KafkaSink,
    ensure_state_topic,
    load_seen_ids,
    load_states,
    state_topic,
    url_key,
)
from newsmon.shared.kafka import ensure_topics, make_producer
from newsmon.shared.messages import Article
from newsmon.shared.settings import Settings

from tests.support.kafka_admin import topic_configs

pytestmark = pytest.mark.kafka


async def test_state_and_seen_ids_survive_a_restart(kafka_settings: Settings) -> None:
    settings = kafka_settings
    await ensure_topics(settings)
    await ensure_state_topic(settings)
    await ensure_state_topic(settings)  # idempotent

    configs = await topic_configs(settings, state_topic(settings))
    assert configs["cleanup.policy"] == "compact", configs

    article = Article(
        id="abc123",
        feed="one",
        source="Outlet",
        url="https://news.example.org/story",
        title="Story",
        fetched=datetime(2026, 3, 1, tzinfo=UTC),
    )
    producer = make_producer(settings, client_id="test-fetcher-state")
    await producer.start()
    try:
        sink = KafkaSink(settings.topics, producer)
        await sink.publish([article])
        await sink.save_state("one", FeedState(url="https://a.example/rss", etag='"1"'))
        later = FeedState(url="https://a.example/rss", etag='"2"', error_streak=2, next_poll_at=9.0)
        await sink.save_state("one", later)
        await sink.save_state("two", FeedState(url="https://b.example/rss"))
    finally:
        await producer.stop()

    # A "restarted" fetcher reads both back.
    states = await load_states(settings)
    assert states["one"] == later, "the latest state per feed wins"
    assert set(states) == {"one", "two"}
    seen = await load_seen_ids(settings, 100)
    assert "abc123" in seen
    assert url_key("https://news.example.org/story") in seen
    assert seen.feed_of("abc123") == "one"
