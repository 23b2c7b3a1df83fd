"""End to end on the real broker: a local feed in, exactly one alert and one Slack POST out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from newsmon.runner import serve
from newsmon.shared.messages import Alert, decode
from newsmon.shared.metrics import Metrics
from newsmon.shared.services import SERVICE_NAMES
from newsmon.shared.settings import Settings
from pydantic import SecretStr

from tests.support.feed_server import serve_directory
from tests.support.kafka_read import read_topic
from tests.support.slack_stub import SlackStub

pytestmark = pytest.mark.kafka

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
E2E_FEED = "nk-russia-e2e.xml"
ITEMS_IN_FEED = 6


def _write_feeds_file(tmp_path: Path, feed_url: str) -> Path:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feed]]\nname = "e2e"\nurl = "{feed_url}"\n', encoding="utf-8")
    return feeds


async def test_feed_to_alert_topic_and_slack(kafka_settings: Settings, tmp_path: Path) -> None:
    metrics = Metrics()
    stop = asyncio.Event()
    async with SlackStub() as slack:
        with serve_directory(FIXTURES) as base_url:
            settings = kafka_settings.with_overrides(
                feeds_file=_write_feeds_file(tmp_path, f"{base_url}/{E2E_FEED}"),
                slack_webhook_url=SecretStr(slack.webhook_url()),
            )
            pipeline = asyncio.create_task(
                serve(
                    settings,
                    SERVICE_NAMES,
                    process_name="run",
                    start_broker=False,
                    stop=stop,
                    metrics=metrics,
                )
            )
            try:
                # Every article classified, so every chance to alert wrongly has passed.
                classified = await read_topic(
                    settings.kafka_bootstrap or "",
                    settings.topics.classified,
                    until=lambda rs: len(rs) >= ITEMS_IN_FEED,
                    timeout_s=90,
                )
                alerts = await read_topic(
                    settings.kafka_bootstrap or "",
                    settings.topics.alerts,
                    until=lambda rs: len(rs) >= 1,
                    timeout_s=30,
                    settle_s=2.0,
                )
                async with asyncio.timeout(30):
                    await slack.wait_for_requests(1)
                await asyncio.sleep(1.0)  # room for a wrong second POST to arrive
            finally:
                stop.set()
                exit_code = await asyncio.wait_for(pipeline, timeout=30)

    assert exit_code == 0
    assert len(classified) == ITEMS_IN_FEED
    assert len(alerts) == 1, [json.loads(r.value) for r in alerts]
    alert = decode(Alert, alerts[0].value)
    assert "Kursk" in alert.title
    assert alert.feed == "e2e"
    assert alert.evidence, "an alert says why it matched"
    assert alert.categories
    headers = {k: v.decode() for k, v in alerts[0].headers}
    assert headers["ce_type"] == "io.newsmon.alert.v1"
    assert headers["ce_id"] == f"{alert.alert_id}.r1"
    assert headers["content-type"] == "application/json"
    assert alerts[0].key == alert.story_id.encode()

    assert len(slack.requests) == 1
    post = slack.requests[0]
    assert post.method == "POST"
    assert post.json is not None
    assert "blocks" in post.json
    assert "Kursk" in post.json["text"]

    items_out = metrics.registry.get_sample_value(
        "newsmon_items_out_total", {"service": "alerter", "topic": settings.topics.alerts}
    )
    assert items_out == 1
