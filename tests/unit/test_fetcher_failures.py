"""Fetch failure kinds: one declared set, one function sorting exceptions into it, `retriable`
deciding the back-off, every kind documented in the README."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from newsmon.fetcher.failures import (
    POLL_OUTCOMES,
    SUCCESS_OUTCOMES,
    FailureKind,
    FetchError,
    failure_of,
    status_error,
)
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.http import FeedClient
from newsmon.fetcher.parse import FeedParseError
from newsmon.fetcher.schedule import Bounds, next_delay
from newsmon.fetcher.state import FeedState, SeenIds
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.fetcher import fetcher_for

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("exc", "kind", "retriable"),
    [
        (FetchError(FailureKind.TOO_LARGE, "big", retriable=False), "too_large", False),
        (FeedParseError("not a feed"), "parse", False),
        (FeedParseError("the parser process died", retriable=True), "parse", True),
        (KafkaConnectionError("down"), "kafka", True),
        (httpx.ConnectTimeout("slow"), "timeout", True),
        (httpx.ReadTimeout("slow"), "timeout", True),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "dns", True),
        (httpx.ConnectError("[Errno 111] Connection refused"), "connect", True),
        (httpx.ConnectError("refused to connect to 10.0.0.1"), "blocked", False),
        (httpx.UnsupportedProtocol("ftp://x"), "bad_url", False),
        (httpx.InvalidURL("bad"), "bad_url", False),
        (httpx.RemoteProtocolError("peer closed"), "network", True),
        (ValueError("a bug"), "internal", True),
    ],
)
def test_failure_of_sorts_every_exception_into_one_kind(
    exc: BaseException, kind: str, retriable: bool
) -> None:
    failure = failure_of(exc)
    assert (failure.kind, failure.retriable) == (kind, retriable)
    assert isinstance(failure.kind, FailureKind)


@pytest.mark.parametrize(
    ("status", "kind", "retriable"),
    [
        (404, "http_4xx", False),
        (410, "http_4xx", False),
        (408, "http_4xx", True),
        (429, "http_429", True),
        (503, "http_503", True),
        (500, "http_5xx", True),
    ],
)
def test_status_errors(status: int, kind: str, retriable: bool) -> None:
    error = status_error(status, 30.0)
    assert (error.kind, error.retriable, error.status) == (kind, retriable, status)


def test_every_outcome_is_listed_in_the_readme() -> None:
    metrics_docs = README.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    for value in (*POLL_OUTCOMES, *FailureKind):
        assert f"`{value}`" in metrics_docs, f"{value} is not in the README metrics docs"


def test_the_readme_kinds_table_lists_exactly_the_declared_kinds() -> None:
    # Both ways: a kind the docs name that failures.py does not declare (a "404" label, a
    # renamed kind) is as wrong as a declared kind the docs leave out.
    metrics_docs = README.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    table = metrics_docs.split("| kind | meaning | retried |", 1)[1].split("\n\n", 1)[0]
    documented = set(
        re.findall(
            r"`([a-z0-9_]+)`",
            "\n".join(row.split("|")[1] for row in table.strip().splitlines()[1:]),
        )
    )
    assert documented == {k.value for k in FailureKind} - {"not_html"}
    assert re.findall(r"^`(\w+)` \(an article page", metrics_docs, re.M) == ["not_html"]


def test_the_feed_error_ratio_rule_counts_every_outcome_but_the_successes() -> None:
    rules = (REPO / "deploy/prometheus/rules/recording.yml").read_text(encoding="utf-8")
    assert f'outcome!~"{"|".join(SUCCESS_OUTCOMES)}"' in rules


def test_a_permanent_failure_waits_the_back_off_cap_at_once() -> None:
    bounds = Bounds(300, 3600, 7200)
    first = next_delay(interval_s=300, error_streak=1, bounds=bounds, rng=random.Random(0))
    permanent = next_delay(
        interval_s=300, error_streak=1, bounds=bounds, rng=random.Random(0), permanent=True
    )
    assert first == pytest.approx(300, rel=0.1)
    assert permanent == pytest.approx(7200, rel=0.1)


class _NullSink:
    async def publish(self, articles: list[Article]) -> None:
        raise AssertionError("nothing to publish")

    async def save_state(self, feed: str, state: FeedState) -> None:
        pass


@pytest.mark.parametrize(("status", "backoff_cap"), [(404, True), (500, False)])
async def test_a_gone_feed_backs_off_to_the_cap_a_failing_one_doubles(
    status: int, backoff_cap: bool
) -> None:
    client = FeedClient(transport=httpx.MockTransport(lambda _: httpx.Response(status)))
    settings = Settings(
        kafka_bootstrap="unused:9092", poll_interval_s=300, fetch_backoff_max_s=7200
    )
    metrics = Metrics()
    sink = _NullSink()
    fetcher = fetcher_for(settings, metrics, sink, client, seen=SeenIds(10))
    feed, state = FeedConfig(name="f1", url="https://feeds.example.org/rss"), FeedState()
    async with client:
        delay = await fetcher.poll_once(feed, state)
    assert delay == pytest.approx(7200 if backoff_cap else 300, rel=0.1)
    assert state.error_streak == 1
    assert state.extra["last_error"].startswith("http_")
    responses = {"code": f"{status // 100}xx"}
    assert metrics.registry.get_sample_value("newsmon_feed_http_responses_total", responses) == 1
