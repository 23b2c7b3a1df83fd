"""The notifier on the real broker with the Slack stand-in: outages, restarts, routing, updates."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from newsmon.notifier import app as notifier
from newsmon.runner import serve
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings
from pydantic import SecretStr

from tests.service.test_alerter_grouping import classified, produce, read_alerts
from tests.support.slack_stub import SlackStub, StubRequest

pytestmark = pytest.mark.kafka


def story_of(request: StubRequest) -> str:
    """'Story N' (and 'update' for an update message) from a posted payload."""
    assert request.json is not None
    text: str = request.json["text"]
    number = text.split("Story ", 1)[1].split(":", 1)[0]
    kind = "update" if text.startswith("newsmon update") else "alert"
    return f"{kind} {number}"


class Running:
    """`serve()` with the given services in this process, stopped on exit."""

    def __init__(self, settings: Settings, names: Sequence[str]) -> None:
        self.settings = settings
        self.names = names
        self.metrics = Metrics()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[int] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(
            serve(
                self.settings,
                self.names,
                process_name="run",
                start_broker=False,
                stop=self.stop,
                metrics=self.metrics,
            )
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        assert await asyncio.wait_for(self.task, timeout=30) == 0


SKIPPED = {"reason": "already_delivered"}


async def until(condition: Callable[[], bool]) -> None:
    """Poll `condition` (wrap in `asyncio.timeout`)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.2)


def fast_slack(settings: Settings, url: str, **more: object) -> Settings:
    return settings.with_overrides(
        slack_webhook_url=SecretStr(url), slack_min_interval_s=0.02, slack_max_attempts=2, **more
    )


async def test_slack_outage_then_recovery_delivers_every_alert_once(
    kafka_settings: Settings,
) -> None:
    async with SlackStub() as slack:
        settings = fast_slack(kafka_settings, slack.webhook_url())
        await ensure_topics(settings)
        slack.script(["500"] * 10_000)  # Slack down until we say so
        await produce(settings, [classified(n, 0) for n in range(1, 5)])
        async with Running(settings, ["alerter", "notifier"]) as running:
            await read_alerts(settings, 4, settle_s=0)
            async with asyncio.timeout(60):
                await slack.wait_for_requests(3)  # the outage was hit, and retried
            await asyncio.sleep(3.0)  # a few seconds of outage
            failed = list(slack.requests)
            slack.reset()  # no await in between: no request falls between the two lines
            async with asyncio.timeout(90):
                await slack.wait_for_requests(4)
            await asyncio.sleep(2.0)  # room for a wrong extra post
            delivered = Counter(story_of(r) for r in slack.requests)
            value = running.metrics.registry.get_sample_value
            retries = value("newsmon_slack_retries_total", {"reason": "5xx"})
            sends_ok = value("newsmon_slack_sends_total", {"outcome": "ok"})

    assert failed, "the outage was seen"
    assert delivered == Counter({f"alert {n}": 1 for n in range(1, 5)})
    assert retries is not None
    assert retries >= len(failed)
    assert sends_ok == 4


async def _rewind_group(settings: Settings, group: str) -> None:
    """Forget the notifier's committed offsets, as if every commit had been lost."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.alerts, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


async def test_updates_category_webhooks_and_no_second_post_after_restart(
    kafka_settings: Settings,
) -> None:
    async with SlackStub() as slack:
        troops_url = slack.webhook_url("/services/T1/TROOPS/secret")
        settings = fast_slack(
            kafka_settings,
            slack.webhook_url("/services/T1/DEFAULT/secret"),
            slack_category_webhooks={"troops": SecretStr(troops_url)},
        )
        await ensure_topics(settings)
        await produce(
            settings,
            [
                classified(21, 0),  # troops: the troops webhook
                classified(22, 0, categories=("weapons",)),  # no category webhook: default
                classified(21, 1),
                classified(21, 2),
            ],
        )
        async with Running(settings, ["alerter", "notifier"]):
            async with asyncio.timeout(60):
                await slack.wait_for_requests(4)
            await asyncio.sleep(1.5)
        first = list(slack.requests)

        # Every commit "lost": the notifier re-reads the whole topic, and posts nothing again.
        await _rewind_group(settings, notifier.notifier_group(settings))
        slack.reset()
        async with Running(settings, ["notifier"]) as again:
            value = again.metrics.registry.get_sample_value
            async with asyncio.timeout(60):
                await until(lambda: value("newsmon_slack_skipped_total", SKIPPED) == 4)
        second = list(slack.requests)

    by_path = Counter((r.path.split("/")[3], story_of(r)) for r in first)
    assert by_path == Counter(
        {
            ("TROOPS", "alert 21"): 1,
            ("TROOPS", "update 21"): 2,
            ("DEFAULT", "alert 22"): 1,
        }
    )
    updates = [r.json for r in first if r.json and r.json["text"].startswith("newsmon update")]
    assert {u["text"].split(":")[0] for u in updates} == {"newsmon update 2", "newsmon update 3"}
    assert second == [], [r.json for r in second]


def test_delivery_keys_name_the_webhook_not_its_secret() -> None:
    from tests.support.slack_stub import sample_alert

    key = notifier.delivery_key(sample_alert(revision=2), "troops")
    assert key == f"{'a' * 24}.r2.troops"
