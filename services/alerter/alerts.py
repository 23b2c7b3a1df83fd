"""Pure alert building: a matching Classified message becomes an Alert with CE headers."""

from __future__ import annotations

from datetime import datetime

from newsmon.shared.kafka import Headers
from newsmon.shared.messages import Alert, AlertSource, Classified, stable_id

from .grouping import StoryState

__all__ = ["ALERT_CE_TYPE", "alert_from", "alert_headers", "alert_id_of", "story_id_of"]

# CloudEvents 1.0 Kafka protocol binding, binary mode: attributes travel as `ce_` headers and
# the data's media type as `content-type` (github.com/cloudevents/spec kafka-protocol-binding.md).
ALERT_CE_TYPE = "io.newsmon.alert.v1"
CE_SOURCE = "newsmon/alerter"


def story_id_of(classified: Classified) -> str:
    """The id a story gets from its first copy: that article's id."""
    return classified.article.id


def alert_id_of(story_id: str) -> str:
    return stable_id("alert", story_id)


def alert_from(classified: Classified, *, now: datetime, story: StoryState | None = None) -> Alert:
    """The alert for a matching article. With `story` (the story as this article leaves it):
    the story's alert id and revision, its sources so far, every category any copy matched
    and the best score; the article fields are this copy's (the one that raised the revision)."""
    article = classified.article
    if story is None:
        story_id = story_id_of(classified)
        alert_id, revision = alert_id_of(story_id), 1
        categories, score = classified.categories, classified.score
        sources: tuple[AlertSource, ...] = (
            AlertSource(
                article_id=article.id, source=article.source, url=article.url, feed=article.feed
            ),
        )
    else:
        story_id, alert_id, revision = story.story_id, story.alert_id, story.revision
        categories, score, sources = story.categories, story.score, story.sources
    return Alert(
        alert_id=alert_id,
        revision=revision,
        story_id=story_id,
        article_id=article.id,
        title=article.title,
        url=article.url,
        source=article.source,
        feed=article.feed,
        lang=article.lang,
        summary=article.summary,
        categories=categories,
        score=score,
        evidence=classified.evidence,
        classifier_version=classified.classifier_version,
        published=article.published,
        fetched=article.fetched,
        classified=classified.classified,
        alerted=now,
        sources=sources,
    )


_CE_TYPE_BYTES = ALERT_CE_TYPE.encode()
_CE_SOURCE_BYTES = CE_SOURCE.encode()


def alert_headers(alert: Alert) -> Headers:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"{alert.alert_id}.r{alert.revision}".encode()),
        ("ce_type", _CE_TYPE_BYTES),
        ("ce_source", _CE_SOURCE_BYTES),
        ("ce_subject", alert.story_id.encode()),
        ("ce_time", alert.alerted.isoformat().encode()),
        ("content-type", b"application/json"),
    ]
