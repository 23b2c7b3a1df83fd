"""A real Prometheus scrapes a real pipeline: every dashboard query parses, the core ones have
data, and every recording and alert rule evaluates without error.

Prometheus (Debian package) is started on a free port with a temp config (1 s scrapes) and temp
storage, loads deploy/prometheus/rules, scrapes `serve(...)` running all services on the test
broker with a local feed and a stand-in Slack, and is stopped with SIGTERM at the end.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from newsmon.runner import serve
from newsmon.shared.broker import free_port
from newsmon.shared.dashboard import expressions
from newsmon.shared.metrics import Metrics
from newsmon.shared.services import SERVICE_NAMES
from newsmon.shared.settings import Settings
from pydantic import SecretStr

from tests.support.feed_server import serve_directory
from tests.support.slack_stub import SlackStub

PROMETHEUS = shutil.which("prometheus")
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.prometheus,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus not found: install it with `make system-deps` (Debian package)",
    ),
]

# Grafana replaces $__rate_interval (at least 4 scrape intervals); 1 s scrapes here.
RATE_INTERVAL = "15s"

# Panels that must show data once one feed went through to Slack. The others (failures,
# retries, dead letters, errors) rightly have nothing to show on a healthy run.
CORE_PANELS = {
    "Items in per second, by stage",
    "Items out per second, by stage",
    "Alerts per hour",
    "Kafka reachable",
    "End-to-end latency (p50, p95)",
    "Feeds",
    "Fetches per second, by outcome",
    "Fetch duration p95, by outcome",
    "Slowest feeds, last fetch duration",
    "New items per hour, by feed",
    "Match rate",
    "Matches per hour, by category",
    "Batch duration p95, by stage",
    "Slack attempts per second, by outcome",
    "Slack delivery latency p95",
    "Consumer lag, by group",
    "Consumer lag, by partition",
    "Assigned partitions, by service",
}


def _http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


class PromAPI:
    def __init__(self, base: str) -> None:
        self.base = base

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = await asyncio.to_thread(_http_get, f"{self.base}{path}{query}")
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body.decode(errors="replace")

    async def query(self, expr: str) -> dict[str, Any]:
        """The API's whole answer: {"status": "success", "data": {"result": [...]}} or an
        error with errorType/error."""
        _, answer = await self.get("/api/v1/query", query=expr)
        assert isinstance(answer, dict), answer
        return answer

    async def result(self, expr: str) -> list[dict[str, Any]]:
        answer = await self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        return list(answer["data"]["result"])


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}") from None


@contextmanager
def _prometheus(tmp_path: Path, metrics_port: int) -> Iterator[tuple[PromAPI, Path]]:
    assert PROMETHEUS is not None
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML: no YAML library needed to write the config
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES / "recording.yml"), str(RULES / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "newsmon",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    log = tmp_path / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            yield PromAPI(f"http://127.0.0.1:{port}"), log
        finally:
            process.terminate()  # SIGTERM: Prometheus shuts down cleanly
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError("Prometheus did not stop within 30s of SIGTERM") from None
    assert code == 0, f"Prometheus exited with {code}:\n{log.read_text()[-3000:]}"


@asynccontextmanager
async def _pipeline(settings: Settings, metrics: Metrics) -> AsyncIterator[tuple[int, SlackStub]]:
    stop = asyncio.Event()
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    async with SlackStub() as slack:
        with serve_directory(FEEDS) as base_url:
            feeds = settings.feeds_file.parent / "feeds.toml"
            feeds.write_text(
                f'[[feed]]\nname = "e2e"\nurl = "{base_url}/nk-russia-e2e.xml"\n', encoding="utf-8"
            )
            task = asyncio.create_task(
                serve(
                    settings.with_overrides(
                        feeds_file=feeds, slack_webhook_url=SecretStr(slack.webhook_url())
                    ),
                    SERVICE_NAMES,
                    process_name="run",
                    start_broker=False,
                    stop=stop,
                    metrics=metrics,
                    on_ops_started=listening.set_result,
                )
            )
            try:
                async with asyncio.timeout(60):
                    port = await asyncio.shield(listening)
                yield port, slack
            finally:
                stop.set()
                exit_code = await asyncio.wait_for(task, timeout=30)
    assert exit_code == 0


async def test_prometheus_scrapes_pipeline_and_runs_every_dashboard_query(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.with_overrides(feeds_file=tmp_path / "unused.toml")
    metrics = Metrics()
    async with _pipeline(settings, metrics) as (metrics_port, slack):
        with _prometheus(tmp_path, metrics_port) as (prom, log):

            async def prometheus_ready() -> bool:
                return (await prom.get("/-/ready"))[0] == 200

            await _until(prometheus_ready, "Prometheus to be ready", 60)
            # The story goes all the way through: fetched, classified, alerted, posted.
            async with asyncio.timeout(120):
                await slack.wait_for_requests(1)

            async def scraped_a_few_times() -> bool:
                up = await prom.result('count_over_time(up{job="newsmon"}[1m])')
                return bool(up) and float(up[0]["value"][1]) >= 5

            await _until(scraped_a_few_times, "5 scrapes of newsmon", 60)
            up = await prom.result('up{job="newsmon"}')
            assert [s["value"][1] for s in up] == ["1"], log.read_text()[-2000:]

            # Every dashboard query parses and runs (status success).
            queries = [(t, e.replace("$__rate_interval", RATE_INTERVAL)) for t, e in expressions()]
            for title, expr in queries:
                answer = await prom.query(expr)
                assert answer["status"] == "success", f"{title}: {expr}\n{answer}"

            # The core panels show data.
            core = [(t, e) for t, e in queries if t in CORE_PANELS]
            assert {t for t, _ in core} == CORE_PANELS, "a core panel was renamed or removed"
            for title, expr in core:

                async def has_data(expr: str = expr) -> bool:
                    return bool(await prom.result(expr))

                await _until(has_data, f"data for {title!r}: {expr}", 30)

            # The pipeline drained: every consumer group is caught up.
            async def caught_up() -> bool:
                lag = await prom.result("sum(newsmon_consumer_lag_messages)")
                return bool(lag) and float(lag[0]["value"][1]) == 0

            await _until(caught_up, "consumer lag 0", 30)

            # Recording rules produce series; every rule evaluates without error.
            for record in (
                "service:newsmon_items_in:rate5m",
                "group_topic:newsmon_consumer_lag_messages:sum",
                "feed:newsmon_feed_interval_seconds:max",
                "feed:newsmon_feed_last_success_age_seconds:min",
            ):

                async def recorded(record: str = record) -> bool:
                    return bool(await prom.result(record))

                await _until(recorded, f"recording rule {record}", 30)
            _, rules = await prom.get("/api/v1/rules")
            evaluated = [r for g in rules["data"]["groups"] for r in g["rules"]]
            assert len(evaluated) >= 18
            broken = [(r["name"], r.get("lastError")) for r in evaluated if r["health"] != "ok"]
            assert not broken, broken
            # A healthy pipeline fires none of them.
            firing = await prom.result('ALERTS{alertstate="firing"}')
            assert not firing, firing

            scrapes = await prom.result('count_over_time(up{job="newsmon"}[10m])')
            print(f"\nPrometheus scraped newsmon {scrapes[0]['value'][1]} times")
