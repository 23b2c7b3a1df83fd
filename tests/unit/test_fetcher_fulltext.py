"""Full text, without a network: the auto decision, extraction from our own fixture pages, and
Fetcher.poll_once with page fetches over httpx.MockTransport (degrading, counting, dedup)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from newsmon.fetcher.app import Fetcher
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.fulltext import (
    SHORT_SUMMARY_CHARS,
    FullTextConfig,
    FullTextMode,
    PageTexts,
    adds_to_summary,
    extract_main_text,
    is_html,
    wants_full_text,
)
from newsmon.fetcher.http import FeedClient, HostLimiter
from newsmon.fetcher.state import FeedState
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss
from tests.support.fetcher import ListSink, fetcher_for

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
KURSK = (PAGES / "kursk-troops.html").read_bytes()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY_SENTENCE = "rotated fresh units into the region"
BOILERPLATE = (
    "Most read",
    "Morning Briefing",
    "Copyright 2026",
    "Subscribe today",
    "Privacy policy",
    "Politics",
    "window.dataLayer",
)


def _article(summary: str = "", text: str = "", n: int = 0) -> Article:
    return Article(
        id=f"id{n}",
        feed="f",
        source="Outlet",
        url=f"https://news.example.org/{n}",
        title="t",
        summary=summary,
        text=text,
        fetched=NOW,
    )


SHORT = [_article("x" * 80, n=i) for i in range(5)]
LONG = [_article("x" * 900, n=i) for i in range(5)]


@pytest.mark.parametrize(
    ("mode", "feed_option", "articles", "expected"),
    [
        ("auto", None, SHORT, True),
        ("auto", None, LONG, False),
        ("auto", None, [], False),
        # content:encoded in the feed counts: such a feed is not fetched again
        ("auto", None, [_article("x" * 80, "y" * 5000, n=i) for i in range(5)], False),
        # the median decides: two long items among five short ones do not turn it off
        ("auto", None, SHORT + LONG[:2], True),
        ("auto", True, LONG, True),
        ("auto", False, SHORT, False),
        ("on", None, LONG, True),
        ("on", False, SHORT, False),  # a feed's own "false" wins over the global "on"
        ("off", True, SHORT, False),  # the global "off" wins over everything
        ("off", None, SHORT, False),
    ],
)
def test_the_full_text_decision(
    mode: FullTextMode, feed_option: bool | None, articles: list[Article], expected: bool
) -> None:
    assert wants_full_text(mode, feed_option, articles) is expected


def test_the_auto_threshold_is_on_the_median() -> None:
    just_under = [_article("x" * (SHORT_SUMMARY_CHARS - 1), n=i) for i in range(3)]
    at = [_article("x" * SHORT_SUMMARY_CHARS, n=i) for i in range(3)]
    assert wants_full_text("auto", None, just_under)
    assert not wants_full_text("auto", None, at)


def test_extraction_keeps_the_article_and_drops_the_boilerplate() -> None:
    text = extract_main_text(KURSK, url="https://wire.example.org/world/nk-troops-kursk")
    assert BODY_SENTENCE in text
    assert "KN-23 ballistic missiles had been launched" in text  # the last paragraph too
    for junk in BOILERPLATE:
        assert junk not in text, junk
    assert len(text.splitlines()) >= 4, "paragraphs stay on their own lines"
    assert all(line == " ".join(line.split()) for line in text.splitlines())


def test_extraction_is_capped() -> None:
    text = extract_main_text(KURSK, url="https://wire.example.org/a", max_chars=300)
    assert 0 < len(text) <= 300
    assert text.endswith("…")


def test_a_charset_declared_only_in_a_meta_element_is_honoured() -> None:
    body = (PAGES / "korean-euc-kr.html").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    text = extract_main_text(body, url="https://ko.example.org/a")
    assert "쿠르스크 지역에 파병된 북한군" in text
    assert "무단 전재" not in text  # the footer


def test_the_http_charset_wins_over_the_meta_element() -> None:
    page = KURSK.replace(b'charset="utf-8"', b'charset="iso-8859-1"')
    latin = page.replace(b"Seoul's", "Séoul's".encode())
    text = extract_main_text(
        latin, url="https://a.example/", content_type="text/html; charset=utf-8"
    )
    assert "Séoul's spies" in text


def test_a_page_without_an_article_gives_nothing_worth_keeping() -> None:
    text = extract_main_text((PAGES / "no-article.html").read_bytes(), url="https://a.example/")
    assert not adds_to_summary(text, "A short summary.")


def test_text_must_add_to_the_summary() -> None:
    assert adds_to_summary("x" * 500, "y" * 200)
    assert not adds_to_summary("x" * 150, "y" * 200)  # a teaser page: the lede again
    assert not adds_to_summary("Please enable JavaScript.", "")


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, True),
        ("text/html; charset=utf-8", True),
        ("application/xhtml+xml", True),
        ("application/pdf", False),
        ("image/jpeg", False),
    ],
)
def test_only_html_is_extracted(content_type: str | None, expected: bool) -> None:
    assert is_html(content_type) is expected


# --- Fetcher.poll_once with full text, over MockTransport -------------------------------------


AsyncHandler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def _fetcher(
    handler: AsyncHandler, sink: ListSink, metrics: Metrics, **overrides: object
) -> Fetcher:
    client = FeedClient(transport=httpx.MockTransport(handler))
    settings = Settings(kafka_bootstrap="unused:9092", **overrides)  # type: ignore[arg-type]
    hosts = HostLimiter(settings.fetch_per_host_concurrency)
    pages = PageTexts(FullTextConfig.from_settings(settings), client, metrics, hosts)
    return fetcher_for(
        settings, metrics, sink, client, pages=pages, hosts=hosts, clock=NOW.timestamp
    )


def _count(metrics: Metrics, feed: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "newsmon_feed_full_text_total", {"feed": feed, "outcome": outcome}
    )
    return value or 0.0


FEED = FeedConfig(name="wire", url="https://feeds.example.org/rss")


def _feed_body(paths: list[str]) -> bytes:
    return rss([Item(f"https://news.example.org{p}", f"Story {p}", NOW) for p in paths])


async def test_pages_fill_the_text_and_failures_degrade_to_the_summary() -> None:
    sink, metrics = ListSink(), Metrics()
    paths = ["/ok", "/missing", "/down", "/pdf", "/shell"]
    requested: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        requested.append(request.url.path)
        if request.url.host == "feeds.example.org":
            return httpx.Response(200, content=_feed_body(paths))
        match request.url.path:
            case "/ok":
                return httpx.Response(200, content=KURSK, headers={"Content-Type": "text/html"})
            case "/missing":
                return httpx.Response(404)
            case "/down":
                raise httpx.ConnectError("connection refused")
            case "/pdf":
                return httpx.Response(
                    200, content=b"%PDF-1.7", headers={"Content-Type": "application/pdf"}
                )
            case _:
                return httpx.Response(200, content=(PAGES / "no-article.html").read_bytes())

    fetcher = _fetcher(handler, sink, metrics)
    state = FeedState(url=FEED.url)
    await fetcher.poll_once(FEED, state)

    assert state.error_streak == 0, "a failed page is not a failed poll"
    by_path = {a.url.rsplit("/", 1)[1]: a for a in sink.articles}
    assert set(by_path) == {p.lstrip("/") for p in paths}, "every article is published"
    assert BODY_SENTENCE in by_path["ok"].text
    for name in ("missing", "down", "pdf", "shell"):
        assert by_path[name].text == "", name
        assert by_path[name].summary == "A short summary.", name
    assert (_count(metrics, "wire", "ok"), _count(metrics, "wire", "failed")) == (1, 3)
    assert _count(metrics, "wire", "empty") == 1

    # A duplicate never costs a page fetch: the next poll fetches only the new item's page.
    paths.append("/new")
    requested.clear()
    await fetcher.poll_once(FEED, state)
    assert sorted(requested) == ["/new", "/rss"]
    assert len(sink.articles) == len(paths)


async def test_full_text_off_fetches_no_page() -> None:
    sink, metrics = ListSink(), Metrics()
    requested: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        requested.append(request.url.path)
        return httpx.Response(200, content=_feed_body(["/a", "/b"]))

    fetcher = _fetcher(handler, sink, metrics, fetch_full_text="off")
    await fetcher.poll_once(FEED, FeedState(url=FEED.url))
    assert requested == ["/rss"]
    assert len(sink.articles) == 2


async def test_a_story_in_flight_is_not_published_by_a_second_feed() -> None:
    """Feed one waits on an article page while feed two polls the same story: one article,
    and feed two's state records that it carried it too."""
    sink, metrics = ListSink(), Metrics()
    page_requested, release = asyncio.Event(), asyncio.Event()
    story = "https://news.example.org/story"
    bodies = {
        "/one": rss([Item(story + "?utm_source=rss", "Story", NOW, guid="one-1")]),
        "/two": rss([Item(story + "#top", "Story (copy)", NOW, guid="two-9")]),
    }

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in bodies:
            return httpx.Response(200, content=bodies[request.url.path])
        page_requested.set()
        await release.wait()
        return httpx.Response(200, content=KURSK)

    fetcher = _fetcher(handler, sink, metrics)
    one = FeedConfig(name="one", url="https://a.example.org/one")
    two = FeedConfig(name="two", url="https://b.example.org/two", full_text=True)
    state_two = FeedState(url=two.url)
    first = asyncio.create_task(fetcher.poll_once(one, FeedState(url=one.url)))
    await page_requested.wait()
    await fetcher.poll_once(two, state_two)  # while one's page is still loading
    release.set()
    await first

    assert [a.feed for a in sink.articles] == ["one"]
    assert BODY_SENTENCE in sink.articles[0].text
    assert state_two.extra["also_seen"] == {story: "one"}
    assert sink.states["two"].extra["also_seen"] == {story: "one"}, "saved with the state"
    assert not fetcher.publisher.in_flight
    assert (
        metrics.registry.get_sample_value(
            "newsmon_feed_items_total", {"feed": "two", "status": "duplicate_other_feed"}
        )
        == 1
    )


async def test_a_failed_publish_releases_the_story_for_the_next_poll() -> None:
    metrics = Metrics()

    class FailingSink(ListSink):
        fail = True

        async def publish(self, articles: list[Article]) -> None:
            if self.fail:
                from aiokafka.errors import KafkaConnectionError

                raise KafkaConnectionError("broker down")
            await super().publish(articles)

    sink = FailingSink()

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_feed_body(["/a"]))

    fetcher = _fetcher(handler, sink, metrics, fetch_full_text="off")
    state = FeedState(url=FEED.url)
    await fetcher.poll_once(FEED, state)
    assert state.error_streak == 0, "a failed publish is not the feed's failure"
    assert not fetcher.publisher.in_flight
    sink.fail = False
    await fetcher.poll_once(FEED, state)
    assert len(sink.articles) == 1


def test_also_seen_is_bounded_oldest_out() -> None:
    from newsmon.fetcher.publish import ALSO_SEEN_MAX, record_also_seen

    state = FeedState(url=FEED.url)
    for i in range(ALSO_SEEN_MAX + 10):
        record_also_seen(FEED, state, _article(n=i), "other")
    also = state.extra["also_seen"]
    assert len(also) == ALSO_SEEN_MAX
    assert "https://news.example.org/0" not in also
    assert f"https://news.example.org/{ALSO_SEEN_MAX + 9}" in also
