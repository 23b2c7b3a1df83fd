"""SlackSender against the stand-in Slack server, over real HTTP on 127.0.0.1.

Waits (backoff, Retry-After, rate-limit spacing) go through an injected fake clock, so the
tests assert on what the sender decided to wait, never on how long anything took.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from newsmon.notifier.slack import (
    Outcome,
    RetryPolicy,
    SlackPermanentError,
    SlackRetriableError,
    SlackSender,
    WebhookRateLimiter,
    WebhookUrl,
    build_payload,
)

from tests.support.slack_stub import SlackStub, StubReply, sample_alert

SECRET_PART = "secretsecretsecret"


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def _outcomes() -> list[Outcome]:
    return []


def _max_jitter(low: float, high: float) -> float:
    return high  # the top of the full-jitter range, so backoff values are predictable


@pytest.fixture
async def stub() -> AsyncIterator[SlackStub]:
    async with SlackStub() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def _sender(
    client: httpx.AsyncClient, clock: FakeClock, outcomes: list[Outcome], **policy: Any
) -> SlackSender:
    return SlackSender(
        client,
        policy=RetryPolicy(**{"backoff_base_s": 1.0, **policy}),
        clock=clock,
        sleep=clock.sleep,
        jitter=_max_jitter,
        on_attempt=outcomes.append,
    )


PAYLOAD = build_payload(sample_alert())


async def test_ok_posts_the_payload_once(stub: SlackStub, client: httpx.AsyncClient) -> None:
    clock, outcomes = FakeClock(), _outcomes()
    result = await _sender(client, clock, outcomes).send(WebhookUrl(stub.webhook_url()), PAYLOAD)

    assert (result.status, result.attempts, result.latency_s) == (200, 1, 0.0)
    assert outcomes == ["ok"]
    assert stub.bodies == [PAYLOAD]
    assert stub.requests[0].path == "/services/T000TEST/B000TEST/secretsecretsecret"
    assert stub.requests[0].headers["content-type"] == "application/json; charset=utf-8"


async def test_5xx_is_retried_with_backoff(stub: SlackStub, client: httpx.AsyncClient) -> None:
    stub.script(["500", StubReply.server_error(503, "service_unavailable"), "ok"])
    clock, outcomes = FakeClock(), _outcomes()

    result = await _sender(client, clock, outcomes).send(WebhookUrl(stub.webhook_url()), PAYLOAD)

    assert (result.status, result.attempts) == (200, 3)
    assert outcomes == ["retry_5xx", "retry_5xx", "ok"]
    assert clock.sleeps == [1.0, 2.0]  # base * 2**(n-1), at the top of the jitter range
    assert stub.bodies == [PAYLOAD] * 3
    assert result.latency_s == 3.0


async def test_429_honours_retry_after(stub: SlackStub, client: httpx.AsyncClient) -> None:
    stub.script([StubReply.rate_limited(retry_after=7), "ok"])
    clock, outcomes = FakeClock(), _outcomes()

    result = await _sender(client, clock, outcomes).send(WebhookUrl(stub.webhook_url()), PAYLOAD)

    assert (result.status, result.attempts) == (200, 2)
    assert outcomes == ["retry_429", "ok"]
    assert clock.sleeps == [7.0]  # Slack's number, not our backoff


async def test_429_without_retry_after_backs_off(
    stub: SlackStub, client: httpx.AsyncClient
) -> None:
    stub.script([StubReply(429, "rate_limited"), "ok"])
    clock, outcomes = FakeClock(), _outcomes()

    await _sender(client, clock, outcomes).send(WebhookUrl(stub.webhook_url()), PAYLOAD)

    assert clock.sleeps == [1.0]


async def test_retry_after_beyond_the_deadline_gives_up_at_once(
    stub: SlackStub, client: httpx.AsyncClient
) -> None:
    stub.script([StubReply.rate_limited(retry_after=3600)])
    clock, outcomes = FakeClock(), _outcomes()

    with pytest.raises(SlackRetriableError) as caught:
        await _sender(client, clock, outcomes, deadline_s=60).send(
            WebhookUrl(stub.webhook_url()), PAYLOAD
        )

    assert outcomes == ["retry_429", "gave_up"]
    assert caught.value.attempts == 1
    assert clock.sleeps == []


async def test_404_is_permanent(stub: SlackStub, client: httpx.AsyncClient) -> None:
    stub.script(["404", "ok"])
    clock, outcomes = FakeClock(), _outcomes()

    with pytest.raises(SlackPermanentError) as caught:
        await _sender(client, clock, outcomes).send(WebhookUrl(stub.webhook_url()), PAYLOAD)

    error = caught.value
    assert (error.status, error.reason, error.attempts, error.retriable) == (
        404,
        "no_service",
        1,
        False,
    )
    assert outcomes == ["permanent"]
    assert len(stub.requests) == 1
    assert SECRET_PART not in str(error)


async def test_400_invalid_payload_is_permanent(stub: SlackStub, client: httpx.AsyncClient) -> None:
    stub.script([StubReply.invalid_payload()])
    with pytest.raises(SlackPermanentError, match="HTTP 400 invalid_payload"):
        await _sender(client, FakeClock(), []).send(WebhookUrl(stub.webhook_url()), PAYLOAD)


async def test_hang_times_out_and_is_retriable(
    stub: SlackStub, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    stub.script(["hang", "hang"])
    clock, outcomes = FakeClock(), _outcomes()
    sender = _sender(client, clock, outcomes, max_attempts=2, request_timeout_s=0.2)

    with caplog.at_level(logging.DEBUG), pytest.raises(SlackRetriableError) as caught:
        await sender.send(WebhookUrl(stub.webhook_url()), PAYLOAD)

    error = caught.value
    assert (error.attempts, error.retriable) == (2, True)
    assert "ReadTimeout" in error.last
    assert outcomes == ["retry_network", "retry_network", "gave_up"]
    assert len(stub.requests) == 2
    assert SECRET_PART not in str(error)
    assert caplog.records
    for record in caplog.records:  # the message and every extra field
        assert SECRET_PART not in repr(vars(record))


async def test_connection_refused_is_retriable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhook = WebhookUrl(f"http://127.0.0.1:{port}/services/T0/B0/{SECRET_PART}")
    clock, outcomes = FakeClock(), _outcomes()

    with pytest.raises(SlackRetriableError) as caught:
        await _sender(client, clock, outcomes, max_attempts=3).send(webhook, PAYLOAD)

    assert outcomes == ["retry_network"] * 3 + ["gave_up"]
    assert clock.sleeps == [1.0, 2.0]
    assert SECRET_PART not in str(caught.value)


async def test_gives_up_when_the_deadline_is_spent(
    stub: SlackStub, client: httpx.AsyncClient
) -> None:
    stub.script(["500"] * 10)
    clock, outcomes = FakeClock(), _outcomes()
    sender = _sender(client, clock, outcomes, max_attempts=10, deadline_s=10)

    with pytest.raises(SlackRetriableError) as caught:
        await sender.send(WebhookUrl(stub.webhook_url()), PAYLOAD)

    # Waits 1, 2, 4 use 7 s; the next (8 s) would end past the 10 s budget.
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert caught.value.attempts == 4
    assert outcomes[-1] == "gave_up"
    assert "HTTP 500 rollup_error" in str(caught.value)


async def test_rate_limit_spaces_messages_per_webhook(
    stub: SlackStub, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    sent_at: list[tuple[str, float]] = []

    async def record(request: httpx.Request) -> None:
        sent_at.append((request.url.path, clock.now))

    sender = SlackSender(
        httpx.AsyncClient(event_hooks={"request": [record]}),
        limiter=WebhookRateLimiter(1.0, clock=clock, sleep=clock.sleep),
        clock=clock,
        sleep=clock.sleep,
    )
    first = WebhookUrl(stub.webhook_url("/services/T1/B1/one"))
    second = WebhookUrl(stub.webhook_url("/services/T1/B2/two"))
    try:
        await asyncio.gather(*(sender.send(first, PAYLOAD) for _ in range(3)))
        await sender.send(second, PAYLOAD)  # another webhook has its own budget
    finally:
        await sender._client.aclose()

    assert sent_at == [
        ("/services/T1/B1/one", 0.0),
        ("/services/T1/B1/one", 1.0),
        ("/services/T1/B1/one", 2.0),
        ("/services/T1/B2/two", 2.0),
    ]


async def test_429_holds_back_other_senders_to_the_same_webhook(
    stub: SlackStub, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    limiter = WebhookRateLimiter(1.0, clock=clock, sleep=clock.sleep)
    stub.script([StubReply.rate_limited(retry_after=5)])
    webhook = WebhookUrl(stub.webhook_url())
    sender = SlackSender(client, limiter=limiter, clock=clock, sleep=clock.sleep)

    await sender.send(webhook, PAYLOAD)  # 429 at t=0, retried at t=5
    await sender.send(webhook, PAYLOAD)  # waits its turn: t=6

    assert clock.sleeps == [5.0, 1.0]
    assert len(stub.requests) == 3


async def test_stub_control_api_over_http(stub: SlackStub, client: httpx.AsyncClient) -> None:
    # What a test in another process does with `python -m tests.support.slack_stub`.
    scripted = await client.post(f"{stub.url}/_stub/script", json=["500", {"status": 204}])
    assert scripted.json() == {"ok": True, "queued": 2}
    first = await client.post(stub.webhook_url(), json={"text": "a"})
    second = await client.post(stub.webhook_url(), json={"text": "b"})
    third = await client.post(stub.webhook_url(), content=b"not json")
    assert [first.status_code, second.status_code, third.status_code] == [500, 204, 200]
    assert third.text == "ok"

    recorded = (await client.get(f"{stub.url}/_stub/requests")).json()
    assert [r["json"] for r in recorded] == [{"text": "a"}, {"text": "b"}, None]
    assert recorded[2]["body"] == "not json"

    await client.post(f"{stub.url}/_stub/reset")
    assert stub.requests == []
    bad = await client.post(f"{stub.url}/_stub/script", json=["teapot"])
    assert bad.status_code == 400


async def test_stub_wait_for_requests(stub: SlackStub, client: httpx.AsyncClient) -> None:
    waiter = asyncio.create_task(stub.wait_for_requests(2))
    for text in ("a", "b"):
        await client.post(stub.webhook_url(), json={"text": text})
    async with asyncio.timeout(5):
        requests = await waiter
    assert [r.json for r in requests] == [{"text": "a"}, {"text": "b"}]


async def test_a_probe_refused_with_retry_after_holds_the_next_send(
    stub: SlackStub, client: httpx.AsyncClient
) -> None:
    # The notifier probes a failing Slack with one attempt; a 429 on it still holds the
    # webhook for Retry-After, so the next send waits for it.
    stub.script([StubReply.rate_limited(retry_after=3), "ok"])
    clock, outcomes = FakeClock(), _outcomes()
    sender = _sender(client, clock, outcomes)
    webhook = WebhookUrl(stub.webhook_url())

    with pytest.raises(SlackRetriableError):
        await sender.send(webhook, PAYLOAD, max_attempts=1)
    await sender.send(webhook, PAYLOAD)

    assert outcomes == ["retry_429", "gave_up", "ok"]
    assert clock.sleeps == [3.0]
