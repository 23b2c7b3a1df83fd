"""The alerter service: classified articles in, alerts out (newsmon.alerts.v1 and routed topics).

Each matching article joins a story (near-duplicate grouping, `grouping.py`): the first copy of
a story raises revision 1 of its alert, later copies raise updates (same alert id, next
revision, one more source). Routing rules (`routes.py`) add topics beside the main one.

State and exactly-once: a story's state is one record (key = story id) on the compacted topic
`<prefix>.alerter-state.v1`, written in the same Kafka transaction as the alert and the consumer
offsets, so the alerts a read_committed reader sees and the state always agree. The in-memory
book changes only once that transaction committed (`StoryGroups.committed`); a batch that is
replayed after a failure is transformed again against the unchanged book. At start-up, after
the transactional producer fenced any zombie, the book is rebuilt from the state topic.

Single writer, any number of replicas: grouping needs every story in one place, but the
classified topic is keyed by article id, so copies of one story land on different partitions.
So one replica is active and holds every partition; the others wait on standby and take over
when it dies (shared/failover.py: a consumer-group assignor, the transactional id shared by all
replicas fences the predecessor, the book is rebuilt from the state topic on each activation).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from newsmon.shared.messages import (
    Classified,
    MessageDecodeError,
    decode,
    encode,
    fit_alert,
    known_non_match,
    utc_now,
)
from newsmon.shared.metrics import Metrics
from newsmon.shared.pipeline import Output, Processor, Record
from newsmon.shared.settings import Settings
from newsmon.shared.statetopic import StateTopic, ensure_output_topics, read_latest
from prometheus_client import Histogram

from .alerts import alert_from, alert_headers, alert_id_of, story_id_of
from .grouping import (
    Fingerprint,
    Pending,
    StoryBook,
    StoryState,
    fingerprints,
    story_from_json,
    story_to_json,
)
from .routes import Route, RouteInput, load_routes, route, routed_topics

__all__ = ["AlertTransform", "StoryGroups", "run", "state_topic"]

log = logging.getLogger("newsmon.alerter")


def state_topic(settings: Settings) -> str:
    return settings.topics.alerter_state


def state_retention_ms(settings: Settings) -> int:
    """Three windows, at least a week: a story is updated at most one window after it began."""
    return int(max(3 * settings.alert_group_window_s, 7 * 86400) * 1000)


def alerter_state_topic(settings: Settings) -> StateTopic:
    """Compacted and time-limited (stories past every window go); written in the alerter's
    transactions (with the alerts and offsets) unless transactions are turned off."""
    return StateTopic(
        settings.topics.alerter_state,
        transactional=settings.kafka_transactions,
        retention_ms=state_retention_ms(settings),
    )


class StoryGroups:
    """The story book plus the changes of the batch in flight (a `BatchState`)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.state_topic = state_topic(settings)
        self.book = StoryBook(
            window=timedelta(seconds=settings.alert_group_window_s),
            threshold=settings.alert_group_threshold,
        )
        self.pending = Pending()
        self._published: Counter[str] = Counter()
        self._alerts = 0
        self._updates = 0
        self._duplicates = 0
        self._latencies: list[tuple[str, float]] = []  # (since, seconds) of staged alerts

    async def load(self) -> None:
        """Rebuild the book from the state topic (from scratch: a replica that activates
        again must not keep stories from its previous turn)."""
        self.book = StoryBook(
            window=timedelta(seconds=self.settings.alert_group_window_s),
            threshold=self.settings.alert_group_threshold,
        )
        self.aborted()
        topic = alerter_state_topic(self.settings)
        records = await read_latest(self.settings, topic)
        stories: list[StoryState] = []
        for key, value in records.items():
            if value is None:
                continue
            try:
                stories.append(story_from_json(value))
            except ValueError as exc:
                log.warning("skipped a bad alerter state record %r: %s", key[:40], exc)
        stories.sort(key=lambda s: s.first_fetched)
        self.book.apply(stories)
        self.metrics.alert_stories.set(len(self.book))
        log.info("rebuilt %d stories from %s", len(self.book), topic.name)

    def stage(
        self,
        story: StoryState,
        topics: Sequence[str],
        latencies: Sequence[tuple[str, float]] = (),
    ) -> None:
        self.pending.add(story)
        self._published.update(topics)
        self._alerts += 1
        self._updates += story.revision > 1
        self._latencies.extend(latencies)

    def duplicate(self) -> None:
        self._duplicates += 1

    def state_outputs(self) -> list[Output]:
        """The batch's state records: one per story it changed, its latest revision (a story
        raised twice in a batch is written once; the pipeline's end-of-batch hook)."""
        return [
            Output(self.state_topic, story.story_id.encode(), story_to_json(story))
            for story in self.pending.stories.values()
        ]

    def committed(self) -> None:
        self.book.apply(self.pending.stories.values())
        for topic, count in self._published.items():
            self.metrics.alerts_published.labels(topic).inc(count)
        self.metrics.alert_updates.inc(self._updates)
        histograms: dict[str, Histogram] = {}  # one labels() lookup per label and batch
        for since, seconds in self._latencies:
            if since not in histograms:
                histograms[since] = self.metrics.e2e_seconds.labels(since)
            histograms[since].observe(seconds)
        self.metrics.alert_stories.set(len(self.book))
        if self._alerts or self._duplicates:
            # One line per batch, not one per alert: a burst of thousands of alerts a second
            # must not become thousands of log lines (the alerts topic is the record of each;
            # DEBUG shows them one by one).
            log.info(
                "published %d alert revisions (%d new stories, %d updates), %d duplicates skipped",
                self._alerts,
                self._alerts - self._updates,
                self._updates,
                self._duplicates,
                extra={
                    "alerts": self._alerts,
                    "new_stories": self._alerts - self._updates,
                    "updates": self._updates,
                    "duplicates": self._duplicates,
                    "stories": len(self.book),
                },
            )
        self.aborted()

    def aborted(self) -> None:
        self.pending = Pending()
        self._published = Counter()
        self._alerts = 0
        self._updates = 0
        self._duplicates = 0
        self._latencies = []


def _position(record: Record) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


class AlertTransform:
    """A classified record in, its alert (to the main and routed topics) out. `prepare` (the
    pipeline's start-of-batch hook) does the batch's decoding and fingerprinting ahead."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        groups: StoryGroups | None = None,
        routes: Sequence[Route] | None = None,
    ) -> None:
        self.prefix = settings.topic_prefix
        self.metrics = metrics
        self.groups = groups or StoryGroups(settings, metrics)
        self.routes = tuple(
            routes
            if routes is not None
            else load_routes(settings.alert_routes_file, prefix=settings.topic_prefix)
        )
        # The batch's matching verdicts decoded and fingerprinted ahead, by record position.
        self._prepared: dict[tuple[str, int, int], tuple[Classified, Fingerprint]] = {}

    def prepare(self, records: Sequence[Record]) -> None:
        """Decode the batch's matching verdicts and fingerprint them all at once
        (`fingerprints`: one numpy pass instead of a few numpy calls per article). A record
        that does not decode is left to `__call__`, which refuses it."""
        decoded: list[tuple[tuple[str, int, int], Classified]] = []
        for record in records:
            if known_non_match(record.headers):
                continue
            try:
                classified = decode(Classified, record.value)
            except MessageDecodeError:
                continue
            if classified.match:
                decoded.append((_position(record), classified))
        self._prepared = {}
        try:
            prints = fingerprints([(c.article.title, c.article.summary) for _, c in decoded])
        except Exception:
            # Not expected (fingerprints is total over strings), but the batch must go on:
            # each record is then fingerprinted alone, and one that fails goes to the DLQ.
            log.exception("could not fingerprint the batch at once: one record at a time")
            return
        self._prepared = {
            where: (classified, fp) for (where, classified), fp in zip(decoded, prints, strict=True)
        }

    def __call__(self, record: Record) -> Sequence[Output]:
        if known_non_match(record.headers):
            return ()  # the classifier's header says so: the value is not even decoded
        prepared = self._prepared.pop(_position(record), None)
        if prepared is not None:
            classified, fingerprinted = prepared
        else:
            classified = decode(Classified, record.value)
            if not classified.match:
                return ()
            (fingerprinted,) = fingerprints(
                [(classified.article.title, classified.article.summary)]
            )
        story_id = story_id_of(classified)
        assignment = self.groups.book.assign(
            classified,
            story_id_for=story_id,
            alert_id_for=alert_id_of(story_id),
            overlay=self.groups.pending,
            fingerprinted=fingerprinted,
        )
        if assignment.duplicate:
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "article %s is already part of story %s: no new alert",
                    classified.article.id,
                    assignment.story.story_id,
                    extra={"article_id": classified.article.id},
                )
            self.groups.duplicate()
            return ()
        story = assignment.story
        alert = alert_from(classified, now=utc_now(), story=story)
        key, value, headers = alert.story_id.encode(), encode(alert), alert_headers(alert)
        topics = [
            t for t, _ in route(RouteInput.from_alert(alert), self.routes, prefix=self.prefix)
        ]
        fit = functools.partial(fit_alert, alert)
        # The story's state record goes out once per batch (StoryGroups.state_outputs).
        outputs = [Output(topic, key, value, headers, fit=fit) for topic in topics]
        latencies = [("fetched", (alert.alerted - alert.fetched).total_seconds())]
        if alert.published is not None:
            latencies.append(
                ("published", max((alert.alerted - alert.published).total_seconds(), 0.0))
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "alert %s r%d: %s",
                alert.alert_id,
                alert.revision,
                alert.title,
                extra={
                    "alert_id": alert.alert_id,
                    "revision": alert.revision,
                    "article_id": alert.article_id,
                    "topics": topics,
                },
            )
        # Last: nothing above may leave a half-staged story.
        self.groups.stage(story, topics, latencies)
        return outputs


async def create_alerter_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Create those of `topics` that are missing: the state topic compacted, others plain."""
    await ensure_output_topics(settings, topics, [alerter_state_topic(settings)])


async def run(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    routes = load_routes(settings.alert_routes_file, prefix=settings.topic_prefix)
    # The routed and state topics are created by the processor once its producer is up, if
    # missing (and again should one be deleted while it runs).
    groups = StoryGroups(settings, metrics)
    transform = AlertTransform(settings, metrics, groups, routes)
    processor = Processor(
        settings=settings,
        service="alerter",
        source_topic=settings.topics.classified,
        transform=transform,
        metrics=metrics,
        stop=stop,
        outputs=[*routed_topics(routes, prefix=settings.topic_prefix), state_topic(settings)],
        create_topics=lambda topics: create_alerter_topics(settings, topics),
        state=groups,
        start_of_batch=transform.prepare,
        end_of_batch=groups.state_outputs,
        single_active=True,
    )
    await processor.run()
