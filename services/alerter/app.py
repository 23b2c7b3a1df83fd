"""The alerter service: classified articles in, alerts out (newsmon.alerts.v1)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from newsmon.shared.messages import Classified, decode, encode, utc_now
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Output, Processor, Record
from newsmon.shared.settings import Settings

from .alerts import alert_from, alert_headers

__all__ = ["run"]

log = logging.getLogger("newsmon.alerter")


class AlertTransform:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.topic = settings.topics.alerts
        self.metrics = metrics

    def __call__(self, record: Record) -> Sequence[Output]:
        classified = decode(Classified, record.value)
        if not classified.match:
            return ()
        alert = alert_from(classified, now=utc_now())
        self.metrics.e2e_seconds.labels("fetched").observe(
            (alert.alerted - alert.fetched).total_seconds()
        )
        if alert.published is not None:
            self.metrics.e2e_seconds.labels("published").observe(
                max((alert.alerted - alert.published).total_seconds(), 0.0)
            )
        log.info(
            "alert %s: %s",
            alert.alert_id,
            alert.title,
            extra={"alert_id": alert.alert_id, "article_id": alert.article_id},
        )
        return (Output(self.topic, alert.story_id.encode(), encode(alert), alert_headers(alert)),)


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    processor = Processor(
        settings=settings,
        service="alerter",
        source_topic=settings.topics.classified,
        transform=AlertTransform(settings, metrics),
        metrics=metrics,
        stop=stop,
    )
    await processor.run()
