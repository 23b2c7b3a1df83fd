"""Pure normalization: canonical URLs, ids, HTML to text, dates, language tags."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from newsmon.fetcher.normalize import (
    DEFAULT_MAX_SKEW,
    article_id,
    canonical_url,
    html_to_text,
    normalize_lang,
    parse_published,
    truncate,
)

# -- canonical_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?utm_source=rss&id=7#top", "https://example.com/a?id=7"),
        ("HTTPS://Example.COM:443/Path?x=1", "https://example.com/Path?x=1"),
        ("http://example.com:80/", "http://example.com/"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com", "https://example.com/"),
        (
            "https://e.com/a?b=2&fbclid=x&a=1&gclid=y&mc_cid=1&mc_eid=2&ref=tw&ref_src=s&igshid=3",
            "https://e.com/a?b=2&a=1",
        ),
        ("https://e.com/a?UTM_Medium=feed&keep=1", "https://e.com/a?keep=1"),
        ("https://e.com/a?q=a+b&flag&z=%20", "https://e.com/a?q=a+b&flag&z=%20"),
        ("https://e.com/a?utm_source=x", "https://e.com/a"),
        ("  https://e.com/a  ", "https://e.com/a"),
        ("https://user@Example.com/a", "https://user@example.com/a"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("tag:example.com,2006:/blog/", "tag:example.com,2006:/blog/"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/world/1?utm_campaign=x", "https://e.com/news/", "https://e.com/world/1"),
        ("story-2", "https://e.com/news/", "https://e.com/news/story-2"),
        ("../up", "https://e.com/news/deep/", "https://e.com/news/up"),
        ("//cdn.e.com/x", "https://e.com/", "https://cdn.e.com/x"),
        ("https://other.org/a", "https://e.com/", "https://other.org/a"),
    ],
)
def test_canonical_url_resolves_relative_links(url: str, base: str, expected: str) -> None:
    assert canonical_url(url, base) == expected


def test_canonical_url_keeps_unparseable_input() -> None:
    assert canonical_url("http://[::1/broken") == "http://[::1/broken"
    assert canonical_url("http://e.com:notaport/a") == "http://e.com:notaport/a"
    assert canonical_url("") == ""


_hosts = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,10}(\.[A-Za-z]{2,5}){1,2}\Z")
_segment = st.text(alphabet="abcXYZ019-._~%", max_size=8)
_param = st.tuples(
    st.sampled_from(["id", "utm_source", "fbclid", "page", "Ref", "q", "gclid", ""]),
    st.text(alphabet="abc123+%=", max_size=5),
)


@st.composite
def _urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    path = "/".join(draw(st.lists(_segment, max_size=4)))
    params = draw(st.lists(_param, max_size=5))
    query = "&".join(f"{k}={v}" for k, v in params)
    fragment = draw(st.sampled_from(["", "#frag", "#"]))
    return f"{scheme}://{draw(_hosts)}{port}/{path}" + (f"?{query}" if query else "") + fragment


@given(st.text())
def test_canonical_url_never_raises(text: str) -> None:
    assert isinstance(canonical_url(text), str)
    assert isinstance(canonical_url(text, "https://e.com/a/"), str)


@given(st.text(), st.text())
def test_canonical_url_never_raises_with_any_base(text: str, base: str) -> None:
    assert isinstance(canonical_url(text, base), str)


@given(_urls())
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert "#" not in once
    assert "utm_source=" not in once
    assert "fbclid=" not in once
    assert "gclid=" not in once


@given(st.text())
def test_canonical_url_is_idempotent_on_any_text(text: str) -> None:
    once = canonical_url(text)
    assert canonical_url(once) == once


# -- article_id ------------------------------------------------------------------------------


def test_article_id_permalink_guid_equals_url_id() -> None:
    # A feed whose GUID is the permalink and a feed without GUIDs agree on the id.
    url = "https://e.com/world/story?utm_source=rss"
    assert article_id(url, canonical_url(url)) == article_id(None, canonical_url(url))
    assert article_id(None, "https://E.com/world/story#x") == article_id(None, url)


def test_article_id_opaque_guid_wins_over_url() -> None:
    guid = "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"
    assert article_id(guid, "https://e.com/a") == article_id(guid, "https://e.com/b")
    assert article_id(guid, "https://e.com/a") != article_id(None, "https://e.com/a")


@pytest.mark.parametrize("weak", ["12345", "123456789", "abc", "   ", "", "two words here"])
def test_article_id_weak_guid_falls_back_to_url(weak: str) -> None:
    assert article_id(weak, "https://e.com/a") == article_id(None, "https://e.com/a")


def test_article_id_is_stable_hex() -> None:
    first = article_id("tag:e.com,2025:1", "https://e.com/a")
    assert first == article_id("tag:e.com,2025:1", "https://e.com/a")
    assert len(first) == 24
    int(first, 16)


# -- html_to_text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Hello <b>world</b></p>", "Hello world"),
        ("a<br>b<br/>c", "a b c"),
        ("<p>one</p><p>two</p>", "one two"),
        ("Fish &amp; chips &mdash; &#8220;yes&#8221; &nbsp;ok", "Fish & chips — “yes” ok"),
        ("<script>var x = '<p>no</p>';</script>kept<style>p{}</style>", "kept"),
        ("<noscript>js off</noscript><template>t</template>shown", "shown"),
        ("  plain\n\ttext  ", "plain text"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("", ""),
        ("<img src=x alt='pic'>caption", "caption"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@given(st.text())
def test_html_to_text_never_raises_and_is_collapsed(html: str) -> None:
    text = html_to_text(html)
    assert text == text.strip()
    assert "  " not in text


@given(
    st.lists(
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<script>",
                "</script>",
                "<b>",
                "x",
                "&amp;",
                "<!--",
                "-->",
                "<![CDATA[",
                "]]>",
                "<",
                ">",
                "&",
                "<a href='",
            ]
        )
    )
)
def test_html_to_text_never_raises_on_tag_soup(pieces: list[str]) -> None:
    assert isinstance(html_to_text("".join(pieces)), str)


def test_html_to_text_handles_a_large_document() -> None:
    # 1.4 MB of markup: about 0.3 s on one core when measured by hand; speed is not asserted
    # here (a loaded CI machine made a time bound flaky), only that the whole text comes out.
    html = "<div><p>Paragraph with <a href='#'>a link</a> &amp; text.</p></div>" * 20_000
    text = html_to_text(html)
    assert text.startswith("Paragraph with a link & text.")
    assert text.count("Paragraph with a link & text.") == 20_000


def test_truncate() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("one two three four five", 20) == "one two three four…"
    # No space near the cut: cut mid-word rather than lose more than a fifth.
    assert truncate("one two three four five", 12) == "one two thr…"
    assert len(truncate("x" * 50, 10)) == 10
    assert truncate("abc", 0) == ""


# -- parse_published -------------------------------------------------------------------------

FETCHED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _struct(dt: datetime) -> time.struct_time:
    return dt.utctimetuple()


def test_parse_published_prefers_published_then_updated() -> None:
    pub = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
    upd = datetime(2025, 5, 2, 8, 0, tzinfo=UTC)
    assert parse_published({"published_parsed": _struct(pub)}, FETCHED) == pub
    assert parse_published({"updated_parsed": _struct(upd)}, FETCHED) == upd
    both = {"published_parsed": _struct(pub), "updated_parsed": _struct(upd)}
    assert parse_published(both, FETCHED) == pub


def test_parse_published_missing_is_none() -> None:
    assert parse_published({}, FETCHED) is None
    assert parse_published({"published": "sometime last week"}, FETCHED) is None
    assert parse_published({"published_parsed": None}, FETCHED) is None


def test_parse_published_clamps_the_future() -> None:
    far = datetime(2099, 1, 1, tzinfo=UTC)
    assert parse_published({"published_parsed": _struct(far)}, FETCHED) == FETCHED
    near = FETCHED + DEFAULT_MAX_SKEW - timedelta(minutes=1)
    assert parse_published({"published_parsed": _struct(near)}, FETCHED) == near


def test_parse_published_treats_placeholder_dates_as_missing() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_published({"published_parsed": _struct(epoch)}, FETCHED) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Seg, 24 Set 2018 19:42:40 -0300", datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)),
        ("Sáb, 13 Out 2018 10:00:00 +0000", datetime(2018, 10, 13, 10, 0, tzinfo=UTC)),
        ("Mi, 12 Mär 2025 08:00:00 +0100", datetime(2025, 3, 12, 7, 0, tzinfo=UTC)),
        ("Tue, 10 Jun 2025 09:30:00 GMT", datetime(2025, 6, 10, 9, 30, tzinfo=UTC)),
    ],
)
def test_parse_published_reparses_foreign_rfc822(raw: str, expected: datetime) -> None:
    # feedparser leaves *_parsed empty for these; the raw string is re-read.
    fetched = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_published({"published": raw}, fetched) == expected


# -- language --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("en-US", "en"), ("IT-it", "it"), ("en_US", "en"), ("eng", "en"), ("ko", "ko"),
     ("", None), (None, None), ("english", None), ("xx-", None), ("tlh", None)],
)  # fmt: skip
def test_normalize_lang(tag: str | None, expected: str | None) -> None:
    assert normalize_lang(tag) == expected
