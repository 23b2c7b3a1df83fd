"""The web page's pure parts: escaping and highlighting, links, filters, chart, access."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup
from newsmon.shared.errors import ConfigError
from newsmon.shared.messages import Term
from newsmon.shared.settings import Settings
from newsmon.web.app import check_access, web_token
from newsmon.web.render import chart_svg, highlight, safe_href
from newsmon.web.store import AlertFilter, AlertStore, alerts_per_day
from pydantic import SecretStr

from tests.support.web import make_alert

TAG = re.compile(r"<(?!/?mark\b)[a-zA-Z/!?]")


def test_highlight_marks_terms_from_offsets_and_escapes_the_rest() -> None:
    sentence = "<b>Pyongyang</b> sent troops & shells"
    terms = [
        Term(term="Pyongyang", category="dprk_actor", start=3, end=12),
        Term(term="troops", category="troops", start=22, end=28),
    ]
    assert highlight(sentence, terms) == Markup(
        '&lt;b&gt;<mark class="term" title="dprk_actor">Pyongyang</mark>&lt;/b&gt; sent '
        '<mark class="term" title="troops">troops</mark> &amp; shells'
    )


@given(
    sentence=st.text(max_size=60),
    spans=st.lists(
        st.tuples(st.integers(0, 80), st.integers(0, 80), st.text(max_size=8)), max_size=5
    ),
)
def test_highlight_never_lets_markup_through(
    sentence: str, spans: list[tuple[int, int, str]]
) -> None:
    terms = [Term(term="t", category=c, start=a, end=b) for a, b, c in spans]
    out = str(highlight(sentence, terms))
    assert not TAG.search(out), out
    # The text itself survives, in order, whatever the offsets said.
    plain = re.sub(r"</?mark[^>]*>", "", out)
    assert Markup(plain).unescape() == sentence


@pytest.mark.parametrize(
    ("url", "href"),
    [
        ("https://news.example/a", "https://news.example/a"),
        ("http://news.example/a", "http://news.example/a"),
        ("javascript:alert(1)", None),
        (" \x00JavaScript:alert(1)", None),
        ("data:text/html,<script>", None),
        ("//evil.example/", None),
    ],
)
def test_only_http_links_are_links(url: str, href: str | None) -> None:
    assert safe_href(url) == href


def test_filters_and_newest_first() -> None:
    now = datetime.now(UTC)
    store = AlertStore()
    store.add(make_alert(1, lang="ru", feed="tass", categories=("weapons",)))
    store.add(make_alert(2, title="Old news of a summit", age=timedelta(days=3)))
    store.add(make_alert(3, lang="ko"))
    assert [s.latest.alert_id for s in store.stories()] == ["alert-3", "alert-1", "alert-2"]

    def ids(**query: str) -> list[str]:
        return [s.latest.alert_id for s in store.query(AlertFilter.from_query(query), now)]

    assert ids(lang="ru") == ["alert-1"]
    assert ids(feed="tass") == ["alert-1"]
    assert ids(category="weapons") == ["alert-1"]
    assert ids(since="24h") == ["alert-3", "alert-1"]
    assert ids(q="SUMMIT") == ["alert-2"]
    assert ids(since="forever") == ["alert-3", "alert-1", "alert-2"], "unknown: ignored"


def test_revisions_join_one_story_and_replays_are_ignored() -> None:
    store = AlertStore()
    first = make_alert(1, source="Yonhap", feed="yonhap")
    second = make_alert(1, revision=2, source="TASS", feed="tass", lang="ru", sources=first.sources)
    assert store.add(first)
    assert store.add(second)
    assert not store.add(first), "a replayed revision changes nothing"
    story = store.story("alert-1")
    assert story is not None
    assert [s.source for s in story.sources()] == ["Yonhap", "TASS"]
    assert [e.revision for e in story.timeline()] == [1, 2]
    seq, changed = store.changed_since(0) or (0, [])
    assert seq == 2
    assert [s.latest.revision for s in changed] == [2]


def test_story_keeps_the_newest_revision_whole_and_sources_known_only_from_a_list() -> None:
    store = AlertStore()
    joined = make_alert(9, source="NHK", feed="nhk").sources[0]  # never raised a revision
    third = make_alert(1, revision=3, source="TASS", feed="tass", categories=("weapons",))
    first = make_alert(1, source="Yonhap", feed="yonhap")
    second = make_alert(1, revision=2, source="AP", feed="ap", sources=(*first.sources, joined))
    for alert in (third, first, second):  # partitions are read in no particular order
        assert store.add(alert)
    story = store.story("alert-1")
    assert story is not None
    assert story.latest == third, "the newest revision, whole, whatever the arrival order"
    assert [s.source for s in story.sources()] == ["Yonhap", "AP", "TASS", "NHK"]
    assert [(e.revision, e.source.source) for e in story.timeline()] == [
        (1, "Yonhap"),
        (2, "AP"),
        (3, "TASS"),
        (None, "NHK"),
    ]
    now = datetime.now(UTC)
    assert store.query(AlertFilter(category="weapons"), now) == [story]
    assert store.query(AlertFilter(feed="nhk"), now) == [story]
    assert store.query(AlertFilter(q="kursk"), now) == [story]


def test_store_is_bounded() -> None:
    store = AlertStore(max_stories=2)
    for n in range(5):
        store.add(make_alert(n))
    assert len(store) == 2
    assert store.changed_since(0) is not None


def test_chart_counts_stories_per_day_and_category() -> None:
    store = AlertStore()
    store.add(make_alert(1, categories=("troops", "weapons")))
    store.add(make_alert(2, categories=("troops",)))
    today = datetime.now(UTC).date()
    days = alerts_per_day(store.stories(), today, days=3)
    assert [d for d, _ in days][-1] == today
    assert days[-1][1] == {"troops": 2, "weapons": 1} or today != make_alert(1).alerted.date()
    svg = str(chart_svg(days))
    assert svg.startswith("<svg")
    assert svg.count("<rect") >= 2


def test_check_access_bearer_and_basic() -> None:
    assert check_access(b"Bearer tok", "tok")
    assert check_access(b"Basic " + base64.b64encode(b"any:tok"), "tok")
    assert not check_access(b"Basic " + base64.b64encode(b"tok:"), "tok")
    assert not check_access(b"Basic !!!", "tok")
    assert not check_access(b"", "tok")
    assert not check_access(b"Bearer tok2", "tok")


def test_beyond_loopback_needs_a_token() -> None:
    assert web_token(Settings(web_host="127.0.0.1")) is None
    assert web_token(Settings(web_host="::1")) is None
    with pytest.raises(ConfigError, match="NEWSMON_WEB_TOKEN"):
        web_token(Settings(web_host="0.0.0.0"))
    assert web_token(Settings(web_host="0.0.0.0", web_token=SecretStr("t"))) == "t"


def test_feed_health_orders_failing_then_quiet_and_counts_a_day() -> None:
    from newsmon.fetcher.state import FeedState
    from newsmon.web.feeds import ItemCounter, feed_health

    now = 1_000_000.0
    states = {
        "fresh": FeedState(last_success_at=now, last_new_item_at=now - 60),
        "quiet": FeedState(last_success_at=now, last_new_item_at=now - 5 * 86_400),
        "down": FeedState(error_streak=2, extra={"last_error": "http_4xx: HTTP 404"}),
    }
    items = ItemCounter()
    for at in (now - 100, now - 3600 * 5, now - 86_400 * 2):
        items.add("fresh", at)
    rows = feed_health(states, items.last_24h(now), now)
    assert [(r.name, r.status) for r in rows] == [
        ("down", "failing"),
        ("quiet", "quiet"),
        ("fresh", "ok"),
    ]
    assert rows[0].reason == "http_4xx: HTTP 404"
    assert rows[2].items_24h == 2
