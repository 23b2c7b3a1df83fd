"""The Slack notifier: its own consumer group on the alerts topic, one message per alert.

An alert's offset is committed only after Slack answered 2xx (or after a permanent refusal was
dead-lettered), so an outage delays notifications but never drops one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from newsmon.shared.kafka import dlq_headers, make_consumer, make_producer
from newsmon.shared.messages import Alert, MessageDecodeError, decode, utc_now
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Record, observe_lag
from newsmon.shared.settings import Settings

from .slack import (
    RetryPolicy,
    SlackPermanentError,
    SlackRetriableError,
    SlackSender,
    WebhookUrl,
    build_payload,
)

__all__ = ["Notifier", "run"]

log = logging.getLogger("newsmon.notifier")

SERVICE = "notifier"


class Notifier:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        sender: SlackSender,
        webhook: WebhookUrl,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sender = sender
        self.webhook = webhook
        self.consumer = consumer
        self.producer = producer
        self.stop = stop
        self.delivered: set[str] = set()
        self.group = f"{settings.topic_prefix}-notifier"
        self._pause_s = 1.0

    async def loop(self) -> None:
        topic = self.settings.topics.alerts
        while not self.stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=500, max_records=50)
            await observe_lag(self.metrics, SERVICE, self.group, self.consumer)
            for tp, records in batch.items():
                for record in records:
                    self.metrics.items_in.labels(SERVICE, topic).inc()
                    if not await self.handle(tp, record):
                        break  # the rest of this partition is re-read after the rewind

    async def handle(self, tp: TopicPartition, record: Record) -> bool:
        """Deliver one alert. False: not delivered yet, partition rewound to it."""
        try:
            alert = decode(Alert, record.value)
        except MessageDecodeError as exc:
            await self._dead_letter(record, exc)
            await self._commit(tp, record)
            return True
        key = f"{alert.alert_id}.r{alert.revision}"
        if key not in self.delivered:
            try:
                result = await self.sender.send(self.webhook, build_payload(alert))
            except SlackPermanentError as exc:
                await self._dead_letter(record, exc)
            except SlackRetriableError as exc:
                await self._rewind(tp, record, exc)
                return False
            else:
                self.delivered.add(key)
                self.metrics.items_out.labels(SERVICE, "slack").inc()
                self.metrics.slack_delivery_seconds.observe(
                    (utc_now() - alert.alerted).total_seconds()
                )
                log.info(
                    "sent alert %s to Slack",
                    alert.alert_id,
                    extra={"alert_id": alert.alert_id, "attempts": result.attempts},
                )
        await self._commit(tp, record)
        self._pause_s = 1.0
        return True

    async def _commit(self, tp: TopicPartition, record: Record) -> None:
        await self.consumer.commit({tp: record.offset + 1})

    async def _dead_letter(self, record: Record, error: Exception) -> None:
        log.warning(
            "dead-lettered an alert: %s",
            error,
            extra={"offset": record.offset, "partition": record.partition},
        )
        await self.producer.send_and_wait(
            self.settings.topics.dlq,
            record.value,
            key=record.key,
            headers=dlq_headers(record, stage=SERVICE, error=error),
        )
        self.metrics.dlq.labels(SERVICE, type(error).__name__).inc()

    async def _rewind(self, tp: TopicPartition, record: Record, error: Exception) -> None:
        self.metrics.errors.labels(SERVICE, "slack_unavailable").inc()
        log.warning(
            "Slack unavailable, alert kept for later (retry in %.0fs): %s",
            self._pause_s,
            error,
            extra={"offset": record.offset},
        )
        self.consumer.seek(tp, record.offset)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=self._pause_s)
        self._pause_s = min(self._pause_s * 2, 60.0)


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    if settings.slack_webhook_url is None:
        log.info("no Slack webhook configured (NEWSMON_SLACK_WEBHOOK_URL): notifier idle")
        metrics.health.set_idle(SERVICE)
        await stop.wait()
        return
    webhook = WebhookUrl(settings.slack_webhook_url.get_secret_value())
    client_id = f"newsmon-notifier.{settings.instance_id}"
    consumer = make_consumer(
        settings,
        settings.topics.alerts,
        group_id=f"{settings.topic_prefix}-notifier",
        client_id=client_id,
    )
    producer = make_producer(settings, client_id=client_id)
    async with httpx.AsyncClient(timeout=10.0) as client:
        sender = SlackSender(
            client,
            policy=RetryPolicy(max_attempts=settings.slack_max_attempts),
            on_attempt=lambda outcome: metrics.slack_sends.labels(outcome).inc(),
        )
        await producer.start()
        try:
            await consumer.start()
            try:
                log.info("sending alerts to Slack at %s", webhook)
                await Notifier(settings, metrics, sender, webhook, consumer, producer, stop).loop()
            finally:
                metrics.consumer_stopped(SERVICE, f"{settings.topic_prefix}-notifier")
                await consumer.stop()
        finally:
            await producer.stop()
