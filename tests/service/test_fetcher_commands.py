"""`newsmon feeds check` and `newsmon fetch` against a real local HTTP server."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from newsmon.fetcher.commands import feeds_check, fetch_command
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss
from tests.support.http_stub import Reply, http_stub

SETTINGS = Settings(kafka_bootstrap="unused:9092", fetch_allow_hosts="127.0.0.1")
WHEN = datetime(2026, 3, 1, tzinfo=UTC)


def test_check_prints_timings_and_what_would_be_published() -> None:
    body = rss(
        [
            Item("https://news.example.org/a", "A", WHEN),
            Item("https://news.example.org/b", "B", WHEN),
        ]
    )
    with http_stub() as stub:
        url = stub.route("/rss", Reply(body=body))
        out, err = io.StringIO(), io.StringIO()
        assert feeds_check(url, out, err, SETTINGS) == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("# Test feed")
    for figure in ("status=200", "fetch_ms=", "parse_ms=", "items=2"):
        assert figure in lines[0]
    assert [json.loads(line)["title"] for line in lines[1:]] == ["A", "B"]


def test_fetch_url_errors_are_one_line_each() -> None:
    with http_stub() as stub:
        url = stub.route("/gone", Reply(410))
        out, err = io.StringIO(), io.StringIO()
        assert fetch_command([url], out, err, SETTINGS) == 1
    assert err.getvalue().splitlines() == [f"newsmon fetch: {url}: HTTP 410 from server (http_4xx)"]
