"""The ops endpoints: /readyz tells the truth (broker + partitions), lag follows assignment."""

from __future__ import annotations

import asyncio
import gzip
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import prometheus_client
import prometheus_client.openmetrics.exposition
import pytest
from newsmon.runner import serve
from newsmon.shared.metrics import Metrics, serve_ops
from newsmon.shared.services import consumer_group
from newsmon.shared.settings import Settings


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _get_async(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(_get, url)


async def _until(check: Callable[[], Awaitable[bool]], every_s: float = 0.2) -> None:
    """Poll `check` until it holds (the caller bounds the wait with asyncio.timeout)."""
    while True:
        if await check():
            return
        await asyncio.sleep(every_s)


def test_readyz_says_why_until_broker_and_partitions_are_there() -> None:
    metrics = Metrics()
    consumers = ["classifier"]
    ops = serve_ops(
        metrics,
        "127.0.0.1",
        0,
        is_ready=lambda: not metrics.health.problems(consumers),
        detail=lambda: "; ".join(metrics.health.problems(consumers)),
    )
    base = f"http://127.0.0.1:{ops.port}"
    try:
        assert _get(f"{base}/healthz") == (200, "ok\n")
        status, body = _get(f"{base}/readyz")
        assert status == 503
        assert "Kafka broker unreachable" in body
        assert "classifier: consumer not started" in body

        metrics.set_broker_reachable(True)
        metrics.observe_consumer("classifier", "g-classifier", {})
        status, body = _get(f"{base}/readyz")
        assert (status, body) == (503, "not ready: classifier: no partitions assigned\n")

        metrics.observe_consumer("classifier", "g-classifier", {("articles", 0): 5})
        assert _get(f"{base}/readyz") == (200, "ready\n")
        status, body = _get(f"{base}/metrics")
        assert status == 200
        assert (
            'newsmon_consumer_lag_messages{group="g-classifier",partition="0",topic="articles"} 5.0'
            in body
        )
        assert "newsmon_broker_reachable 1.0" in body
    finally:
        ops.close()


def test_lag_series_of_revoked_partitions_disappear() -> None:
    metrics = Metrics()
    metrics.observe_consumer("alerter", "g", {("t", 0): 3, ("t", 1): 7, ("t", 2): None})

    def lag(partition: int) -> float | None:
        return metrics.registry.get_sample_value(
            "newsmon_consumer_lag_messages",
            {"group": "g", "topic": "t", "partition": str(partition)},
        )

    assert (lag(0), lag(1), lag(2)) == (3, 7, None)  # None: not fetched yet, no series
    assert (
        metrics.registry.get_sample_value(
            "newsmon_consumer_assigned_partitions", {"service": "alerter"}
        )
        == 3
    )
    metrics.observe_consumer("alerter", "g", {("t", 1): 0})
    assert (lag(0), lag(1)) == (None, 0)
    metrics.consumer_stopped("alerter", "g")
    assert lag(1) is None
    assert metrics.health.problems(["alerter"])[-1] == "alerter: consumer not started"


@pytest.mark.kafka
async def test_pipeline_becomes_ready_and_reports_zero_lag(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """Fetcher and classifier on the real broker, no feeds: ready once the classifier's consumer
    holds partitions, and each partition of its group reports a lag (0: nothing to read)."""
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("", encoding="utf-8")
    settings = kafka_settings.with_overrides(feeds_file=feeds)
    metrics = Metrics()
    stop = asyncio.Event()
    ports: list[int] = []
    listening = asyncio.Event()

    def on_ops_started(port: int) -> None:
        ports.append(port)
        listening.set()

    pipeline = asyncio.create_task(
        serve(
            settings,
            ["fetcher", "classifier"],
            process_name="run",
            start_broker=False,
            stop=stop,
            metrics=metrics,
            on_ops_started=on_ops_started,
        )
    )
    try:
        async with asyncio.timeout(60):
            await listening.wait()
            base = f"http://127.0.0.1:{ports[0]}"

            async def ready() -> bool:
                return (await _get_async(f"{base}/readyz"))[0] == 200

            await _until(ready)
            group = consumer_group(settings.topic_prefix, "classifier")
            want = {(group, str(p)) for p in range(settings.topic_partitions)}

            async def every_partition_has_lag() -> bool:
                body = (await _get_async(f"{base}/metrics"))[1]
                return all(
                    f'newsmon_consumer_lag_messages{{group="{g}",partition="{p}"' in body
                    for g, p in want
                )

            await _until(every_partition_has_lag)
        for group, partition in want:
            labels = {"group": group, "topic": settings.topics.articles, "partition": partition}
            assert metrics.registry.get_sample_value("newsmon_consumer_lag_messages", labels) == 0
        assert metrics.registry.get_sample_value("newsmon_broker_reachable") == 1
    finally:
        stop.set()
        assert await asyncio.wait_for(pipeline, timeout=30) == 0
    # Stopped consumers take their lag series with them.
    assert (
        metrics.registry.get_sample_value(
            "newsmon_consumer_assigned_partitions", {"service": "classifier"}
        )
        == 0
    )


@pytest.mark.parametrize("gzip_ok", [False, True])
@pytest.mark.parametrize("openmetrics", [False, True])
def test_metrics_page_is_streamed_as_prometheus_client_renders_it(
    openmetrics: bool, gzip_ok: bool
) -> None:
    metrics = Metrics()
    for i in range(50):
        metrics.feed_fetches.labels(f"f{i}", "ok").inc(i)
        metrics.feed_last_fetch_seconds.labels(f"f{i}").set(i / 10)
    metrics.feed_fetch_seconds.labels("ok").observe(0.3)
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    encoder = (
        prometheus_client.openmetrics.exposition.generate_latest
        if openmetrics
        else prometheus_client.generate_latest
    )
    server = serve_ops(metrics, "127.0.0.1", 0)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/metrics",
            headers={"Accept": accept, "Accept-Encoding": "gzip" if gzip_ok else "identity"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
            encoding = response.headers.get("Content-Encoding")
    finally:
        server.close()
    assert encoding == ("gzip" if gzip_ok else None)
    text = gzip.decompress(body) if gzip_ok else body
    assert text == encoder(metrics.registry)
    assert text.count(b"# EOF") == (1 if openmetrics else 0)
    assert b"_created" not in text
