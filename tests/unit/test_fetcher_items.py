"""Unchanged items are not parsed again (services/fetcher/items.py): on the shared corpus, a
body parsed with the memo of the same feed minus one item yields exactly that item's
article, as the whole parse does, and with its own memo nothing at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.items import item_spans, pack_memo, unpack_memo
from newsmon.fetcher.parse import FeedParseError, parse_feed

from tests.support.feed_builder import Item, rss

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/corpus/feeds"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
FEED = FeedConfig(name="f", url="https://feeds.example.org/rss")
SUITES = ["real", "conformance/rss-parser", "conformance/node-feedparser"]


def _files() -> list[Path]:
    found: list[Path] = []
    for suite in SUITES:
        folder = CORPUS / suite
        if folder.is_dir():
            found += sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_size)
    return found


def _check_one_new_item(body: bytes) -> bool:
    """False when the body is not a feed with items this path handles."""
    try:
        whole = parse_feed(body, feed=FEED, fetched_at=NOW)
    except FeedParseError:
        return False
    spans = item_spans(body)
    if not spans or not whole.memo:
        return False
    without_first = body[: spans[0][0]] + body[spans[0][1] :]
    try:
        before = parse_feed(without_first, feed=FEED, fetched_at=NOW)
    except FeedParseError:
        return False
    again = parse_feed(body, feed=FEED, fetched_at=NOW, memo=before.memo)
    seen_before = {a.id for a in before.articles}
    expected = [a for a in whole.articles if a.id not in seen_before]
    assert [a.model_dump() for a in again.articles] == [a.model_dump() for a in expected]
    assert again.memo == whole.memo
    unchanged = parse_feed(body, feed=FEED, fetched_at=NOW, memo=whole.memo)
    assert unchanged.articles == ()
    assert unchanged.unchanged == len(spans)
    assert sorted(unchanged.published) == sorted(whole.published)
    return True


def test_corpus_feeds_give_the_same_articles_with_a_memo() -> None:
    files = _files()
    if not files:
        pytest.skip(f"{CORPUS} not present (shared corpus is optional)")
    checked = sum(_check_one_new_item(path.read_bytes()) for path in files)
    assert checked >= 50


def test_a_generated_feed_parses_only_its_new_item() -> None:
    items = [
        Item(f"https://news.example.org/{i}", f"Story {i}", NOW - timedelta(hours=i))
        for i in range(31)
    ]
    first = parse_feed(rss(items[1:]), feed=FEED, fetched_at=NOW)
    second = parse_feed(rss(items[:30]), feed=FEED, fetched_at=NOW, memo=first.memo)
    assert [a.title for a in second.articles] == ["Story 0"]
    assert second.unchanged == 29
    assert len(second.published) == 30


def test_a_body_with_xml_base_is_parsed_whole() -> None:
    body = rss([Item("https://news.example.org/1", "One")]).replace(
        b"<item>", b'<item xml:base="https://other.example/">'
    )
    first = parse_feed(body, feed=FEED, fetched_at=NOW)
    assert first.memo == b""
    assert len(parse_feed(body, feed=FEED, fetched_at=NOW, memo=first.memo).articles) == 1


@pytest.mark.parametrize(
    "body",
    [b"<rss><channel><item>", b"\xff\xfe<\x00", b"<rss><item></rss></item>"],
)
def test_bodies_expat_cannot_read_give_no_spans(body: bytes) -> None:
    assert item_spans(body) is None


def test_memo_round_trip() -> None:
    memo = pack_memo([(1, NOW), (2**64 - 1, None)])
    assert unpack_memo(memo) == {1: NOW, 2**64 - 1: None}
    assert unpack_memo(memo + b"xyz") == {1: NOW, 2**64 - 1: None}  # a torn tail is ignored
