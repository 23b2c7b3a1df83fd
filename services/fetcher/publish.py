"""The step a poll and a WebSub push share: drop the parsed articles somebody published before
(by id or canonical URL, across feeds and restarts, or being published right now), fill in
full text where wanted, publish the rest (acks=all) and remember them as published.

`Publisher` is that step; app.Fetcher calls it after each parse and websub.WebSub after each
push, so both publish the same way and neither needs the other to do it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from newsmon.shared.clock import Clock
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from .feeds import FeedConfig
from .fulltext import FullTextMode, PageTexts, wants_full_text
from .parse import ParsedFeed
from .state import FeedState, PublishError, SeenIds, url_key

__all__ = [
    "ALSO_SEEN_MAX",
    "ArticleSink",
    "PublishConfig",
    "Publisher",
    "in_stage",
    "record_also_seen",
]

log = logging.getLogger("newsmon.fetcher")

# Articles a feed carried after another feed had published them, remembered per feed in its
# state (FeedState.extra["also_seen"]: canonical URL -> the feed that published it).
ALSO_SEEN_MAX = 256


class ArticleSink(Protocol):
    async def publish(self, articles: list[Article]) -> None: ...


@contextlib.contextmanager
def in_stage(metrics: Metrics, stage: str) -> Iterator[None]:
    """Count a poll in `stage` (fetch, parse, publish) of newsmon_fetcher_polls meanwhile."""
    gauge = metrics.fetcher_polls.labels(stage)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """The settings the publish step uses: the articles topic and NEWSMON_FETCH_FULL_TEXT."""

    articles_topic: str
    full_text: FullTextMode = "auto"

    @classmethod
    def from_settings(cls, settings: Settings) -> PublishConfig:
        return cls(articles_topic=settings.topics.articles, full_text=settings.fetch_full_text)


class Publisher:
    """Dedupe, full text and publish for one fetcher process. `in_flight` holds the keys (id,
    canonical URL) of articles being published or kept for publishing right now -> their feed:
    another feed parsed meanwhile must not publish them too (full text makes that window
    seconds, a failed publish until the feed's next poll)."""

    def __init__(
        self,
        config: PublishConfig,
        metrics: Metrics,
        sink: ArticleSink,
        seen: SeenIds,
        *,
        pages: PageTexts | None = None,
        clock: Clock = time.time,
    ) -> None:
        """`pages` fetches article pages for full text; without it no page is fetched."""
        self.config = config
        self.metrics = metrics
        self.sink = sink
        self.seen = seen
        self.pages = pages
        self.clock = clock
        self.in_flight: dict[str, str] = {}

    def claim(self, feed: FeedConfig, articles: list[Article]) -> None:
        """Mark `articles` as `feed`'s until `unclaim`: no other feed publishes them."""
        for article in articles:
            self.in_flight[article.id] = self.in_flight[url_key(article.url)] = feed.name

    def unclaim(self, articles: list[Article]) -> None:
        for article in articles:
            self.in_flight.pop(article.id, None)
            self.in_flight.pop(url_key(article.url), None)

    def fresh_articles(
        self, feed: FeedConfig, parsed: ParsedFeed, state: FeedState | None = None
    ) -> list[Article]:
        """The parsed articles nobody published yet (by id or canonical URL), counted. One
        another feed published is recorded in `state` as also seen in this feed."""
        fresh: list[Article] = []
        batch = SeenIds(len(parsed.articles) * 2 + 2)
        for article in parsed.articles:
            owner = self.seen.first_seen(article)
            if owner is None:
                owner = self.in_flight.get(article.id) or self.in_flight.get(url_key(article.url))
            if owner is None and batch.first_seen(article) is not None:
                owner = feed.name
            if owner is None:
                fresh.append(article)
                batch.add_article(article)
            elif owner and owner != feed.name:
                self.metrics.feed_items.labels(feed.name, "duplicate_other_feed").inc()
                if state is not None:
                    record_also_seen(feed, state, article, owner)
            else:
                self.metrics.feed_items.labels(feed.name, "duplicate").inc()
        if parsed.skipped:
            self.metrics.feed_items.labels(feed.name, "skipped").inc(len(parsed.skipped))
        if parsed.unchanged:
            self.metrics.feed_items.labels(feed.name, "unchanged").inc(parsed.unchanged)
        return fresh

    async def publish_parsed(self, feed: FeedConfig, state: FeedState, parsed: ParsedFeed) -> None:
        """Publish the articles of `parsed` nobody published yet. PublishError: some were not
        acknowledged (`unacked`); the acknowledged ones are remembered as published."""
        fresh = self.fresh_articles(feed, parsed, state)
        if not fresh:
            return
        if self.pages is not None and wants_full_text(
            self.config.full_text, feed.full_text, parsed.articles
        ):
            self.claim(feed, fresh)
            try:
                fresh = await self.pages.fill(feed.name, fresh)  # never fails: degrades
            finally:
                self.unclaim(fresh)
        await self.publish_fresh(feed, fresh, len(parsed.articles) + parsed.unchanged)
        state.last_new_item_at = self.clock()
        self.metrics.feed_last_new_item.labels(feed.name).set(state.last_new_item_at)

    async def publish_fresh(self, feed: FeedConfig, fresh: list[Article], total: int) -> None:
        """Publish `fresh` (deduplicated already) of `total` items; see publish_parsed."""
        if not fresh:
            return
        self.claim(feed, fresh)
        try:
            with in_stage(self.metrics, "publish"):
                await self.sink.publish(fresh)  # acks=all before an id counts as published
        except PublishError as exc:
            # Those the broker acknowledged before the failure are published: remember
            # them, or the next poll would publish them a second time.
            for article in exc.acked:
                self.seen.add_article(article)
            acked = {a.id for a in exc.acked}
            exc.unacked = [a for a in fresh if a.id not in acked]
            self._count_published(feed, len(exc.acked), total)
            raise
        finally:
            self.unclaim(fresh)
        for article in fresh:
            self.seen.add_article(article)
        self._count_published(feed, len(fresh), total)

    def _count_published(self, feed: FeedConfig, count: int, total: int) -> None:
        if not count:
            return
        self.metrics.feed_items.labels(feed.name, "new").inc(count)
        self.metrics.items_out.labels("fetcher", self.config.articles_topic).inc(count)
        log.info("feed %s: %d new of %d items", feed.name, count, total, extra={"feed": feed.name})


def record_also_seen(feed: FeedConfig, state: FeedState, article: Article, owner: str) -> None:
    """Remember in the feed's state that it carried `article`, which `owner` published: the
    second source of one article, kept without publishing it twice (bounded, oldest out)."""
    also = state.extra.get("also_seen")
    if not isinstance(also, dict):
        also = state.extra["also_seen"] = {}
    if article.url in also:
        return
    also[article.url] = owner
    while len(also) > ALSO_SEEN_MAX:
        del also[next(iter(also))]
    log.debug(
        "feed %s: %s was published by feed %s; recorded as also seen in %s",
        feed.name,
        article.url,
        owner,
        feed.name,
        extra={"feed": feed.name, "article_id": article.id, "first_feed": owner},
    )
