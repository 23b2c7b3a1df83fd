"""Pure alert building: a matching Classified message becomes an Alert with CE headers."""

from __future__ import annotations

from datetime import datetime

from newsmon.shared.kafka import Headers
from newsmon.shared.messages import Alert, AlertSource, Classified, stable_id

__all__ = ["ALERT_CE_TYPE", "alert_from", "alert_headers"]

# CloudEvents 1.0 Kafka protocol binding, binary mode: attributes travel as `ce_` headers and
# the data's media type as `content-type` (github.com/cloudevents/spec kafka-protocol-binding.md).
ALERT_CE_TYPE = "io.newsmon.alert.v1"
CE_SOURCE = "newsmon/alerter"


def story_id_of(classified: Classified) -> str:
    """One story per article for now; grouping of syndicated copies replaces this."""
    return classified.article.id


def alert_from(classified: Classified, *, now: datetime) -> Alert:
    article = classified.article
    story_id = story_id_of(classified)
    return Alert(
        alert_id=stable_id("alert", story_id),
        revision=1,
        story_id=story_id,
        article_id=article.id,
        title=article.title,
        url=article.url,
        source=article.source,
        feed=article.feed,
        lang=article.lang,
        summary=article.summary,
        categories=classified.categories,
        score=classified.score,
        evidence=classified.evidence,
        classifier_version=classified.classifier_version,
        published=article.published,
        fetched=article.fetched,
        classified=classified.classified,
        alerted=now,
        sources=(
            AlertSource(
                article_id=article.id, source=article.source, url=article.url, feed=article.feed
            ),
        ),
    )


def alert_headers(alert: Alert) -> Headers:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"{alert.alert_id}.r{alert.revision}".encode()),
        ("ce_type", ALERT_CE_TYPE.encode()),
        ("ce_source", CE_SOURCE.encode()),
        ("ce_subject", alert.story_id.encode()),
        ("ce_time", alert.alerted.isoformat().encode()),
        ("content-type", b"application/json"),
    ]
