"""parse_feed on fixture feeds written for newsmon (tests/fixtures/feeds/)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.parse import (
    MAX_SUMMARY_CHARS,
    MAX_TEXT_CHARS,
    FeedParseError,
    ParsedFeed,
    parse_feed,
)
from newsmon.shared.messages import Article, decode, encode

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
FETCHED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
FEED = FeedConfig(name="example", url="https://news.example.com/feed.xml")


def _parse(name: str, **kwargs: object) -> ParsedFeed:
    body = (FIXTURES / name).read_bytes()
    return parse_feed(body, feed=kwargs.pop("feed", FEED), fetched_at=FETCHED, **kwargs)  # type: ignore[arg-type]


def test_rss2() -> None:
    parsed = _parse("rss2.xml")
    assert parsed.title == "Example & Daily"
    assert parsed.hub_url == "https://pubsubhubbub.example.net/"
    assert parsed.self_url == "https://news.example.com/feed.xml"
    assert parsed.bozo_reason is None
    first, second = parsed.articles[:2]
    assert first.feed == "example"
    assert first.source == "Example & Daily"  # the outlet's own title, for people
    assert first.url == "https://news.example.com/world/talks-resume"  # utm_* dropped
    assert first.title == "Talks resume in Geneva as envoys meet"  # escaped tags removed
    assert first.summary == "Envoys met on Tuesday & agreed to keep talking."  # no script/style
    assert first.text == "Envoys met on Tuesday in Geneva. They agreed to meet again next week."
    assert first.published == FETCHED  # 10 June is after the fetch time: clamped
    assert first.lang == "en"
    assert first.authors == ("Jane Roe",)
    assert first.tags == ("World", "Diplomacy")  # "world" is a case-insensitive duplicate
    assert second.published is not None
    first, second, no_link, no_title = parsed.articles
    assert parsed.skipped == ()  # entries missing fields are kept while they can be told apart
    assert no_link.title == "An item without a link"
    assert no_link.url.startswith("https://news.example.com/#item-")  # the site, distinct
    assert no_title.url == "https://news.example.com/untitled"
    assert no_title.title == "An item without a title."  # its lede


def test_rss2_dates_before_the_fetch_time_are_kept() -> None:
    body = (FIXTURES / "rss2.xml").read_bytes()
    later = datetime(2025, 7, 1, tzinfo=UTC)
    parsed = parse_feed(body, feed=FEED, fetched_at=later)
    assert parsed.articles[0].published == datetime(2025, 6, 10, 7, 30, tzinfo=UTC)
    assert parsed.articles[1].published == datetime(2025, 6, 10, 17, 5, tzinfo=UTC)


def test_ids_follow_guid_rules() -> None:
    first, second, no_link, _ = _parse("rss2.xml").articles
    assert no_link.id not in (first.id, second.id)
    # A permalink GUID gives the same id as the URL would; an opaque urn: GUID is its own.
    other = FeedConfig(name="other", url="https://mirror.example.org/feed")
    again = _parse("rss2.xml", feed=other)
    assert [a.id for a in again.articles][:2] == [first.id, second.id]
    assert len({first.id, second.id}) == 2


def test_articles_survive_the_message_codec() -> None:
    for article in _parse("rss2.xml").articles:
        assert decode(Article, encode(article)) == article


def test_atom_with_xml_base_and_relative_links() -> None:
    parsed = _parse("atom.xml")
    assert parsed.title == "Beispiel Nachrichten"
    assert parsed.self_url == "https://atom.example.de/atom.xml"
    first, second = parsed.articles
    assert first.url == "https://atom.example.de/politik/haushalt-2025"  # ref= and #... dropped
    assert second.url == "https://atom.example.de/wirtschaft/streik"
    assert first.lang == "de"
    assert first.authors == ("Max Mustermann", "Erika Musterfrau")
    assert first.tags == ("Politik",)
    assert first.summary.startswith("Die Regierung hat am Samstag")
    assert (
        first.text == "Die Regierung hat den Entwurf vorgestellt. Der Bundestag berät ihn im April."
    )
    assert first.published == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)  # from <updated>, +01:00


def test_rdf() -> None:
    parsed = _parse("rdf.xml")
    assert [a.url for a in parsed.articles] == [
        "https://rdf.example.org/a",
        "https://rdf.example.org/b",
    ]
    assert parsed.articles[0].title == "Le gouvernement annonce une réforme"  # ISO-8859-1
    assert parsed.articles[0].published == datetime(2025, 4, 2, 8, 0, tzinfo=UTC)
    assert parsed.articles[0].lang == "fr"
    assert parsed.articles[0].authors == ("Marie Curie",)


def test_windows_1251() -> None:
    parsed = _parse("cp1251.xml")
    assert parsed.title == "Новости региона"
    assert parsed.articles[0].title == "В Оренбурге открыли новый мост через Урал"
    assert parsed.articles[0].lang == "ru"  # no <language>: detected from the script
    assert parsed.articles[0].tags == ("Общество",)


def test_http_charset_wins_over_a_wrong_declaration() -> None:
    body = (FIXTURES / "cp1251.xml").read_bytes().replace(b"windows-1251", b"utf-8", 1)
    parsed = parse_feed(
        body,
        feed=FEED,
        fetched_at=FETCHED,
        content_type="application/rss+xml; charset=windows-1251",
    )
    assert parsed.articles[0].title == "В Оренбурге открыли новый мост через Урал"


def test_relative_links_resolve_against_the_channel_link() -> None:
    parsed = _parse("relative-links.xml")
    assert [a.url for a in parsed.articles] == [
        "https://rel.example.org/world/story-1?id=7",
        "https://rel.example.org/news/story-2?page=2",
        "https://rel.example.org/world/story-3",
    ]


def test_relative_links_resolve_against_base_url_first() -> None:
    parsed = _parse("relative-links.xml", base_url="https://cdn.example.net/feeds/rel.xml")
    assert parsed.articles[0].url == "https://cdn.example.net/world/story-1?id=7"
    assert parsed.articles[1].url == "https://cdn.example.net/feeds/story-2?page=2"


def test_missing_dates_are_none() -> None:
    parsed = _parse("missing-dates.xml")
    assert [a.published for a in parsed.articles] == [None, None]


def test_future_dates_are_clamped() -> None:
    far, near = _parse("future-date.xml").articles
    assert far.published == FETCHED
    assert near.published == datetime(2025, 6, 1, 12, 5, tzinfo=UTC)  # within the skew


def test_html_page_names_the_advertised_feeds() -> None:
    with pytest.raises(FeedParseError, match="served HTML, not a feed") as info:
        _parse("html-page.html", base_url="https://www.example-news.com/")
    assert info.value.alternates == (
        "https://www.example-news.com/rss/top.xml",
        "https://www.example-news.com/world/atom",
    )
    assert "https://www.example-news.com/rss/top.xml" in str(info.value)
    assert "\n" not in str(info.value)


def test_html_page_without_alternates() -> None:
    body = b"<!doctype html><html><head><title>x</title></head><body>hi</body></html>"
    with pytest.raises(FeedParseError, match="advertises no feed"):
        parse_feed(body, feed=FEED, fetched_at=FETCHED, content_type="text/html")


@pytest.mark.parametrize("name", ["billion-laughs.xml", "external-entity.xml"])
def test_entity_declarations_are_refused_before_parsing(name: str) -> None:
    # Refused from the document's head, before any parser could expand an entity.
    with pytest.raises(FeedParseError, match=r"refused: the document declares XML entities"):
        _parse(name)


def test_entity_declarations_are_refused_in_utf16() -> None:
    text = (FIXTURES / "billion-laughs.xml").read_text(encoding="utf-8")
    for codec in ("utf-16", "utf-16-le", "utf-16-be"):
        body = text.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
        with pytest.raises(FeedParseError, match="declares XML entities"):
            parse_feed(body.encode(codec), feed=FEED, fetched_at=FETCHED)


def test_entity_text_inside_an_item_is_not_refused() -> None:
    body = (
        b'<rss version="2.0"><channel><title>t</title><item><title>About DTDs</title>'
        b"<link>https://e.com/a</link><description><![CDATA[Write <!ENTITY x> in a DTD]]>"
        b"</description></item></channel></rss>"
    )
    parsed = parse_feed(body, feed=FEED, fetched_at=FETCHED)
    assert parsed.articles[0].summary == "Write in a DTD"


@pytest.mark.parametrize("body", [b"", b"   \n\t "])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="empty body"):
        parse_feed(body, feed=FEED, fetched_at=FETCHED)


@pytest.mark.parametrize(
    "body",
    [
        b"<not a feed",
        b'{"json": "object"}',
        b"<?xml version='1.0'?><root><x/></root>",
        b"\x00\xff\xfe",
    ],
)
def test_not_a_feed(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="not a feed"):
        parse_feed(body, feed=FEED, fetched_at=FETCHED)


def test_a_valid_feed_with_no_items_is_not_an_error() -> None:
    body = b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    parsed = parse_feed(body, feed=FEED, fetched_at=FETCHED)
    assert parsed.title == "Quiet"
    assert parsed.articles == ()
    assert parsed.skipped == ()


def test_bozo_feed_with_items_reports_the_reason() -> None:
    body = (
        b'<rss version="2.0"><channel><title>Broken</title><item><title>One & two</title>'
        b"<link>https://e.com/1</link></item></channel></rss>"
    )
    parsed = parse_feed(body, feed=FEED, fetched_at=FETCHED)
    assert [a.title for a in parsed.articles] == ["One & two"]
    assert parsed.bozo_reason is not None
    assert "\n" not in parsed.bozo_reason


def test_a_path_like_body_is_never_opened_as_a_file() -> None:
    # feedparser.parse(bytes) would open a file of that name (feedparser/api.py _open_resource).
    with pytest.raises(FeedParseError):
        parse_feed(str(FIXTURES / "rss2.xml").encode(), feed=FEED, fetched_at=FETCHED)
    with pytest.raises(FeedParseError):
        parse_feed(b"http://127.0.0.1:9/feed.xml", feed=FEED, fetched_at=FETCHED)


def test_non_http_links_are_never_passed_on() -> None:
    body = (
        b'<rss version="2.0"><channel><title>t</title><link>https://e.com/</link>'
        b"<item><title>js</title><link>javascript:alert(1)</link></item>"
        b"<item><title>ok</title><link>https://e.com/ok</link></item></channel></rss>"
    )
    parsed = parse_feed(body, feed=FEED, fetched_at=FETCHED)
    assert [a.title for a in parsed.articles] == ["js", "ok"]  # the entry is kept ...
    assert parsed.articles[0].url.startswith("https://e.com/#item-")  # ... its link is not
    assert parsed.skipped == ()


def test_long_fields_are_capped() -> None:
    summary = "word " * 2_000
    content = "<p>" + "text " * 30_000 + "</p>"
    body = (
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>t</title><item><title>long</title><link>https://e.com/l</link>"
        f"<description>{summary}</description>"
        f"<content:encoded><![CDATA[{content}]]></content:encoded></item></channel></rss>"
    ).encode()
    (article,) = parse_feed(body, feed=FEED, fetched_at=FETCHED).articles
    assert len(article.summary) <= MAX_SUMMARY_CHARS
    assert len(article.text) <= MAX_TEXT_CHARS
    assert article.text.endswith("…")


def test_summary_falls_back_to_content() -> None:
    body = (
        b'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        b"<title>t</title><item><title>x</title><link>https://e.com/x</link>"
        b"<content:encoded><![CDATA[<p>Only content here.</p>]]></content:encoded>"
        b"</item></channel></rss>"
    )
    (article,) = parse_feed(body, feed=FEED, fetched_at=FETCHED).articles
    assert article.summary == article.text == "Only content here."


def test_feed_lang_is_the_last_resort() -> None:
    korean = FeedConfig(name="k", url="https://k.example.kr/rss", lang="ko")
    body = b'<rss version="2.0"><channel><title>t</title><item><title>KN-23</title><link>https://k.example.kr/1</link></item></channel></rss>'
    assert parse_feed(body, feed=korean, fetched_at=FETCHED).articles[0].lang == "ko"
    assert parse_feed(body, feed=FEED, fetched_at=FETCHED).articles[0].lang is None


def test_e2e_fixture_has_one_nk_russia_item_among_six() -> None:
    parsed = _parse("nk-russia-e2e.xml")
    assert len(parsed.articles) == 6
    assert parsed.skipped == ()
    kursk = [a for a in parsed.articles if "Kursk" in a.title]
    assert [a.url for a in kursk] == ["http://127.0.0.1/e2e/nk-troops-kursk"]
    assert "KN-23" in kursk[0].summary
    assert "170 mm" in kursk[0].summary
    others = " ".join(f"{a.title} {a.summary}" for a in parsed.articles if a not in kursk)
    for term in ("Korea", "Russia", "Pyongyang", "missile", "troops", "Kursk"):
        assert term not in others


def test_an_entity_after_a_comment_with_markup_is_still_refused() -> None:
    body = (
        b'<?xml version="1.0"?><!-- a <p> in a comment --><!DOCTYPE rss [<!ENTITY a "b">]>'
        b'<rss version="2.0"><channel><title>&a;</title></channel></rss>'
    )
    with pytest.raises(FeedParseError, match="declares XML entities"):
        parse_feed(body, feed=FEED, fetched_at=FETCHED)


def test_an_xhtml_doctype_over_an_rss_root_is_a_feed() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "x.dtd">'
        b'<rss version="2.0"><channel><title>found</title><item><title>i</title>'
        b"<link>https://e.com/i</link></item></channel></rss>"
    )
    assert parse_feed(body, feed=FEED, fetched_at=FETCHED).title == "found"


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>no doctype</body></html>",
        b"\xef\xbb\xbf  <!-- banner --><!DOCTYPE html><html lang=en>",
        b"<!DOCTYPE html><meta charset=utf-8><title>t</title><p>root-less page",
        b"<HEAD><TITLE>old page</TITLE></HEAD>",
    ],
)
def test_html_is_recognised(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="served HTML"):
        parse_feed(body, feed=FEED, fetched_at=FETCHED)


def test_gzip_body_gets_a_clear_error() -> None:
    body = gzip.compress((FIXTURES / "rss2.xml").read_bytes())
    with pytest.raises(FeedParseError, match="gzip-compressed"):
        parse_feed(body, feed=FEED, fetched_at=FETCHED)
