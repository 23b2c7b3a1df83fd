"""The classifier service: articles in, every article with its verdict out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from newsmon.shared.messages import Article, Classified, decode, encode, utc_now
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Output, Processor, Record
from newsmon.shared.settings import Settings

from .engine import Classifier

__all__ = ["ClassifyTransform", "run"]

log = logging.getLogger("newsmon.classifier")


class ClassifyTransform:
    def __init__(self, settings: Settings, metrics: Metrics, classifier: Classifier) -> None:
        self.topic = settings.topics.classified
        self.metrics = metrics
        self.classifier = classifier

    def __call__(self, record: Record) -> Sequence[Output]:
        article = decode(Article, record.value)
        verdict = self.classifier.classify(
            title=article.title, summary=article.summary, text=article.text, lang=article.lang
        )
        classified = Classified(
            article=article,
            match=verdict.match,
            score=verdict.score,
            categories=verdict.categories,
            evidence=verdict.evidence,
            classifier_version=verdict.version,
            classified=utc_now(),
        )
        self.metrics.verdicts.labels(str(verdict.match).lower()).inc()
        if verdict.match:
            for category in verdict.categories:
                self.metrics.verdict_categories.labels(category).inc()
        log.log(
            logging.INFO if verdict.match else logging.DEBUG,
            "%s %.2f: %s",
            "match" if verdict.match else "no match",
            verdict.score,
            article.title,
            extra={"article_id": article.id, "categories": list(verdict.categories)},
        )
        return (Output(self.topic, article.id.encode(), encode(classified)),)


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    classifier = Classifier.default(threshold=settings.classifier_threshold)
    processor = Processor(
        settings=settings,
        service="classifier",
        source_topic=settings.topics.articles,
        transform=ClassifyTransform(settings, metrics, classifier),
        metrics=metrics,
        stop=stop,
    )
    await processor.run()
