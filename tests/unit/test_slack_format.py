"""Slack formatting: escaping, link safety, payload shape and limits (pure, no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from newsmon.notifier.slack import (
    SECTION_TEXT_MAX,
    build_payload,
    escape_mrkdwn,
    payload_json,
    safe_link_url,
)
from newsmon.shared.messages import AlertSource, Evidence

from tests.support.slack_stub import sample_alert


def _texts(payload: dict[str, Any]) -> list[str]:
    """Every mrkdwn text object in the blocks, in order."""
    found: list[str] = []
    for block in payload["blocks"]:
        if "text" in block:
            found.append(block["text"]["text"])
        found.extend(element["text"] for element in block.get("elements", []))
    return found


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<#C1>", "&lt;#C1&gt;"),
        ("<http://evil|click>", "&lt;http://evil|click&gt;"),
        ("AT&T", "AT&amp;T"),
        ("&lt; already", "&amp;lt; already"),  # escaping is not idempotent, on purpose
        ("Ким Чен Ын & Путин", "Ким Чен Ын &amp; Путин"),
        ("line\nbreak\ttab\x1b[31m", "line break tab [31m"),
        ("\u202egnp.exe", "gnp.exe"),
        ('quote\'s "fine" *bold*', 'quote\'s "fine" *bold*'),
    ],
)
def test_escape_mrkdwn(raw: str, escaped: str) -> None:
    assert escape_mrkdwn(raw) == escaped


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://example.com/a?b=1&c=2", "https://example.com/a?b=1&amp;c=2"),
        ("http://example.com/x|y<z>", "http://example.com/x%7Cy%3Cz%3E"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("HTTPS://example.com/ü", "HTTPS://example.com/%C3%BC"),
        ("https://example.com/%7C", "https://example.com/%7C"),  # existing escapes survive
        ("  https://example.com/\n ", "https://example.com/"),
        # Leading C0 controls: urlsplit ignores them, so the link must not keep them either.
        ("\x00http://example.com/<!channel>", "http://example.com/%3C!channel%3E"),
    ],
)
def test_safe_link_url_encodes_what_could_break_the_link(url: str, link: str) -> None:
    assert safe_link_url(url) == link


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<b>x</b>",
        "ftp://example.com/file",
        "/relative/path",
        "https://",
        "http://[::1",  # urlsplit raises on this
        "https://example.com/" + "a" * 3000,
    ],
)
def test_safe_link_url_rejects_unsafe_or_huge_urls(url: str) -> None:
    assert safe_link_url(url) is None


def test_payload_shape() -> None:
    payload = build_payload(sample_alert())

    assert set(payload) == {"text", "blocks", "unfurl_links", "unfurl_media"}
    assert [b["type"] for b in payload["blocks"]] == ["section", "section", "context"]
    headline, quote, *context = _texts(payload)
    assert headline == (
        "*<https://news.example.com/world/2024/11/25/dprk-troops?ref=rss&amp;lang=en"
        "|North Korean troops deployed to Russia's Kursk region>*"
    )
    assert quote == "> “North Korean troops were deployed to Kursk, officials said.”"
    assert context == [
        "*Sources:* Example News, Wire Service",
        "*Categories:* troops, dprk_actor",
        "*Score:* 0.87",
        "*Published:* 2024-11-25 06:44 UTC",
        "*Language:* en",
    ]
    assert payload["text"] == (
        "newsmon alert: North Korean troops deployed to Russia's Kursk region "
        "(Example News, score 0.87)"
    )


def test_every_text_object_is_verbatim_mrkdwn() -> None:
    # verbatim stops Slack from auto-linking names and mentions in article text.
    payload = build_payload(sample_alert())
    objects = [b["text"] for b in payload["blocks"] if "text" in b]
    objects += [e for b in payload["blocks"] for e in b.get("elements", [])]
    assert objects
    assert all(o["type"] == "mrkdwn" and o["verbatim"] is True for o in objects)


def test_hostile_headline_renders_as_text() -> None:
    alert = sample_alert(title="<!channel> <@U123> <#C1> <http://evil|click> & more")
    headline = _texts(build_payload(alert))[0]
    label = headline.split("|", 1)[1]
    assert (
        label == "&lt;!channel&gt; &lt;@U123&gt; &lt;#C1&gt; &lt;http://evil|click&gt; &amp; more>*"
    )


def test_unsafe_url_gives_a_headline_without_link() -> None:
    alert = sample_alert(url="javascript:alert(document.cookie)", title="Click <me>")
    assert _texts(build_payload(alert))[0] == "*Click &lt;me&gt;*"


def test_published_in_utc_or_unknown() -> None:
    assert "*Published:* unknown" in _texts(build_payload(sample_alert(published=None)))


def test_single_source_and_update_revision() -> None:
    context = _texts(build_payload(sample_alert(sources=(), revision=3, lang=None)))[2:]
    assert context[0] == "*Source:* Example News"
    assert "*Update:* revision 3" in context
    assert not any(c.startswith("*Language:*") for c in context)


def test_many_sources_are_summarised() -> None:
    sources = tuple(
        AlertSource(article_id=f"id{i}", source=f"Outlet {i}", url="https://x.example", feed="f")
        for i in range(9)
    )
    context = _texts(build_payload(sample_alert(source="Outlet 0", sources=sources)))[2]
    assert context == "*Sources:* Outlet 0, Outlet 1, Outlet 2, Outlet 3, Outlet 4 and 4 more"


def test_no_evidence_means_no_quote_block() -> None:
    payload = build_payload(sample_alert(evidence=()))
    assert [b["type"] for b in payload["blocks"]] == ["section", "context"]


def test_long_evidence_is_cut_at_a_word_without_splitting_entities() -> None:
    sentence = "Troops & tanks " * 100
    alert = sample_alert(evidence=(Evidence(field="text", sentence=sentence, start=0),))
    quote = _texts(build_payload(alert))[1]
    body = quote.removeprefix("> “").removesuffix("”")
    assert body.endswith("…")
    assert len(body) <= 400
    assert body.removesuffix("…").endswith(("Troops", "&amp;", "tanks"))
    assert body.count("&") == body.count("&amp;")


def test_limits_hold_for_huge_fields() -> None:
    huge = "<" * 10_000
    alert = sample_alert(
        title=huge,
        url="https://example.com/" + "|" * 600,  # each '|' becomes %7C
        source=huge,
        categories=(huge,) * 20,
        evidence=(Evidence(field="text", sentence=huge, start=0),),
    )
    payload = build_payload(alert)
    assert all(len(text) <= SECTION_TEXT_MAX for text in _texts(payload))
    assert len(payload["text"]) <= 500
    context = next(b for b in payload["blocks"] if b["type"] == "context")
    assert len(context["elements"]) <= 10
    assert _texts(payload)[0].startswith("*<https://example.com/%7C")


def test_whitespace_only_title_still_has_a_label() -> None:
    headline = _texts(build_payload(sample_alert(title=" \n ")))[0]
    assert headline == (
        "*<https://news.example.com/world/2024/11/25/dprk-troops?ref=rss&amp;lang=en"
        "|https://news.example.com/world/2024/11/25/dprk-troops?ref=rss&amp;lang=en>*"
    )


def test_payload_is_deterministic_and_json_ready() -> None:
    first = payload_json(build_payload(sample_alert()))
    second = payload_json(build_payload(sample_alert()))
    assert first == second
    assert json.loads(first) == build_payload(sample_alert())
