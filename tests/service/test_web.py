"""`newsmon web` on the real broker, over real HTTP: first render holds the data, live events,
feeds from the fetcher-state topic, access control."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from markupsafe import escape
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings
from pydantic import SecretStr

from tests.support.kafka_write import produce
from tests.support.web import HOSTILE_TITLE, make_alert, publish_alerts, running_web

pytestmark = pytest.mark.kafka


async def _get_until(client: httpx.AsyncClient, url: str, needle: str) -> httpx.Response:
    """GET `url` until its body holds `needle` (the readers catch up in the background)."""
    async with asyncio.timeout(30):
        while True:
            response = await client.get(url)
            if needle in response.text:
                return response
            await asyncio.sleep(0.2)


async def test_first_render_holds_alerts_newest_first_escaped(kafka_settings: Settings) -> None:
    first = make_alert(
        1, title="Older: Russia and DPRK sign treaty", categories=("treaty_diplomacy",)
    )
    hostile = make_alert(2, title=HOSTILE_TITLE, lang="ko")
    await publish_alerts(kafka_settings, [first, hostile])
    async with running_web(kafka_settings) as base, httpx.AsyncClient() as client:
        page = await _get_until(client, base + "/", "Older: Russia")
        assert page.status_code == 200
        body = page.text
        assert "<script>window.pwned" not in body
        assert "<img src=x" not in body
        assert str(escape(HOSTILE_TITLE)) in body
        assert body.index("alert-2") < body.index("alert-1"), "newest first"
        assert '<mark class="term" title="troops">troops</mark>' in body
        assert "script-src 'self'" in page.headers["content-security-policy"]

        filtered = await client.get(base + "/", params={"lang": "ko"})
        assert "alert-2" in filtered.text
        assert "alert-1" not in filtered.text
        searched = await client.get(base + "/", params={"q": "treaty"})
        assert "alert-1" in searched.text
        assert "alert-2" not in searched.text

        story = await client.get(base + "/story/alert-1")
        assert story.status_code == 200
        assert "Older: Russia" in story.text
        assert (await client.get(base + "/story/nope")).status_code == 404


async def test_live_events_carry_new_alerts(kafka_settings: Settings) -> None:
    await publish_alerts(kafka_settings, [make_alert(1)])
    async with running_web(kafka_settings) as base, httpx.AsyncClient(timeout=30) as client:
        await _get_until(client, base + "/", "alert-1")
        async with client.stream("GET", base + "/events", params={"since": "1"}) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            await publish_alerts(kafka_settings, [make_alert(2, title="Shells shipped to Russia")])
            seen = ""
            async with asyncio.timeout(30):
                async for line in events.aiter_lines():
                    seen += line + "\n"
                    if "Shells shipped" in line:
                        break
        assert "event: story" in seen
        assert 'id="alert-2"' in seen


async def test_feeds_page_reads_fetcher_state(kafka_settings: Settings) -> None:
    from newsmon.fetcher.state import FeedState, ensure_state_topic, state_topic

    await ensure_state_topic(kafka_settings)
    state = FeedState(url="https://feeds.example/rss", error_streak=3, interval_s=600.0)
    state.extra["last_error"] = "http_5xx: HTTP 503"
    await produce(
        kafka_settings.kafka_bootstrap or "",
        state_topic(kafka_settings),
        [(b"kcna", state.to_json())],
    )
    async with running_web(kafka_settings) as base, httpx.AsyncClient() as client:
        page = await _get_until(client, base + "/feeds", "kcna")
        assert "failing" in page.text
        assert "http_5xx: HTTP 503" in page.text


async def test_token_required_when_set(kafka_settings: Settings) -> None:
    settings = kafka_settings.with_overrides(web_token=SecretStr("s3cret"))
    metrics = Metrics()
    async with running_web(settings, metrics) as base, httpx.AsyncClient() as client:
        refused = await client.get(base + "/")
        assert refused.status_code == 401
        assert "Basic" in refused.headers["www-authenticate"]
        bearer = await client.get(base + "/", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        basic = base64.b64encode(b"analyst:s3cret").decode()
        assert (
            await client.get(base + "/", headers={"Authorization": f"Basic {basic}"})
        ).is_success
        wrong = await client.get(base + "/", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert metrics.web_requests.labels("alerts", "401")._value.get() == 2
