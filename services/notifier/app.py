"""The Slack notifier: its own consumer group on the alerts topic, one message per alert.

An alert's offset is committed only after Slack answered 2xx (or after a permanent refusal was
dead-lettered), so an outage delays notifications but never drops one.

A restart never posts twice. Slack webhooks have no idempotency key, so the notifier remembers
what it delivered: after each 2xx it writes `<alert_id>.r<revision>.<webhook label>` to the
compacted topic `<prefix>.notifier-state.v1` (acks=all) and only then commits the alert's
offset. Committed offsets alone already skip everything before them; the markers cover the
rest: an alert posted whose offset commit was lost (crash, rebalance), the same revision
appearing twice on the alerts topic (an at-least-once alerter), and an alert posted to some of
its webhooks before another failed. The markers are read back at start and whenever
partitions are assigned. What remains is the moment between Slack's 2xx and the marker's
acknowledgement: a crash exactly there posts that one message again (at-least-once; no
webhook API lets us do better).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from newsmon.alerter.statestore import ensure_state_topic, read_state_topic
from newsmon.shared.backoff import Backoff
from newsmon.shared.kafka import (
    dlq_headers,
    ensure_topics,
    make_consumer,
    make_producer,
    wait_for_leaders,
)
from newsmon.shared.lifecycle import (
    CLOSE_SHARE,
    IN_FLIGHT_SHARE,
    Abandoned,
    close_within,
    finish_or_abandon,
    sleep_or_stop,
)
from newsmon.shared.messages import Alert, MessageDecodeError, decode, utc_now
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Record, observe_lag
from newsmon.shared.settings import Settings

from .slack import (
    Outcome,
    RetryPolicy,
    SlackPermanentError,
    SlackRetriableError,
    SlackSender,
    WebhookRateLimiter,
    WebhookUrl,
    build_payload,
    build_update_payload,
    webhooks_for,
)

__all__ = ["Notifier", "notifier_state_topic", "run"]

log = logging.getLogger("newsmon.notifier")

SERVICE = "notifier"
# After Slack failed, the next try of the alert comes this soon at the latest (the pause doubles
# from 1 s): an outage costs one probe (a single POST) every few seconds, and a recovery is
# noticed within them. A 429's Retry-After is still honoured: the rate limiter holds every
# POST to that webhook until it has passed.
SLACK_PROBE_MAX_S = 5.0
# The pause cap when the broker refused a commit or a marker.
KAFKA_RETRY_MAX_S = 30.0
# Markers older than this are dropped by the broker; an alert replayed later than that from
# the alerts topic (a reset of the group's offsets) would be posted again, on purpose.
MARKER_RETENTION_MS = 30 * 86400 * 1000


def notifier_state_topic(settings: Settings) -> str:
    return f"{settings.topic_prefix}.notifier-state.v1"


def delivery_key(alert: Alert, label: str) -> str:
    return f"{alert.alert_id}.r{alert.revision}.{label}"


class Notifier:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        sender: SlackSender,
        webhook: WebhookUrl | None,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        stop: asyncio.Event,
        category_webhooks: Mapping[str, WebhookUrl] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sender = sender
        self.webhook = webhook
        self.category_webhooks = dict(category_webhooks or {})
        self.consumer = consumer
        self.producer = producer
        self.stop = stop
        self.delivered: set[str] = set()
        # Delivered (Slack said 2xx) but the marker is not acknowledged yet: written again
        # before the alert's offset is committed.
        self._unmarked: dict[str, bytes] = {}
        self.state_topic = notifier_state_topic(settings)
        self.group = f"{settings.topic_prefix}-notifier"
        self._retry = Backoff(first_s=1.0, cap_s=KAFKA_RETRY_MAX_S)
        # When Slack started failing (monotonic, wall clock); None while it answers.
        self._slack_down_since: tuple[float, datetime] | None = None

    async def load_delivered(self) -> None:
        """Markers written by any replica, so far (see the module docstring)."""
        records = await read_state_topic(self.settings, self.state_topic)
        self.delivered |= {key.decode("utf-8", "replace") for key, v in records.items() if v}
        log.info("%d delivered alert messages remembered", len(self.delivered))

    async def loop(self) -> None:
        topic = self.settings.topics.alerts
        while not self.stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=500, max_records=50)
            await observe_lag(self.metrics, SERVICE, self.group, self.consumer)
            for tp, records in batch.items():
                for record in records:
                    if tp not in self.consumer.assignment():
                        break  # revoked by a rebalance meanwhile: its new owner reads these
                    self.metrics.items_in.labels(SERVICE, topic).inc()
                    try:
                        # A post or a marker in progress when SIGTERM came gets part of the
                        # shutdown budget; abandoned after that (Abandoned ends the loop).
                        handled = await finish_or_abandon(
                            self.handle(tp, record),
                            self.stop,
                            IN_FLIGHT_SHARE * self.settings.shutdown_timeout_s,
                        )
                    except KafkaError as exc:  # broker away, or a rebalance refused the commit
                        await self._kafka_failed(tp, record, exc)
                        handled = False
                    if not handled:
                        break  # the rest of this partition is re-read after the rewind

    async def handle(self, tp: TopicPartition, record: Record) -> bool:
        """Deliver one alert. False: not delivered yet, partition rewound to it."""
        try:
            alert = decode(Alert, record.value)
        except MessageDecodeError as exc:
            await self._dead_letter(record, exc)
            await self._commit(tp, record)
            return True
        if alert.revision > 1 and not self.settings.slack_post_updates:
            self.metrics.slack_skipped.labels("update_muted").inc()
        else:
            targets = webhooks_for(alert, self.webhook, self.category_webhooks)
            if not targets:
                self.metrics.slack_skipped.labels("no_webhook").inc()
            for label, webhook in targets:
                if not await self._deliver(tp, record, alert, label, webhook):
                    return False
        await self._commit(tp, record)
        self._retry.reset()
        return True

    async def _deliver(
        self, tp: TopicPartition, record: Record, alert: Alert, label: str, webhook: WebhookUrl
    ) -> bool:
        key = delivery_key(alert, label)
        if key in self._unmarked:
            await self._write_marker(key)
            return True
        if key in self.delivered:
            self.metrics.slack_skipped.labels("already_delivered").inc()
            return True
        payload = build_payload(alert) if alert.revision == 1 else build_update_payload(alert)
        # While Slack is failing, one POST per try (a probe), not a full retry sequence.
        probe = 1 if self._slack_down_since is not None else None
        try:
            result = await self.sender.send(webhook, payload, max_attempts=probe)
        except SlackPermanentError as exc:
            self._slack_answered()
            await self._dead_letter(record, exc)
            await self._remember(key, alert, label, "refused")
            return True
        except SlackRetriableError as exc:
            await self._slack_failed(tp, record, exc)
            return False
        except _Stopping:
            return False  # not delivered; the offset stays uncommitted
        self._slack_answered()
        await self._remember(key, alert, label, "delivered")
        self.metrics.items_out.labels(SERVICE, "slack").inc()
        self.metrics.slack_delivery_seconds.observe((utc_now() - alert.alerted).total_seconds())
        log.info(
            "sent alert %s r%d to Slack (%s)",
            alert.alert_id,
            alert.revision,
            label,
            extra={
                "alert_id": alert.alert_id,
                "revision": alert.revision,
                "webhook": label,
                "attempts": result.attempts,
            },
        )
        return True

    async def _remember(self, key: str, alert: Alert, label: str, outcome: str) -> None:
        marker = {
            "alert_id": alert.alert_id,
            "revision": alert.revision,
            "webhook": label,
            "outcome": outcome,
            "at": utc_now().isoformat(),
        }
        # Remembered here first: if the marker is not acknowledged (broker away), the retry
        # of this alert writes it again instead of posting to Slack a second time.
        self.delivered.add(key)
        self._unmarked[key] = json.dumps(marker).encode()
        await self._write_marker(key)

    async def _write_marker(self, key: str) -> None:
        await self.producer.send_and_wait(self.state_topic, self._unmarked[key], key=key.encode())
        del self._unmarked[key]

    async def _commit(self, tp: TopicPartition, record: Record) -> None:
        await self.consumer.commit({tp: record.offset + 1})

    async def _dead_letter(self, record: Record, error: Exception) -> None:
        log.warning(
            "dead-lettered an alert: %s",
            error,
            extra={
                "service": SERVICE,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                # The key is the story id: the thread to follow across stages.
                "message_key": record.key.decode("utf-8", "replace") if record.key else None,
                "error_type": type(error).__name__,
            },
        )
        await self.producer.send_and_wait(
            self.settings.topics.dlq,
            record.value,
            key=record.key,
            headers=dlq_headers(record, stage=SERVICE, error=error),
        )
        self.metrics.dlq.labels(SERVICE, type(error).__name__).inc()

    async def _slack_failed(self, tp: TopicPartition, record: Record, error: Exception) -> None:
        """One line when Slack starts failing (not one per probe), then probe again soon."""
        self.metrics.errors.labels(SERVICE, "slack_unavailable").inc()
        if self._slack_down_since is None:
            self._slack_down_since = (time.monotonic(), utc_now())
            log.warning(
                "Slack unavailable: alerts kept, probing again every %.0fs at most: %s",
                SLACK_PROBE_MAX_S,
                error,
                extra={"offset": record.offset, "partition": record.partition},
            )
        else:
            log.debug("Slack still unavailable: %s", error)
        await self._replay_later(tp, record, SLACK_PROBE_MAX_S)

    def _slack_answered(self) -> None:
        if self._slack_down_since is None:
            return
        since, at = self._slack_down_since
        self._slack_down_since = None
        self._retry.reset()
        log.info(
            "Slack answers again after %.0fs (unavailable since %s)",
            time.monotonic() - since,
            at.isoformat(timespec="seconds"),
        )

    async def _kafka_failed(self, tp: TopicPartition, record: Record, error: KafkaError) -> None:
        self.metrics.errors.labels(SERVICE, "kafka").inc()
        log.warning(
            "Kafka call failed, alert kept for later (retry in %.0fs): %s",
            self._retry.delay_s,
            error,
            extra={"offset": record.offset, "partition": record.partition},
        )
        await self._replay_later(tp, record, KAFKA_RETRY_MAX_S)

    async def _replay_later(self, tp: TopicPartition, record: Record, cap_s: float) -> None:
        # A partition revoked meanwhile is left alone: its new owner starts from the
        # committed offset, which this alert never moved past.
        with contextlib.suppress(IllegalStateError):
            self.consumer.seek(tp, record.offset)
        await self._retry.pause(self.stop, cap_s=cap_s)


class _Stopping(Exception):  # noqa: N818 - a signal, not an error
    """SIGTERM arrived while a Slack send was waiting (rate limit, Retry-After, backoff)."""


def _stoppable_sleep(stop: asyncio.Event) -> Callable[[float], Awaitable[None]]:
    """The sender's and rate limiter's sleep: cut short by `stop`, which then ends the send
    (the alert is not delivered and its offset stays uncommitted), so a long Retry-After or
    backoff never outlives the shutdown budget."""

    async def sleep(seconds: float) -> None:
        await sleep_or_stop(stop, seconds)
        if stop.is_set():
            raise _Stopping

    return sleep


class _ReloadOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions taken over from another replica: read its delivery markers first."""

    def __init__(self) -> None:
        self.notifier: Notifier | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.notifier is not None and assigned:
            await self.notifier.load_delivered()


def _retry_reason(outcome: Outcome) -> str | None:
    return outcome.removeprefix("retry_") if outcome.startswith("retry_") else None


def _on_attempt(metrics: Metrics) -> Any:
    def hook(outcome: Outcome) -> None:
        metrics.slack_sends.labels(outcome).inc()
        reason = _retry_reason(outcome)
        if reason is not None:
            metrics.slack_retries.labels(reason).inc()

    return hook


def configured_webhooks(settings: Settings) -> tuple[WebhookUrl | None, dict[str, WebhookUrl]]:
    default = (
        WebhookUrl(settings.slack_webhook_url.get_secret_value())
        if settings.slack_webhook_url is not None
        else None
    )
    by_category = {
        category: WebhookUrl(url.get_secret_value())
        for category, url in settings.slack_category_webhooks.items()
    }
    return default, by_category


async def _create_topics(settings: Settings, topics: Sequence[str]) -> None:
    """The notifier's output topics that went missing: its state topic compacted."""
    state = notifier_state_topic(settings)
    if state in topics:
        await ensure_state_topic(settings, state, retention_ms=MARKER_RETENTION_MS)
    plain = [t for t in topics if t != state]
    if plain:
        await ensure_topics(settings, plain)


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    webhook, by_category = configured_webhooks(settings)
    if webhook is None and not by_category:
        log.info("no Slack webhook configured (NEWSMON_SLACK_WEBHOOK_URL): notifier idle")
        metrics.health.set_idle(SERVICE)
        await stop.wait()
        return
    await ensure_state_topic(
        settings, notifier_state_topic(settings), retention_ms=MARKER_RETENTION_MS
    )
    client_id = f"newsmon-notifier.{settings.instance_id}"
    group = f"{settings.topic_prefix}-notifier"
    consumer = make_consumer(settings, group_id=group, client_id=client_id)
    listener = _ReloadOnAssign()
    consumer.subscribe([settings.topics.alerts], listener=listener)
    producer = make_producer(settings, client_id=client_id)
    async with httpx.AsyncClient(timeout=10.0) as client:
        sleep = _stoppable_sleep(stop)
        sender = SlackSender(
            client,
            policy=RetryPolicy(max_attempts=settings.slack_max_attempts),
            limiter=WebhookRateLimiter(interval_s=settings.slack_min_interval_s, sleep=sleep),
            sleep=sleep,
            on_attempt=_on_attempt(metrics),
        )
        await producer.start()
        try:
            # Both topics it writes to tracked from the start (see wait_for_leaders).
            await wait_for_leaders(
                producer,
                [notifier_state_topic(settings), settings.topics.dlq],
                stop=stop,
                create_missing=lambda topics: _create_topics(settings, topics),
                service=SERVICE,
            )
            notifier = Notifier(
                settings, metrics, sender, webhook, consumer, producer, stop, by_category
            )
            budget = settings.shutdown_timeout_s
            await finish_or_abandon(notifier.load_delivered(), stop, IN_FLIGHT_SHARE * budget)
            listener.notifier = notifier
            await consumer.start()
            try:
                shown = ", ".join(
                    [*(f"{c}: {w}" for c, w in by_category.items()), f"default: {webhook}"]
                )
                log.info("sending alerts to Slack (%s)", shown)
                await notifier.loop()
            finally:
                metrics.consumer_stopped(SERVICE, group)
                await close_within(consumer.stop(), CLOSE_SHARE * budget, "the Kafka consumer")
        except Abandoned:
            log.warning(
                "stopping: gave up the alert in progress (not committed: it is handled again "
                "after the restart; a post Slack had already received is posted again)"
            )
        finally:
            await close_within(
                producer.stop(), CLOSE_SHARE * settings.shutdown_timeout_s, "the Kafka producer"
            )
