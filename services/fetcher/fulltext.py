"""Full article text: fetch the page of each new article and keep its main text.

Two parts, in the style of the rest of the fetcher:

* pure: `wants_full_text` (should this poll fetch pages at all?) and `extract_main_text`
  (HTML bytes → main text, by trafilatura, capped);
* I/O: `PageTexts.fill` fetches the pages of one poll's new articles concurrently, with the
  fetcher's own HTTP rules (`http.fetch`: SSRF guard on every hop, redirects by hand, body cap
  after decompression, total deadline), the per-host limit it shares with feed polls, and a
  small global limit of its own so page fetches never crowd out feed polls.

Whatever goes wrong with a page (HTTP error, timeout, blocked address, not HTML, nothing
extracted) the article keeps its summary and is still published; the outcome is counted in
`newsmon_feed_full_text_total{feed,outcome}` (ok, failed, empty) and logged as one line.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import trafilatura
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from .failures import FailureKind, FetchError
from .http import FeedClient, HostLimiter, fetch
from .normalize import truncate
from .parse import MAX_TEXT_CHARS

__all__ = [
    "MIN_TEXT_CHARS",
    "SHORT_SUMMARY_CHARS",
    "FullTextConfig",
    "FullTextMode",
    "PageTexts",
    "adds_to_summary",
    "extract_main_text",
    "is_html",
    "wants_full_text",
]

log = logging.getLogger("newsmon.fetcher")

FullTextMode = Literal["auto", "on", "off"]

# A feed whose typical item carries less than this is a teaser feed: one or two sentences
# (a tweet-sized lede is ~200 characters, a news paragraph 400-800).
SHORT_SUMMARY_CHARS: Final = 300

# Extracted text shorter than this is a notice, not an article (see adds_to_summary).
MIN_TEXT_CHARS: Final = 100

# Media types worth handing to an HTML extractor.
_HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
# <meta charset="..."> or <meta http-equiv="Content-Type" content="...; charset=...">
# (HTML Living Standard §13.2.3.2 "prescan": the declaration sits in the first 1024 bytes).
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def wants_full_text(
    mode: FullTextMode, feed_option: bool | None, articles: Sequence[Article]
) -> bool:
    """Whether to fetch article pages for one poll of a feed.

    The global switch `off` wins; then the feed's own `full_text`; then `on` turns it on for
    every feed that did not say; `auto` turns it on when the feed's items are short: the median
    of each item's longer of summary and feed-given text is under SHORT_SUMMARY_CHARS (so a
    feed carrying content:encoded is not fetched again).
    """
    if mode == "off":
        return False
    if feed_option is not None:
        return feed_option
    if mode == "on":
        return True
    if not articles:
        return False
    typical = statistics.median(max(len(a.summary), len(a.text)) for a in articles)
    return typical < SHORT_SUMMARY_CHARS


def _charset(content_type: str | None, body: bytes) -> str | None:
    """The declared character encoding (HTTP header first, then the page's meta), if Python
    knows it."""
    candidates: list[str] = []
    if content_type:
        for param in content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                candidates.append(value.strip().strip("\"'"))
    if match := _META_CHARSET.search(body[:1024]):
        candidates.append(match.group(1).decode("ascii"))
    for candidate in candidates:
        try:
            return codecs.lookup(candidate).name
        except LookupError:
            continue
    return None


def is_html(content_type: str | None) -> bool:
    """Missing Content-Type is given the benefit of the doubt (extraction decides)."""
    if not content_type:
        return True
    return content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES


def adds_to_summary(text: str, summary: str) -> bool:
    """Whether extracted text is worth keeping: more than a notice ("Please enable
    JavaScript.", a paywall line) and longer than the summary the article already has."""
    return len(text) >= MIN_TEXT_CHARS and len(text) > len(summary)


def extract_main_text(
    body: bytes, *, url: str, content_type: str | None = None, max_chars: int = MAX_TEXT_CHARS
) -> str:
    """The main text of an HTML page (navigation, footers, comments dropped), paragraphs on
    their own lines, at most `max_chars` characters; "" when nothing article-like was found.
    CPU-bound (lxml parse plus trafilatura's heuristics): call it off the event loop."""
    charset = _charset(content_type, body)
    html: str | bytes
    if charset:
        html = body.decode(charset, errors="replace")
    else:
        try:
            html = body.decode("utf-8")
        except UnicodeDecodeError:
            html = body  # undeclared and not UTF-8: trafilatura guesses (charset_normalizer)
    text = trafilatura.extract(
        html,
        url=url,
        include_comments=False,  # reader comments are not the article
        include_tables=False,  # tables on news pages are mostly widgets (scores, markets)
        include_images=False,
        include_links=False,
        deduplicate=False,  # its LRU cache is process-global; we dedupe articles ourselves
        with_metadata=False,
        output_format="txt",
    )
    if not text:
        return ""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return truncate("\n".join(line for line in lines if line), max_chars)


@dataclass(frozen=True, slots=True)
class FullTextConfig:
    """The settings the page fetcher uses (NEWSMON_FETCH_FULL_TEXT_CONCURRENCY and _TIMEOUT_S,
    and the feed fetch's body cap and redirect limit, which pages get too)."""

    concurrency: int
    deadline_s: float
    max_bytes: int
    max_redirects: int
    max_chars: int = MAX_TEXT_CHARS

    @classmethod
    def from_settings(cls, settings: Settings) -> FullTextConfig:
        return cls(
            concurrency=settings.fetch_full_text_concurrency,
            deadline_s=settings.fetch_full_text_timeout_s,
            max_bytes=settings.fetch_max_bytes,
            max_redirects=settings.fetch_max_redirects,
        )


class PageTexts:
    """Fills Article.text of new articles from their pages (see the module docstring)."""

    def __init__(
        self,
        config: FullTextConfig,
        client: FeedClient,
        metrics: Metrics,
        hosts: HostLimiter,
    ) -> None:
        self.config = config
        self.client = client
        self.metrics = metrics
        self.hosts = hosts
        self.slots = asyncio.Semaphore(config.concurrency)

    async def fill(self, feed: str, articles: Sequence[Article]) -> list[Article]:
        """`articles` in the same order, each with the text of its page when that worked.
        Pages are fetched concurrently; each fetch has its own deadline, so however slow the
        sites are a poll waits about deadline × ceil(pages / concurrency) at most (plus any
        wait for global slots other feeds' pages hold)."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._one(feed, article)) for article in articles]
        return [task.result() for task in tasks]

    async def _one(self, feed: str, article: Article) -> Article:
        try:
            text = await self._page_text(article)
        except FetchError as exc:
            outcome, reason = "failed", f"{exc} ({exc.kind})"
        except Exception as exc:  # an extractor bug must not cost us the article
            outcome, reason = "failed", f"extraction failed: {type(exc).__name__}: {exc}"
        else:
            if adds_to_summary(text, article.summary):
                self.metrics.feed_full_text.labels(feed, "ok").inc()
                return article.model_copy(update={"text": text})
            outcome, reason = "empty", "the page has no article text beyond the summary"
        self.metrics.feed_full_text.labels(feed, outcome).inc()
        log.info(
            "feed %s: no full text for %s: %s; published with its summary",
            feed,
            article.url,
            reason,
            extra={"feed": feed, "article_id": article.id, "outcome": outcome},
        )
        return article

    async def _page_text(self, article: Article) -> str:
        # Host slot first, then a global one: a page waiting on a busy host holds no global
        # slot (the same order as feed polls in app.Fetcher._fetch).
        async with self.hosts.slot(article.url), self.slots:
            result = await fetch(
                self.client,
                article.url,
                max_bytes=self.config.max_bytes,
                deadline_s=self.config.deadline_s,
                max_redirects=self.config.max_redirects,
            )
        if not is_html(result.content_type):
            raise FetchError(
                FailureKind.NOT_HTML, f"not an HTML page ({result.content_type})", retriable=False
            )
        return await asyncio.to_thread(
            extract_main_text,
            result.body,
            url=result.final_url,
            content_type=result.content_type,
            max_chars=self.config.max_chars,
        )
