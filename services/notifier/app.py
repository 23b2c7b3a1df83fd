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
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from newsmon.shared.deadletter import DeadLetters
from newsmon.shared.kafka import make_consumer, make_producer, wait_for_leaders
from newsmon.shared.lifecycle import (
    CLOSE_SHARE,
    IN_FLIGHT_SHARE,
    Abandoned,
    close_within,
    finish_or_abandon,
    sleep_or_stop,
)
from newsmon.shared.logging import Outage
from newsmon.shared.messages import Alert, MessageDecodeError, decode, utc_now
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Record, observe_lag
from newsmon.shared.rewind import Rewind
from newsmon.shared.services import client_id, consumer_group
from newsmon.shared.settings import Settings
from newsmon.shared.statetopic import ensure_output_topics

from .markers import (
    DeliveryMarkers,
    delivery_key,
    ensure_marker_topic,
    marker_topic,
    notifier_state_topic,
)
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

__all__ = ["Notifier", "delivery_key", "notifier_group", "run"]

log = logging.getLogger("newsmon.notifier")

SERVICE = "notifier"
# After Slack failed, the next try of the alert comes this soon at the latest (the pause doubles
# from 1 s): an outage costs one probe (a single POST) every few seconds, and a recovery is
# noticed within them. A 429's Retry-After is still honoured: the rate limiter holds every
# POST to that webhook until it has passed.
SLACK_PROBE_MAX_S = 5.0
# When the broker refused a commit or a marker, the pause grows to shared.rewind's
# KAFKA_RETRY_CAP_S, the same as the pipeline stages'.


def notifier_group(settings: Settings) -> str:
    """The notifier's consumer group (its committed offsets on the alerts topic)."""
    return consumer_group(settings.topic_prefix, SERVICE)


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
        *,
        first_retry_s: float = 1.0,
    ) -> None:
        """`first_retry_s`: the first pause before an alert Slack or Kafka failed is tried
        again (doubling from there, shared/rewind.py)."""
        self.settings = settings
        self.metrics = metrics
        self.sender = sender
        self.webhook = webhook
        self.category_webhooks = dict(category_webhooks or {})
        self.consumer = consumer
        self.producer = producer
        self.stop = stop
        self.markers = DeliveryMarkers(settings.topics, producer)
        self.dead_letters = DeadLetters(topic=settings.topics.dlq, service=SERVICE, metrics=metrics)
        self.group = notifier_group(settings)
        self.rewind = Rewind(stop, first_s=first_retry_s)
        # Slack failing: one line when it starts and one when it ends (not one per probe).
        self._slack_outage = Outage()

    async def load_delivered(self) -> None:
        """Markers written by any replica, so far (see the module docstring)."""
        await self.markers.load(self.settings)

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
                        await self._kafka_failed(record, exc)
                        handled = False
                    if not handled:
                        break  # the rest of this partition is re-read after the rewind

    async def handle(self, tp: TopicPartition, record: Record) -> bool:
        """Deliver one alert. False: not delivered yet, partition rewound to it."""
        try:
            alert = decode(Alert, record.value)
        except MessageDecodeError as exc:
            await self.dead_letters.send_and_wait(self.producer, record, exc)
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
        self.rewind.reset()
        return True

    async def _deliver(
        self, tp: TopicPartition, record: Record, alert: Alert, label: str, webhook: WebhookUrl
    ) -> bool:
        key = delivery_key(alert, label)
        if self.markers.unmarked(key):
            await self.markers.write(key)
            return True
        if self.markers.delivered_before(key):
            self.metrics.slack_skipped.labels("already_delivered").inc()
            return True
        payload = build_payload(alert) if alert.revision == 1 else build_update_payload(alert)
        # While Slack is failing, one POST per try (a probe), not a full retry sequence.
        probe = 1 if self._slack_outage.ongoing else None
        try:
            result = await self.sender.send(webhook, payload, max_attempts=probe)
        except SlackPermanentError as exc:
            self._slack_answered()
            await self.dead_letters.send_and_wait(self.producer, record, exc)
            await self.markers.remember(key, alert, label, "refused")
            return True
        except SlackRetriableError as exc:
            await self._slack_failed(record, exc)
            return False
        except _Stopping:
            return False  # not delivered; the offset stays uncommitted
        self._slack_answered()
        await self.markers.remember(key, alert, label, "delivered")
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

    async def _commit(self, tp: TopicPartition, record: Record) -> None:
        await self.consumer.commit({tp: record.offset + 1})

    async def _slack_failed(self, record: Record, error: Exception) -> None:
        """One line when Slack starts failing (not one per probe), then probe again soon."""
        self.metrics.errors.labels(SERVICE, "slack_unavailable").inc()
        if self._slack_outage.begin():
            log.warning(
                "Slack unavailable: alerts kept, probing again every %.0fs at most: %s",
                SLACK_PROBE_MAX_S,
                error,
                extra={"offset": record.offset, "partition": record.partition},
            )
        else:
            log.debug("Slack still unavailable: %s", error)
        await self.rewind.replay_later(self.consumer, [record], cap_s=SLACK_PROBE_MAX_S)

    def _slack_answered(self) -> None:
        at = self._slack_outage.started_at
        lasted = self._slack_outage.end()
        if lasted is None or at is None:
            return
        self.rewind.reset()
        log.info(
            "Slack answers again after %.0fs (unavailable since %s)",
            lasted,
            at.isoformat(timespec="seconds"),
        )

    async def _kafka_failed(self, record: Record, error: KafkaError) -> None:
        self.metrics.errors.labels(SERVICE, "kafka").inc()
        log.warning(
            "Kafka call failed, alert kept for later (retry in %.0fs): %s",
            self.rewind.delay_s,
            error,
            extra={"offset": record.offset, "partition": record.partition},
        )
        await self.rewind.replay_later(self.consumer, [record])


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


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    webhook, by_category = configured_webhooks(settings)
    if webhook is None and not by_category:
        log.info("no Slack webhook configured (NEWSMON_SLACK_WEBHOOK_URL): notifier idle")
        metrics.health.set_idle(SERVICE)
        await stop.wait()
        return
    await ensure_marker_topic(settings)
    own_id = client_id(settings.topic_prefix, SERVICE, settings.instance_id)
    group = notifier_group(settings)
    consumer = make_consumer(settings, group_id=group, client_id=own_id)
    listener = _ReloadOnAssign()
    consumer.subscribe([settings.topics.alerts], listener=listener)
    producer = make_producer(settings, client_id=own_id)
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
                # Output topics that went missing: the marker topic compacted.
                create_missing=lambda topics: ensure_output_topics(
                    settings, topics, [marker_topic(settings.topics)]
                ),
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
