"""First alert after a fresh `newsmon run`: seconds from the article's fetch to the alert on the
alerts topic (as a read_committed subscriber sees it), over N fresh starts.

Each start is a real `newsmon run` process on fresh topics (a new topic prefix, so every topic,
the alerter's state topic included, is created by that start, as on a first deployment) against
one throw-away local Kafka 4.1 broker, polling a local feed with one matching item
(tests/fixtures/feeds/nk-russia-e2e.xml). It also counts failed publishes ("could not publish a
batch" in the service log) and times the SIGTERM shutdown. The baseline in the same run is the
fetch -> classified latency of the same article: what the pipeline needs before the alerter.

`python -m bench.bench_first_alert [N]` prints the Markdown section (N defaults to 20).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from newsmon.shared.kafka import stop_consumer

from bench.support_kafka import local_broker
from tests.support.feed_server import serve_directory

REPO = Path(__file__).resolve().parents[1]
FEEDS = REPO / "tests" / "fixtures" / "feeds"
FEED = "nk-russia-e2e.xml"
STARTS = 20
WITHIN_S = 10.0
GIVE_UP_S = 120.0


@dataclass(frozen=True)
class Start:
    classified_s: float  # fetch -> classified record readable
    alert_s: float | None  # fetch -> alert readable (None: none within GIVE_UP_S)
    failed_publishes: int
    stop_s: float  # SIGTERM -> process gone
    exit_code: int


@contextmanager
def _feed_server() -> Iterator[str]:
    with serve_directory(FEEDS) as base:
        yield f"{base}/{FEED}"


async def _first_record_seen(bootstrap: str, topic: str, deadline: float) -> tuple[Any, float]:
    """The first committed record of `topic` and the wall-clock time it became readable."""
    while time.monotonic() < deadline:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            metadata_max_age_ms=500,  # the topic may not exist yet when we subscribe
        )
        try:
            await consumer.start()
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    if records:
                        return records[0], time.time()
        except KafkaError:
            await asyncio.sleep(0.2)
        finally:
            await stop_consumer(consumer)
    raise TimeoutError(topic)


def _fetched_at(record: Any, path: tuple[str, ...]) -> float:
    value: Any = json.loads(record.value)
    for key in path:
        value = value[key]
    return datetime.fromisoformat(value).timestamp()


async def _one_start(bootstrap: str, feed_url: str, workdir: Path) -> Start:
    prefix = f"fa{uuid.uuid4().hex[:8]}"
    feeds = workdir / f"{prefix}.toml"
    feeds.write_text(f'[[feed]]\nname = "bench"\nurl = "{feed_url}"\n', encoding="utf-8")
    log_path = workdir / f"{prefix}.log"
    env = {
        **os.environ,
        "NEWSMON_KAFKA_BOOTSTRAP": bootstrap,
        "NEWSMON_TOPIC_PREFIX": prefix,
        "NEWSMON_FEEDS_FILE": str(feeds),
        "NEWSMON_METRICS_PORT": "0",
        "NEWSMON_WEB_PORT": "0",
        "NEWSMON_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "NEWSMON_LOG_FORMAT": "json",
        "NEWSMON_INSTANCE_ID": prefix,
    }
    newsmon = Path(sys.executable).with_name("newsmon")
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(newsmon), "run", env=env, stdout=log, stderr=log
        )
    alert_s: float | None = None
    classified_s = float("nan")
    try:
        deadline = time.monotonic() + GIVE_UP_S
        classified, classified_seen = await _first_record_seen(
            bootstrap, f"{prefix}.classified.v1", deadline
        )
        classified_s = classified_seen - _fetched_at(classified, ("article", "fetched"))
        alert, alert_seen = await _first_record_seen(bootstrap, f"{prefix}.alerts.v1", deadline)
        alert_s = alert_seen - _fetched_at(alert, ("fetched",))
    except TimeoutError:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        print("no alert; newsmon run's last lines:", *tail, sep="\n", file=sys.stderr)
    finally:
        asked = time.monotonic()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=60)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        stop_s = time.monotonic() - asked
    failed = log_path.read_text(encoding="utf-8", errors="replace").count("could not publish")
    return Start(classified_s, alert_s, failed, stop_s, code)


def _table(starts: list[Start]) -> list[str]:
    rows = ["| start | fetch → classified s | fetch → alert s | failed publishes | stop s |"]
    rows.append("|---|---|---|---|---|")
    for n, s in enumerate(starts, 1):
        alert = "none" if s.alert_s is None else f"{s.alert_s:.1f}"
        rows.append(
            f"| {n} | {s.classified_s:.1f} | {alert} | {s.failed_publishes} | {s.stop_s:.1f} |"
        )
    return rows


def summary(starts: list[Start]) -> str:
    alerts = [s.alert_s for s in starts if s.alert_s is not None]
    within = sum(1 for a in alerts if a <= WITHIN_S)
    failed = sum(s.failed_publishes for s in starts)
    return (
        f"first alert within {WITHIN_S:.0f} s of the fetch in {within} of {len(starts)} fresh "
        f"starts; fetch → alert median {statistics.median(alerts):.1f} s, max "
        f"{max(alerts):.1f} s; fetch → classified median "
        f"{statistics.median(s.classified_s for s in starts):.1f} s; failed publishes {failed}; "
        f"SIGTERM → exit max {max(s.stop_s for s in starts):.1f} s, exit codes "
        f"{sorted({s.exit_code for s in starts})}"
        if alerts
        else f"no alert in any of {len(starts)} starts"
    )


def run(starts: int = STARTS) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="newsmon-first-alert-"))
    results: list[Start] = []
    try:
        with local_broker() as broker, _feed_server() as feed_url:
            for n in range(starts):
                results.append(asyncio.run(_one_start(broker.bootstrap, feed_url, workdir)))
                print(f"start {n + 1}: {results[-1]}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return "\n".join(
        [
            "## First alert after a fresh start",
            "",
            f"{starts} fresh `newsmon run` processes one after another (each on new topics, so "
            "each creates every topic itself) against one local single-node Kafka 4.1, one "
            "local feed with one matching item. Seconds from the article's `fetched` time to the "
            "record being readable by a read_committed subscriber.",
            "",
            summary(results) + ".",
            "",
            *_table(results),
        ]
    )


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else STARTS))
