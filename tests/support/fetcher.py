"""A fetcher under test: assembled as services/fetcher/app.run assembles it, with its output
(the process boundary to Kafka) kept in memory or given by the test."""

from __future__ import annotations

import random
import time
from typing import Protocol

from newsmon.fetcher.app import Fetcher, PollConfig, StateSink
from newsmon.fetcher.fulltext import PageTexts
from newsmon.fetcher.http import FeedClient, HostLimiter
from newsmon.fetcher.parse_workers import FeedParser
from newsmon.fetcher.publish import ArticleSink, PublishConfig, Publisher
from newsmon.fetcher.state import FeedState, SeenIds
from newsmon.fetcher.websub import WebSub
from newsmon.shared.clock import Clock
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings


class ListSink:
    """Keeps every published article and each feed's latest saved state (a copy made through
    JSON, as the state topic would hold it)."""

    def __init__(self) -> None:
        self.articles: list[Article] = []
        self.states: dict[str, FeedState] = {}

    async def publish(self, articles: list[Article]) -> None:
        self.articles.extend(articles)

    async def save_state(self, feed: str, state: FeedState) -> None:
        self.states[feed] = FeedState.from_json(state.to_json())


class Sink(ArticleSink, StateSink, Protocol):
    """What a Fetcher publishes to and saves its feeds' state in."""


def publisher_for(
    settings: Settings,
    metrics: Metrics,
    sink: ArticleSink,
    *,
    seen: SeenIds | None = None,
    pages: PageTexts | None = None,
    clock: Clock = time.time,
) -> Publisher:
    """The publish step as app.run builds it (`seen`: an empty dedup memory by default)."""
    return Publisher(
        PublishConfig.from_settings(settings),
        metrics,
        sink,
        SeenIds(1000) if seen is None else seen,
        pages=pages,
        clock=clock,
    )


def fetcher_for(
    settings: Settings,
    metrics: Metrics,
    sink: Sink,
    client: FeedClient,
    *,
    publisher: Publisher | None = None,
    seen: SeenIds | None = None,
    pages: PageTexts | None = None,
    parser: FeedParser | None = None,
    hosts: HostLimiter | None = None,
    websub: WebSub | None = None,
    clock: Clock = time.time,
    rng: random.Random | None = None,
) -> Fetcher:
    """A Fetcher as app.run builds it, polling through `client` into `sink`; its publisher
    from `publisher_for` unless given. `rng` defaults to a seeded one (repeatable jitter)."""
    return Fetcher(
        PollConfig.from_settings(settings),
        metrics,
        sink,
        client,
        publisher or publisher_for(settings, metrics, sink, seen=seen, pages=pages, clock=clock),
        parser=parser,
        hosts=hosts,
        websub=websub,
        clock=clock,
        rng=rng or random.Random(0),
    )
