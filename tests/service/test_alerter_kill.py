"""kill -9 of the alerter process mid-stream, then a restart: nothing lost, nothing twice.

The alerter runs as a real process (`python -m newsmon alerter`) on the test broker; the
notifier runs in this process and posts to the Slack stand-in. Counted on the alerts topic with
read_committed, and at the stand-in.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.messages import Alert, decode
from newsmon.shared.settings import Settings

from tests.service.test_alerter_grouping import VALIDATOR, classified, produce, read_alerts
from tests.service.test_notifier_delivery import Running, fast_slack, story_of
from tests.support.kafka_read import read_topic
from tests.support.slack_stub import SlackStub

pytestmark = pytest.mark.kafka

STORIES = 30
REPO = Path(__file__).resolve().parents[2]


def start_alerter(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NEWSMON_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "NEWSMON_TOPIC_PREFIX": settings.topic_prefix,
        "NEWSMON_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "NEWSMON_INSTANCE_ID": "kill-test",  # the same on restart: fences the killed one
        "NEWSMON_METRICS_PORT": "0",
        "NEWSMON_BATCH_SIZE": "4",
        # The broker's minimum: the restart waits for the killed member's eviction 4 s less.
        "NEWSMON_KAFKA_SESSION_TIMEOUT_S": "6",
        "NEWSMON_LOG_FORMAT": "json",
    }
    env.pop("NEWSMON_CONFIG_FILE", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "newsmon", "alerter"], env=env, cwd=REPO, stdout=out, stderr=out
        )


async def test_kill_9_mid_batch_then_restart_loses_and_duplicates_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "alerter.log"
    async with SlackStub() as slack:
        settings = fast_slack(kafka_settings, slack.webhook_url())
        await ensure_topics(settings)
        await produce(settings, [classified(n, c) for c in (0, 1) for n in range(STORIES)])
        async with Running(settings, ["notifier"]):
            first = start_alerter(settings, log)
            try:
                await read_topic(
                    settings.kafka_bootstrap or "",
                    settings.topics.alerts,
                    until=lambda rs: len(rs) >= 10,
                    timeout_s=60,
                )
                first.send_signal(signal.SIGKILL)
                assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
            finally:
                if first.poll() is None:
                    first.kill()
                    first.wait()
            # Third copies arrive while it is down; the restarted alerter must know the stories.
            await produce(settings, [classified(n, 2) for n in range(STORIES)])
            second = start_alerter(settings, log)
            try:
                records = await read_alerts(settings, 3 * STORIES, settle_s=3.0)
                async with asyncio.timeout(60):
                    await slack.wait_for_requests(3 * STORIES)
                await asyncio.sleep(2.0)  # room for a wrong extra post
            finally:
                second.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(second.wait, 30)
        posts = Counter(story_of(r) for r in slack.requests)

    assert code == 0, log.read_text(errors="replace")[-3000:]
    alerts = [decode(Alert, r.value) for r in records]
    seen = Counter((a.alert_id, a.revision) for a in alerts)
    assert len(alerts) == 3 * STORIES, f"{len(alerts)} alerts: lost or duplicated"
    assert set(seen.values()) == {1}, "an alert revision appeared twice"
    per_story = Counter(a.alert_id for a in alerts)
    assert len(per_story) == STORIES
    assert set(per_story.values()) == {3}
    assert all(len(a.sources) == a.revision for a in alerts)
    for record in records:
        VALIDATOR.validate(__import__("json").loads(record.value))
    assert posts == Counter(
        {**{f"alert {n}": 1 for n in range(STORIES)}, **{f"update {n}": 2 for n in range(STORIES)}}
    )
