"""The classifier service: articles in, every article with its verdict out."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Sequence

from newsmon.shared.messages import (
    Article,
    classified_headers,
    decode,
    encode,
    fit_classified,
)
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Output, Processor, Record
from newsmon.shared.settings import Settings

from .engine import Classifier

__all__ = ["ClassifyTransform", "VerdictCounts", "run"]

log = logging.getLogger("newsmon.classifier")


class VerdictCounts:
    """Verdict metrics of the batch in flight (a `BatchState`), counted once it committed: a
    batch replayed after a failed publish is transformed again and must not count twice."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._verdicts: Counter[str] = Counter()
        self._categories: Counter[str] = Counter()

    async def load(self) -> None:
        return None

    def stage(self, match: bool, categories: Sequence[str]) -> None:
        self._verdicts[str(match).lower()] += 1
        if match:
            self._categories.update(categories)

    def committed(self) -> None:
        for match, count in self._verdicts.items():
            self.metrics.verdicts.labels(match).inc(count)
        for category, count in self._categories.items():
            self.metrics.verdict_categories.labels(category).inc(count)
        items, matches = self._verdicts.total(), self._verdicts["true"]
        # One line per committed batch, not one per match: under a backlog the line per match
        # was about 5 % of the service's CPU (py-spy, issue [10]). Each item is logged at
        # DEBUG; the classified topic is the record of each verdict.
        if items and log.isEnabledFor(level := logging.INFO if matches else logging.DEBUG):
            log.log(
                level,
                "classified %d items, %d matched",
                items,
                matches,
                extra={"items": items, "matches": matches},
            )
        self.aborted()

    def aborted(self) -> None:
        self._verdicts = Counter()
        self._categories = Counter()


class ClassifyTransform:
    def __init__(self, settings: Settings, metrics: Metrics, classifier: Classifier) -> None:
        self.topic = settings.topics.classified
        self.metrics = metrics
        self.classifier = classifier
        self.counts = VerdictCounts(metrics)

    def __call__(self, record: Record) -> Sequence[Output]:
        article = decode(Article, record.value)
        classified = self.classifier.classify_article(article)
        if log.isEnabledFor(logging.DEBUG):  # skip building the record when it is not kept
            log.debug(
                "%s %.2f: %s",
                "match" if classified.match else "no match",
                classified.score,
                article.title,
                extra={"article_id": article.id, "categories": list(classified.categories)},
            )
        output = Output(
            self.topic,
            article.id.encode(),
            encode(classified),
            classified_headers(classified),
            fit=functools.partial(fit_classified, classified),
        )
        self.counts.stage(classified.match, classified.categories)  # last: nothing above may raise
        return (output,)


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    classifier = Classifier.default(threshold=settings.classifier_threshold)
    transform = ClassifyTransform(settings, metrics, classifier)
    processor = Processor(
        settings=settings,
        service="classifier",
        source_topic=settings.topics.articles,
        transform=transform,
        metrics=metrics,
        stop=stop,
        outputs=[settings.topics.classified],
        state=transform.counts,
    )
    await processor.run()
