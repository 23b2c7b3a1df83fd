"""Feed bytes → Article records. Pure: takes the body the HTTP layer fetched, never fetches.

CPU-bound (feedparser is pure Python: 1-300 ms per feed, see ../shared/notes/measurements.md),
so callers run it in a worker thread or process, never on the event loop.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import urljoin

import feedparser
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.items import (
    ItemSpans,
    Memo,
    fingerprint,
    item_spans,
    pack_memo,
    unpack_memo,
)
from newsmon.fetcher.language import feed_language
from newsmon.fetcher.normalize import (
    article_id,
    canonical_url,
    html_to_text,
    normalize_lang,
    parse_published,
    raw_get,
    truncate,
    xml_head_text,
)
from newsmon.shared.messages import Article, stable_id
from pydantic import ValidationError

__all__ = [
    "MAX_SUMMARY_CHARS",
    "MAX_TEXT_CHARS",
    "FeedParseError",
    "ParsedFeed",
    "SkippedEntry",
    "parse_feed",
]

MAX_SUMMARY_CHARS: Final = 2_000
MAX_TEXT_CHARS: Final = 100_000
_MAX_TITLE_CHARS: Final = 1_000
_FALLBACK_TITLE_CHARS: Final = 120
_MAX_AUTHORS: Final = 20
_MAX_TAGS: Final = 50
_MAX_LABEL_CHARS: Final = 200


class FeedParseError(ValueError):
    """The body is not a feed we can read. The message is one line a person can act on.

    `alternates` holds the feed URLs an HTML page advertises (feed autodiscovery), so a
    caller can offer or follow them. Never worth retrying with the same body, unless
    `retriable` says the parser failed rather than the body (a worker process that died).
    """

    def __init__(
        self, message: str, *, alternates: Sequence[str] = (), retriable: bool = False
    ) -> None:
        super().__init__(message)
        self.alternates: tuple[str, ...] = tuple(alternates)
        self.retriable = retriable


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An entry that did not become an Article, and why."""

    index: int
    reason: str
    title: str | None = None
    link: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    articles: tuple[Article, ...]
    skipped: tuple[SkippedEntry, ...]
    hub_url: str | None  # WebSub hub (W3C WebSub §4: <link rel="hub">)
    self_url: str | None  # the feed's own URL (<link rel="self">), the WebSub topic
    bozo_reason: str | None  # feedparser's complaint when the feed was not well-formed
    # Items byte-identical to ones of the feed's last parse (its memo), not parsed again.
    unchanged: int = 0
    memo: Memo = b""  # for the next parse of this feed (items.py); b"": skip nothing then
    # Publication times of all items, unchanged ones included (for the adaptive interval).
    published: tuple[datetime, ...] = ()


# --------------------------------------------------------------------------------------------
# refusing what is not a feed
# --------------------------------------------------------------------------------------------


# The prolog is everything before the root element's start tag: "<" then a name character.
# Comments are blanked first, so a "<p>" inside a comment does not end the prolog early.
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ROOT_START = re.compile(r"<([A-Za-z_:][\w:.-]*)")
_ENTITY_DECL = re.compile(r"<!ENTITY", re.IGNORECASE)
_HTML_DOCTYPE = re.compile(r"<!DOCTYPE\s+html", re.IGNORECASE)
_HTML_ROOTS: Final = frozenset({"html", "head", "body"})
_FEED_ROOTS: Final = frozenset({"rss", "feed", "rdf:rdf", "rdf", "channel"})
_PROLOG_LIMIT: Final = 1 << 20


def _split_prolog(text: str) -> tuple[str, str | None]:
    """(prolog without comments, lower-case root element name or None)."""
    text = _COMMENT.sub(" ", text)
    root = _ROOT_START.search(text)
    if root is None:
        return text, None
    return text[: root.start()], root.group(1).lower()


def _declares_entities(body: bytes) -> bool:
    # Entity declarations can only stand in the DTD, which precedes the root element; looking
    # only there keeps a literal "<!ENTITY" inside an article's CDATA from being refused.
    prolog, _ = _split_prolog(xml_head_text(body, _PROLOG_LIMIT))
    return bool(_ENTITY_DECL.search(prolog))


def _looks_like_html(body: bytes) -> bool:
    # Decided by the root element, not the DOCTYPE: some feeds carry an XHTML DOCTYPE over an
    # <rss> root (feedparser's illformed/always_strip_doctype.xml).
    prolog, root = _split_prolog(xml_head_text(body, 16 * 1024))
    if root in _HTML_ROOTS:
        return True
    return bool(_HTML_DOCTYPE.search(prolog)) and root not in _FEED_ROOTS


_FEED_TYPES: Final = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml"}
)


class _AlternateLinks(HTMLParser):
    """Feed autodiscovery: <link rel="alternate" type="application/rss+xml" href=...>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: (value or "") for key, value in attrs}
        if tag == "base" and values.get("href") and self.base is None:
            self.base = values["href"]
        elif tag in ("link", "a"):
            rels = values.get("rel", "").lower().split()
            kind = values.get("type", "").lower().split(";")[0].strip()
            if "alternate" in rels and kind in _FEED_TYPES and values.get("href"):
                self.hrefs.append(values["href"].strip())


def _discover_feeds(body: bytes, base_url: str | None) -> list[str]:
    finder = _AlternateLinks()
    # Autodiscovery links live in <head>; the first 256 KiB holds it on any real page.
    with contextlib.suppress(AssertionError, ValueError):
        finder.feed(body[: 256 * 1024].decode("utf-8", errors="replace"))
    base = urljoin(base_url or "", finder.base or "") or None
    found: list[str] = []
    for href in finder.hrefs:
        url = canonical_url(href, base)
        if url not in found:
            found.append(url)
    return found


def _html_error(body: bytes, base_url: str | None) -> FeedParseError:
    alternates = _discover_feeds(body, base_url)
    if alternates:
        where = "; the page advertises: " + ", ".join(alternates)
    else:
        where = '; the page advertises no feed (<link rel="alternate" type="application/rss+xml">)'
    return FeedParseError("served HTML, not a feed" + where, alternates=alternates)


# --------------------------------------------------------------------------------------------
# feedparser result → records
# --------------------------------------------------------------------------------------------

# Bozo reasons that do not make a feed unusable: the encoding was guessed differently from
# what was declared, or the Content-Type was not an XML type (feedparser's own exceptions).
_HARMLESS_BOZO: Final = (
    feedparser.CharacterEncodingOverride,
    feedparser.NonXMLContentType,
)


def _one_line(text: str, limit: int = 300) -> str:
    return truncate(" ".join(text.split()), limit)


def _bozo_reason(result: Mapping[str, Any]) -> str | None:
    if not result.get("bozo"):
        return None
    exc = result.get("bozo_exception")
    if exc is None:
        return "not well-formed"
    return _one_line(f"{type(exc).__name__}: {exc}")


def _first_link(links: Any, rel: str) -> str | None:
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, Mapping) and raw_get(link, "rel") == rel and raw_get(link, "href"):
            return str(link["href"]).strip()
    return None


def _labels(values: Iterable[str], limit: int) -> tuple[str, ...]:
    # Distinct labels in feed order; "World" and "world" are one tag.
    labels: list[str] = []
    folded: set[str] = set()
    for value in values:
        label = truncate(html_to_text(value), _MAX_LABEL_CHARS)
        if label and label.casefold() not in folded:
            labels.append(label)
            folded.add(label.casefold())
        if len(labels) >= limit:
            break
    return tuple(labels)


def _authors(entry: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for author in raw_get(entry, "authors") or ():
        if isinstance(author, Mapping):
            names.append(str(raw_get(author, "name") or raw_get(author, "email") or ""))
    author = raw_get(entry, "author")
    if not names and isinstance(author, str):
        names.append(author)
    return _labels(names, _MAX_AUTHORS)


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    terms = [
        str(raw_get(tag, "label") or raw_get(tag, "term") or "")
        for tag in raw_get(entry, "tags") or ()
        if isinstance(tag, Mapping)
    ]
    return _labels(terms, _MAX_TAGS)


def _content_text(entry: Mapping[str, Any]) -> str:
    # feedparser puts RSS content:encoded and Atom <content> in entry.content (a list).
    texts = [
        html_to_text(str(raw_get(part, "value") or ""))
        for part in raw_get(entry, "content") or ()
        if isinstance(part, Mapping)
    ]
    return truncate(" ".join(t for t in texts if t), MAX_TEXT_CHARS)


def _declared_lang(entry: Mapping[str, Any], feed_info: Mapping[str, Any]) -> str | None:
    # xml:lang on the entry's title/summary/content, then RSS <language> / the feed's xml:lang.
    for key in ("title_detail", "summary_detail"):
        detail = raw_get(entry, key)
        if isinstance(detail, Mapping) and (lang := normalize_lang(raw_get(detail, "language"))):
            return lang
    if lang := normalize_lang(raw_get(feed_info, "language")):
        return lang
    detail = raw_get(feed_info, "title_detail")
    if isinstance(detail, Mapping):
        return normalize_lang(raw_get(detail, "language"))
    return None


@dataclass(frozen=True, slots=True)
class _Context:
    feed: FeedConfig
    source: str
    base: str | None
    fetched_at: datetime
    feed_info: Mapping[str, Any]
    page: str  # the site the feed belongs to (its <link>), else the feed's URL


def _entry_to_article(
    index: int, entry: Mapping[str, Any], ctx: _Context
) -> Article | SkippedEntry:
    title = truncate(html_to_text(str(raw_get(entry, "title") or "")), _MAX_TITLE_CHARS)
    raw_link = str(raw_get(entry, "link") or "").strip()
    guid = raw_get(entry, "id")
    text = _content_text(entry)
    summary = truncate(html_to_text(str(raw_get(entry, "summary") or "")), MAX_SUMMARY_CHARS)
    if not summary and text:
        summary = truncate(text, MAX_SUMMARY_CHARS)  # no description: the article's lede
    url = canonical_url(raw_link, ctx.base) if raw_link else ""
    if not url.lower().startswith(("http://", "https://")):
        # No link, or one we never pass on (javascript:, at://, a tag: GUID feedparser made
        # the link): the entry is kept under an address of its own (`_url_without_link`).
        raw_link = ""
        url = _url_without_link(entry, guid, ctx, (title, summary, text))
    # An entry missing fields is kept while it can be told apart (rss-parser's
    # incomplete-fields.atom and missing-fields.atom each expect their one item): no title
    # reads as its lede, else as its address, as a browser titles an untitled page.
    title = title or truncate(summary, _FALLBACK_TITLE_CHARS) or url
    hint = _declared_lang(entry, ctx.feed_info) or ctx.feed.lang
    try:
        return Article(
            schema="newsmon.article.v1",
            id=article_id(guid if isinstance(guid, str) else None, url)
            if raw_link or "#item-" not in url
            # canonical_url drops the fragment that tells link-less entries apart
            else stable_id("item", url),
            feed=ctx.feed.name,
            source=ctx.source,
            url=url,
            title=title,
            summary=summary,
            text=text,
            published=parse_published(entry, ctx.fetched_at),
            fetched=ctx.fetched_at,
            lang=feed_language(ctx.feed.name).detect(f"{title}. {summary}", hint) or ctx.feed.lang,
            authors=_authors(entry),
            tags=_tags(entry),
        )
    except ValidationError as exc:
        return SkippedEntry(index, f"invalid article: {_one_line(str(exc), 200)}", title, url)


def _url_without_link(
    entry: Mapping[str, Any], guid: Any, ctx: _Context, content: tuple[str, str, str]
) -> str:
    """The address of an entry without a link: its GUID when that is an http(s) URL, else the
    feed's page with a fragment naming the entry (GUID, else a hash of its text), so entries
    without links stay distinct for dedup and still lead somewhere."""
    if isinstance(guid, str) and guid.strip().lower().startswith(("http://", "https://")):
        return canonical_url(guid.strip(), ctx.base)
    marker = guid.strip() if isinstance(guid, str) and guid.strip() else None
    if marker is None:
        when = raw_get(entry, "published") or raw_get(entry, "updated") or ""
        marker = stable_id(*content, str(when))
    return f"{ctx.page}#item-{stable_id(marker)}"


def _feedparser(body: bytes, content_type: str | None, base_url: str | None) -> Any:
    headers: dict[str, str] = {}
    if content_type:
        headers["content-type"] = content_type  # its charset wins over the XML declaration
    if base_url:
        headers["content-location"] = base_url  # feedparser's base for relative links
    # A BytesIO, never the bytes: feedparser.parse treats a str/bytes argument as a URL or a
    # file name first (feedparser/api.py _open_resource). Sanitising and URI resolution inside
    # HTML are off: we reduce all HTML to plain text, and they are half of the parse time.
    return feedparser.parse(
        io.BytesIO(body),
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )


def _without(body: bytes, spans: ItemSpans) -> bytes:
    """`body` with the byte ranges `spans` (sorted, disjoint) cut out."""
    parts, at = [], 0
    for start, end in spans:
        parts.append(body[at:start])
        at = end
    parts.append(body[at:])
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Items:
    """The items of a body as items.py sees them, and which the feed's memo knows."""

    spans: ItemSpans
    fingerprints: list[int]
    before: dict[int, datetime | None]  # fingerprint -> publication time, from the memo

    @classmethod
    def of(cls, body: bytes, memo: Memo | None) -> _Items | None:
        if b"xml:base" in body:
            # Not context-free: feedparser carries an item's xml:base over to the items after
            # it (node-feedparser's rss-with-item-scoped-html-base.xml), so cutting one out
            # could change another's links. Parsed whole, always.
            return None
        spans = item_spans(body)
        if spans is None:
            return None
        fingerprints = [fingerprint(body, span) for span in spans]
        return cls(spans, fingerprints, unpack_memo(memo) if memo else {})

    @property
    def known(self) -> list[int]:
        return [i for i, fp in enumerate(self.fingerprints) if fp in self.before]

    def memo(self, new_dates: list[datetime | None]) -> tuple[Memo, tuple[datetime, ...]]:
        """The memo of this body and every item's publication time, given those of the new
        items (document order)."""
        dates = iter(new_dates)
        records = [
            (fp, self.before[fp] if fp in self.before else next(dates)) for fp in self.fingerprints
        ]
        return pack_memo(records), tuple(d for _, d in records if d is not None)


def parse_feed(
    body: bytes,
    *,
    feed: FeedConfig,
    fetched_at: datetime,
    content_type: str | None = None,
    base_url: str | None = None,
    memo: Memo | None = None,
) -> ParsedFeed:
    """Parse an RSS 0.9x/1.0/2.0 or Atom body into Articles.

    `base_url` is where the body came from (after redirects): relative links resolve against
    it, then against the feed's own <link>. `memo` is the ParsedFeed.memo of this feed's last
    good parse: items unchanged since are not parsed again (items.py). Raises FeedParseError
    when the body is empty, is an HTML page, declares XML entities (refused: entity-expansion
    attacks), or is not a feed.
    """
    if not body.strip():
        raise FeedParseError("empty body")
    if body[:2] == b"\x1f\x8b":  # RFC 1952 magic: a Content-Encoding the client did not undo
        raise FeedParseError("body is gzip-compressed, not a feed: decompress it first")
    if _looks_like_html(body):
        raise _html_error(body, base_url)
    if _declares_entities(body):
        raise FeedParseError(
            "refused: the document declares XML entities (<!ENTITY>), "
            "which feeds do not need and entity-expansion attacks use"
        )
    items = _Items.of(body, memo)
    known = items.known if items is not None else []
    result = None
    if items is not None and known:
        # Only the header and the new items go to feedparser; if it does not find exactly
        # the new items there, the body is parsed whole.
        result = _feedparser(
            _without(body, [items.spans[i] for i in known]), content_type, base_url
        )
        if len(result.get("entries") or []) != len(items.spans) - len(known):
            result, known = None, []
    if result is None:
        result = _feedparser(body, content_type, base_url)
    entries = result.get("entries") or []
    feed_info: Mapping[str, Any] = result.get("feed") or {}
    bozo_reason = _bozo_reason(result)
    if not entries and not known:
        exc = result.get("bozo_exception")
        if content_type and "html" in content_type.lower() and not result.get("version"):
            raise _html_error(body, base_url)
        # A broken document is still a feed when feedparser recovered its header (a version
        # and channel fields): it has nothing to publish now, and bozo_reason says why.
        recovered = bool(result.get("version")) and bool(feed_info)
        if bozo_reason and not isinstance(exc, _HARMLESS_BOZO) and not recovered:
            raise FeedParseError(f"not a feed: {bozo_reason}")
        if not result.get("version") and not feed_info:
            raise FeedParseError("not a feed: no RSS, Atom or RDF elements found")
    title = html_to_text(str(raw_get(feed_info, "title") or "")) or None
    feed_link = str(raw_get(feed_info, "link") or "").strip()
    base = base_url or (feed_link if feed_link.lower().startswith(("http:", "https:")) else None)
    page = canonical_url(feed_link, base) if feed_link else ""
    if not page.lower().startswith(("http://", "https://")):
        page = base_url or feed.url
    ctx = _Context(feed, (title or "").strip() or feed.name, base, fetched_at, feed_info, page)
    articles: list[Article] = []
    skipped: list[SkippedEntry] = []
    for index, entry in enumerate(entries):
        outcome = _entry_to_article(index, entry, ctx)
        if isinstance(outcome, Article):
            articles.append(outcome)
        else:
            skipped.append(outcome)
    links = raw_get(feed_info, "links")
    hub_url, self_url = _first_link(links, "hub"), _first_link(links, "self")
    new_memo, published = b"", tuple(a.published for a in articles if a.published is not None)
    if items is not None and len(entries) == len(items.spans) - len(known):
        new_memo, published = items.memo([parse_published(e, fetched_at) for e in entries])
    return ParsedFeed(
        title=title,
        articles=tuple(articles),
        skipped=tuple(skipped),
        hub_url=urljoin(base, hub_url) if base and hub_url else hub_url,
        self_url=urljoin(base, self_url) if base and self_url else self_url,
        bozo_reason=bozo_reason,
        unchanged=len(known),
        memo=new_memo,
        published=published,
    )
