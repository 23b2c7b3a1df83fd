"""WebSub subscriber, pure parts: renewal planning with an injected clock, HMAC signatures,
intent verification and push answers of the callback (WSGI, no socket), the settings, and the
poll interval falling back to the max while a subscription is active."""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.http import FeedClient
from newsmon.fetcher.state import FeedState, SeenIds
from newsmon.fetcher.websub import (
    ACTIVE,
    DENIED,
    EXPIRED,
    PENDING,
    RENEW_AT,
    VERIFY_TIMEOUT_S,
    Subscriptions,
    WebSub,
    WebSubConfig,
    renewal_at,
    retry_delay,
    signature_ok,
)
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings
from pydantic import ValidationError

from tests.support.feed_builder import Item, rss
from tests.support.fetcher import ListSink, fetcher_for, publisher_for

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
HUB = "https://hub.example.net/"
TOPIC = "https://news.example.org/feed.xml"


class FakeClock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


# --- renewal planning, with an injected clock ---------------------------------------------


def test_renewal_is_planned_at_80_percent_of_the_granted_lease() -> None:
    assert RENEW_AT == 0.8
    assert renewal_at(1000.0, 86_400) == 1000.0 + 0.8 * 86_400
    assert renewal_at(0.0, 1) == 0.8 * 60, "a silly lease is treated as 60 s: no hot loop"


def test_subscription_lifecycle_with_a_fake_clock() -> None:
    clock = FakeClock()
    subs = Subscriptions(lease_s=864_000, token=iter(["tok1", "tok2"]).__next__)
    created = subs.want("f1", HUB, TOPIC, clock())
    assert created is not None
    assert (created.token, created.state) == ("tok1", PENDING)
    assert len(created.secret) == 64, "a random 256-bit secret, under the 200-byte limit"
    assert subs.want("f1", HUB, TOPIC, clock()) is None, "same hub and topic: nothing new"
    assert [s.token for s in subs.due(clock())] == ["tok1"], "a new subscription is due at once"

    subs.requested("tok1", clock())
    assert subs.due(clock()) == []
    assert subs.due(clock() + VERIFY_TIMEOUT_S) != [], "no verification came: ask again"
    assert not subs.is_active("f1", clock())

    # The hub verifies a minute later and grants 1 hour (not the 10 days we asked for).
    clock.now += 60
    assert subs.verify("tok1", "subscribe", "https://other.example/", 3600, clock()) is None
    assert subs.verify("tok1", "unsubscribe", TOPIC, 3600, clock()) is None
    assert subs.verify("nope", "subscribe", TOPIC, 3600, clock()) is None
    verified = subs.verify("tok1", "subscribe", TOPIC, 3600, clock())
    assert verified is not None
    assert verified.state == ACTIVE
    assert verified.expires_at == clock() + 3600
    assert verified.next_request_at == clock() + 0.8 * 3600
    assert subs.is_active("f1", clock())
    assert subs.counts(clock()) == {PENDING: 0, ACTIVE: 1, EXPIRED: 0, DENIED: 0}

    # Nothing to do until 80% of the lease has passed, then the renewal is due.
    renew = clock() + 0.8 * 3600
    assert subs.due(renew - 1) == []
    assert subs.next_due_at() == renew
    assert [s.token for s in subs.due(renew)] == ["tok1"]

    # The renewal fails twice: back-off, still active until the lease ends, then expired.
    clock.now = renew
    subs.requested("tok1", clock())
    subs.request_failed("tok1", clock())
    first_retry = subs.next_due_at()
    subs.requested("tok1", clock())
    subs.request_failed("tok1", clock())
    second_retry = subs.next_due_at()
    assert first_retry is not None
    assert second_retry is not None
    assert second_retry - clock() > first_retry - clock(), "back-off grows"
    assert subs.is_active("f1", clock())
    clock.now = T0 + 60 + 3600
    assert not subs.is_active("f1", clock()), "the lease ran out: polling takes over"
    assert subs.counts(clock())[EXPIRED] == 1

    # A late verification of the renewal revives it, with a fresh plan.
    again = subs.verify("tok1", "subscribe", TOPIC, 7200, clock())
    assert again is not None
    assert again.attempts == 0
    assert again.next_request_at == clock() + 0.8 * 7200

    # The feed moves to another hub: new token and secret; the old token is unknown.
    moved = subs.want("f1", "https://hub2.example.net/", TOPIC, clock())
    assert moved is not None
    assert moved.token == "tok2"
    assert moved.secret != verified.secret
    assert subs.by_token("tok1") is None


def test_a_denied_subscription_is_not_asked_again() -> None:
    subs = Subscriptions(lease_s=3600, token=lambda: "t")
    subs.want("f1", HUB, TOPIC, T0)
    assert subs.deny("t", "https://other.example/") is None
    assert subs.deny("t", TOPIC) is not None
    assert subs.due(T0 + 10**7) == []
    assert subs.verify("t", "subscribe", TOPIC, 3600, T0) is None
    assert subs.counts(T0)[DENIED] == 1


def test_retry_delay_doubles_up_to_a_cap() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[0] == 60
    assert delays[1] == 120
    assert delays[-1] == 6 * 3600
    assert delays == sorted(delays)


# --- signatures (§8) ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_every_recognised_algorithm_is_checked(method: str) -> None:
    body, secret = b"<rss>...</rss>", "s3cret"
    digest = hmac.new(secret.encode(), body, getattr(hashlib, method)).hexdigest()
    assert signature_ok(f"{method}={digest}", body, secret)
    assert signature_ok(f"{method.upper()}={digest.upper()}", body, secret)
    assert not signature_ok(f"{method}={digest}", body + b" ", secret)
    assert not signature_ok(f"{method}={digest}", body, "other")
    assert not signature_ok(f"{method}={digest[:-1]}", body, secret)


@pytest.mark.parametrize("header", [None, "", "sha256", "md5=abc", "=abc", "sha256=zz\u00e9"])
def test_missing_or_malformed_signatures_are_refused(header: str | None) -> None:
    assert not signature_ok(header, b"body", "secret")


# --- the callback (WSGI, called directly) ---------------------------------------------------


def _websub(metrics: Metrics, clock: FakeClock, **overrides: Any) -> WebSub:
    settings = Settings(
        kafka_bootstrap="unused:9092",
        websub=True,
        websub_callback_url="https://newsmon.example.org/websub/",
        **overrides,
    )
    client = FeedClient(transport=httpx.MockTransport(lambda r: httpx.Response(202)))

    class NoPublisher:
        async def publish_parsed(self, feed: FeedConfig, state: FeedState, parsed: Any) -> None:
            raise AssertionError("nothing is published in these tests")

    feed = FeedConfig(name="f1", url=TOPIC)
    return WebSub(
        WebSubConfig.from_settings(settings),
        metrics,
        client,
        {"f1": feed},
        {"f1": FeedState(url=TOPIC)},
        NoPublisher(),
        clock=clock,
    )


def _call(
    app: Callable[..., Any],
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": urlencode(query or {}),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen: list[str] = []
    out = b"".join(app(environ, lambda status, _headers: seen.append(status)))
    return seen[0], out


def test_intent_verification_echoes_the_challenge_only_for_our_subscriptions() -> None:
    metrics, clock = Metrics(), FakeClock()
    websub = _websub(metrics, clock)
    sub = websub.subscriptions.want("f1", HUB, TOPIC, clock())
    assert sub is not None
    assert websub.callback_url(sub) == f"https://newsmon.example.org/websub/{sub.token}"
    app = websub.wsgi_app()
    path = f"/websub/{sub.token}"
    ask = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.challenge": "c-123"}

    assert _call(app, "GET", "/websub/unknown", ask) == ("404 Not Found", b"")
    assert _call(app, "GET", path, {**ask, "hub.topic": "https://evil.example/"})[0] == (
        "404 Not Found"
    )
    assert _call(app, "GET", path, {**ask, "hub.mode": "unsubscribe"})[0] == "404 Not Found"
    assert not websub.is_active("f1")
    assert _call(app, "GET", path, {**ask, "hub.lease_seconds": "7200"}) == ("200 OK", b"c-123")
    assert websub.is_active("f1")
    assert sub.expires_at == clock() + 7200


def test_pushes_with_a_bad_signature_or_an_unknown_callback_are_counted_not_taken() -> None:
    metrics, clock = Metrics(), FakeClock()
    websub = _websub(metrics, clock)
    sub = websub.subscriptions.want("f1", HUB, TOPIC, clock())
    assert sub is not None
    app = websub.wsgi_app()
    body = rss([Item("https://news.example.org/x", "X")])
    wrong = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()

    # §8.2: a 2xx all the same, but ignored (nothing reaches publish, which would raise).
    status, _ = _call(
        app,
        "POST",
        f"/websub/{sub.token}",
        body=body,
        headers={"X-Hub-Signature": f"sha256={wrong}"},
    )
    assert status == "202 Accepted"
    assert _call(app, "POST", f"/websub/{sub.token}", body=body)[0] == "202 Accepted"
    assert _call(app, "POST", "/websub/unknown", body=body)[0] == "410 Gone"

    def pushes(outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "newsmon_websub_pushes_total", {"outcome": outcome}
        )

    assert pushes("bad_signature") == 2
    assert pushes("unknown_topic") == 1
    assert pushes("published") == 0


def test_websub_needs_a_callback_url() -> None:
    with pytest.raises(ValidationError, match="NEWSMON_WEBSUB_CALLBACK_URL"):
        Settings(kafka_bootstrap="unused:9092", websub=True)
    with pytest.raises(ValidationError, match="http"):
        Settings(kafka_bootstrap="unused:9092", websub_callback_url="ftp://x/")
    assert Settings(kafka_bootstrap="unused:9092").websub is False


# --- the fetcher: subscribe on discovery, poll at the max interval while pushed --------------


async def test_polling_falls_back_to_the_max_interval_while_a_subscription_is_active() -> None:
    clock, metrics, sink = FakeClock(), Metrics(), ListSink()
    feed = FeedConfig(name="f1", url=TOPIC)
    self_link = f'<description>d</description><atom:link rel="self" href="{TOPIC}"/>'

    def handler(request: httpx.Request) -> httpx.Response:
        when = datetime.fromtimestamp(clock(), UTC)  # items minutes apart, as of now
        items = [
            Item(f"https://news.example.org/{clock()}/{i}", f"S{i}", when - timedelta(minutes=i))
            for i in range(5)
        ]
        body = rss(items, hub=HUB).replace(b"<description>d</description>", self_link.encode(), 1)
        return httpx.Response(200, content=body)

    settings = Settings(
        kafka_bootstrap="unused:9092",
        poll_interval_s=300,
        poll_interval_max_s=3600,
        websub=True,
        websub_callback_url="https://newsmon.example.org/websub",
    )
    client = FeedClient(transport=httpx.MockTransport(handler))
    publisher = publisher_for(settings, metrics, sink, seen=SeenIds(100), clock=clock)
    state = FeedState(url=feed.url)
    websub = WebSub(
        WebSubConfig.from_settings(settings),
        metrics,
        client,
        {"f1": feed},
        {"f1": state},
        publisher,
        clock=clock,
    )
    fetcher = fetcher_for(
        settings, metrics, sink, client, publisher=publisher, websub=websub, clock=clock
    )

    before = await fetcher.poll_once(feed, state)
    assert before <= 1.1 * 300, "items minutes apart: the min interval"
    sub = websub.subscriptions.get("f1")
    assert sub is not None
    assert (sub.hub, sub.topic) == (HUB, TOPIC), "discovered from the feed"
    assert state.extra["websub"] == {"hub": HUB, "topic": TOPIC}, "kept for the next start"

    assert websub.subscriptions.verify(sub.token, "subscribe", TOPIC, 86_400, clock())
    during = await fetcher.poll_once(feed, state)
    assert 0.9 * 3600 <= during <= 1.1 * 3600, "pushed: polling is only a fallback"

    clock.now += 86_400  # the lease ran out without a renewal: back to the adaptive interval
    after = await fetcher.poll_once(feed, state)
    assert after <= 1.1 * 300
    await client.aclose()


async def test_a_malformed_hub_url_is_a_counted_failure_not_a_dead_task() -> None:
    metrics, clock = Metrics(), FakeClock()
    websub = _websub(metrics, clock)
    sub = websub.subscriptions.want("f1", "hub-without-scheme", TOPIC, clock())
    assert sub is not None
    await websub._subscribe(sub)
    assert (
        metrics.registry.get_sample_value(
            "newsmon_websub_subscribe_requests_total", {"outcome": "failed"}
        )
        == 1
    )
