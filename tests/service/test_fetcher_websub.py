"""WebSub end to end on the real broker: a feed advertising a local hub → the fetcher subscribes
and answers the hub's intent verification on its ops port → the hub pushes a new item → it is
on the articles topic (the feed's next poll is an hour away, so only the push can bring it). A
push signed with the wrong secret is acknowledged but not published, and counted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from newsmon.runner import serve
from newsmon.shared.broker import free_port
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss
from tests.support.feed_server import serve_directory
from tests.support.kafka_read import Record, read_topic
from tests.support.websub_hub import serve_hub

pytestmark = pytest.mark.kafka


def _feed(items: list[Item], hub: str, topic: str) -> bytes:
    self_link = f'<description>d</description><atom:link rel="self" href="{topic}"/>'
    return rss(items, hub=hub).replace(b"<description>d</description>", self_link.encode(), 1)


def _urls(records: list[Record]) -> list[str]:
    return [json.loads(r.value)["url"] for r in records]


async def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll `check` until it holds (no timed assertion: the timeout only bounds a failure)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not after {timeout_s}s: {what}")


async def test_pushed_items_are_published_and_forged_pushes_are_not(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    first = [
        Item(f"https://news.example.org/old-{i}", f"Old {i}", now - timedelta(hours=i))
        for i in range(2)
    ]
    pushed = Item("https://news.example.org/pushed", "Pushed story", now)
    forged = Item("https://news.example.org/forged", "Forged story", now)
    metrics = Metrics()
    port = free_port()
    stop = asyncio.Event()

    with serve_hub(lease_s=3600) as hub, serve_directory(tmp_path) as base:
        topic = f"{base}/feed.xml"
        (tmp_path / "feed.xml").write_bytes(_feed(first, hub.url, topic))
        feeds = tmp_path / "feeds.toml"
        feeds.write_text(f'[[feed]]\nname = "pushy"\nurl = "{topic}"\n', encoding="utf-8")
        settings = kafka_settings.with_overrides(
            feeds_file=feeds,
            metrics_port=port,
            websub=True,
            websub_callback_url=f"http://127.0.0.1:{port}/websub",
        )
        service = asyncio.create_task(
            serve(
                settings,
                ["fetcher"],
                process_name="fetcher",
                start_broker=False,
                stop=stop,
                metrics=metrics,
            )
        )
        bootstrap = settings.kafka_bootstrap or ""
        try:
            polled = await read_topic(
                bootstrap, settings.topics.articles, until=lambda rs: len(rs) >= 2, timeout_s=60
            )
            sub = await asyncio.to_thread(hub.wait_verified, topic, 30.0)
            [request] = hub.requests
            assert request["hub.mode"] == "subscribe"
            assert request["hub.topic"] == topic
            assert request["hub.lease_seconds"] == str(settings.websub_lease_s)
            assert request["hub.callback"].startswith(f"http://127.0.0.1:{port}/websub/")
            assert sub.secret, "a hub.secret was given"
            assert sub.lease_s == 3600, "the hub's lease, not ours"

            def gauge(state: str) -> float | None:
                return metrics.registry.get_sample_value(
                    "newsmon_websub_subscriptions", {"state": state}
                )

            await _eventually(lambda: gauge("active") == 1, "one active subscription")

            # Intent verification of something we did not ask for: 404 (§5.3.1).
            other = await asyncio.to_thread(hub.verify, sub.callback, f"{base}/other.xml")
            assert (other.status, other.echoed) == (404, False)
            unknown = await asyncio.to_thread(
                hub.verify, f"http://127.0.0.1:{port}/websub/not-a-token", topic
            )
            assert unknown.status == 404

            # A forged push: acknowledged (§8.2), never published, counted.
            body = _feed([forged, *first], hub.url, topic)
            assert await asyncio.to_thread(hub.push, topic, body, signature="wrong") == [202]
            assert await asyncio.to_thread(hub.push, topic, body, signature="none") == [202]
            stray = await asyncio.to_thread(
                hub.push, topic, body, callback=f"http://127.0.0.1:{port}/websub/gone"
            )
            assert stray == [410]

            # The genuine push: on the topic shortly (the next poll is ~an hour away).
            body = _feed([pushed, *first], hub.url, topic)
            assert await asyncio.to_thread(hub.push, topic, body, algorithm="sha512") == [202]
            records = await read_topic(
                bootstrap,
                settings.topics.articles,
                until=lambda rs: pushed.url in _urls(rs),
                timeout_s=30,
                settle_s=1.0,
            )
        finally:
            stop.set()
            exit_code = await asyncio.wait_for(service, timeout=30)

    assert exit_code == 0
    assert len(polled) == 2
    urls = _urls(records)
    assert urls.count(pushed.url) == 1
    assert forged.url not in urls
    assert len(urls) == 3, "the old items were not published again"

    def pushes(outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "newsmon_websub_pushes_total", {"outcome": outcome}
        )

    assert pushes("published") == 1
    assert pushes("bad_signature") == 2
    assert pushes("unknown_topic") == 1
    assert (
        metrics.registry.get_sample_value(
            "newsmon_websub_subscribe_requests_total", {"outcome": "accepted"}
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "newsmon_feed_items_total", {"feed": "pushy", "status": "new"}
        )
        == 3
    ), "pushed items are counted like polled ones"
