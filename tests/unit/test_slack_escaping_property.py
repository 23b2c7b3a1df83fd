"""Property: no article text can make Slack parse anything but newsmon's own headline link.

Slack parses only `<...>` sequences (mentions `<!..>`, `<@..>`, `<#..>` and links `<url|text>`)
and decodes only &amp; &lt; &gt;. So it is enough to prove, over every string in the payload:
the one `<` is the headline link newsmon builds, its URL is plain http(s) with nothing that can
end it early, and every `&` starts one of the three entities.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from newsmon.notifier.slack import build_payload, payload_json
from newsmon.shared.messages import Alert, AlertSource, Evidence

from tests.support.slack_stub import sample_alert

# Pieces an attacker (or an unlucky headline) would use, mixed with arbitrary text.
_NASTY = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C1>",
    "<!subteam^S1>",
    "<!date^1392734382^{date}|x>",
    "<http://evil|click>",
    "<mailto:x@y|x>",
    "<",
    ">",
    "&",
    "|",
    "&lt;",
    "&gt;!channel",
    "&amp;",
    "\n>",
    "\u202e",
    "\x00",
    "*",
    "`",
    "%3C",
    "javascript:",
    "http://",
    " ",
]
texts = st.lists(st.sampled_from(_NASTY) | st.text(max_size=20), max_size=12).map("".join)
urls = st.one_of(
    texts,
    st.builds(lambda scheme, rest: scheme + rest, st.sampled_from(["http://", "https://"]), texts),
    st.builds(lambda rest: "https://h.example/" + rest, texts),
)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


_HEADLINE_LINK = re.compile(r"\*<(https?://[^|<>\s]+)\|([^<>]*)>\*", re.IGNORECASE)
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def _assert_only_our_link(alert: Alert) -> None:
    payload = build_payload(alert)
    strings = list(_strings(payload))
    assert "<" not in payload["text"]
    assert sum(s.count("<") for s in strings) <= 1
    headline = payload["blocks"][0]["text"]["text"]
    for s in strings:
        if "<" in s:
            assert s is headline
            match = _HEADLINE_LINK.fullmatch(s)
            assert match, s
            # The whole article URL is inside the link target: nothing ended it early.
            # (The URL as a browser reads it: tab/CR/LF dropped, C0 controls and space stripped
            # at both ends, per the WHATWG URL standard.)
            original = alert.url.translate({9: None, 10: None, 13: None}).strip(_C0_OR_SPACE)
            assert unquote(match.group(1).replace("&amp;", "&")) == unquote(original)
        for mention in ("<!", "<@", "<#"):
            assert mention not in s
        assert not _ENTITY.search(s), s
    # The serialized body says the same (JSON escapes none of < > & | by default).
    body = payload_json(payload).decode("utf-8")
    assert body.count("<") == sum(s.count("<") for s in strings)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=texts,
    summary=texts,
    url=urls,
    source=texts,
    sentence=texts,
    other_source=texts,
    categories=st.lists(texts, max_size=3),
    lang=st.none() | texts,
)
def test_article_text_cannot_mention_or_link(
    title: str,
    summary: str,
    url: str,
    source: str,
    sentence: str,
    other_source: str,
    categories: list[str],
    lang: str | None,
) -> None:
    alert = sample_alert(
        title=title,
        summary=summary,
        url=url,
        source=source,
        lang=lang,
        categories=tuple(categories),
        evidence=(Evidence(field="text", sentence=sentence, start=0),),
        sources=(AlertSource(article_id="x", source=other_source, url=url, feed="f"),),
    )
    _assert_only_our_link(alert)


def test_known_attack_strings() -> None:
    for nasty in _NASTY:
        _assert_only_our_link(sample_alert(title=nasty, source=nasty, url=f"https://x/{nasty}"))
