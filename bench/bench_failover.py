"""Alerter fail-over cost: rebuilding the story book from the state topic with 100,000 stories.

`run()` starts a throw-away single-node Kafka 4.1, writes N story records to a fresh
alerter-state topic (made by the alerter's own grouping code from generated matching articles:
real signatures, one source each), then times `StoryGroups.load()`, the step a standby runs when
it becomes active (read the compacted topic read_committed to its end, decode, index). The
other steps of a take-over (the group noticing the dead member: the session timeout; fencing
the predecessor's producer: one InitProducerId) are not part of this figure; docs/SCALING.md
adds them. `python -m bench.bench_failover` prints the Markdown section.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from newsmon.alerter import app as alerter
from newsmon.alerter.alerts import alert_id_of, story_id_of
from newsmon.alerter.grouping import Pending, StoryBook, story_to_json
from newsmon.shared.broker import LocalKafka, free_port
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from bench.bench_alerter import _items

REPO = Path(__file__).resolve().parents[1]
STORIES = (10_000, 100_000)
# BENCH_FAILOVER_STORIES=100000 measures one size only.
if os.environ.get("BENCH_FAILOVER_STORIES"):
    STORIES = (int(os.environ["BENCH_FAILOVER_STORIES"]),)


def _records(n: int) -> list[tuple[bytes, bytes]]:
    """(story id, state record) of n distinct stories, as the alerter writes them."""
    book = StoryBook(window=timedelta(days=7), threshold=0.5)
    out = []
    for item in _items(n * 3 // 2):
        story_id = story_id_of(item)
        found = book.assign(
            item, story_id_for=story_id, alert_id_for=alert_id_of(story_id), overlay=Pending()
        )
        if found.new_story:
            out.append((found.story.story_id.encode(), story_to_json(found.story)))
        if len(out) == n:
            break
    return out


async def _fill(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    await alerter.create_alerter_topics(settings, [alerter.state_topic(settings)])
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20
    )
    await producer.start()
    try:
        for key, value in records:
            await producer.send(alerter.state_topic(settings), value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _measure(bootstrap: str, records: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}", metrics_port=0
    )
    await _fill(settings, records)
    groups = alerter.StoryGroups(settings, Metrics())
    cpu0, started = time.process_time(), time.perf_counter()
    await groups.load()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    assert len(groups.book) == len(records), (len(groups.book), len(records))
    return wall, cpu


def run() -> str:
    workdir = REPO / ".cache" / "bench-failover"
    shutil.rmtree(workdir, ignore_errors=True)
    broker = LocalKafka(workdir, port=free_port())
    broker.start()
    rows = []
    try:
        asyncio.run(broker.wait_ready())
        for n in STORIES:
            records = _records(n)
            size = sum(len(k) + len(v) for k, v in records)
            wall, cpu = asyncio.run(_measure(broker.bootstrap, records))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows.append(
                f"| {n:,} | {size / 1e6:.0f} | {wall:.1f} | {cpu:.1f} | {n / wall:,.0f} | "
                f"{rss:.0f} |"
            )
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return "\n".join(
        [
            "## Alerter fail-over: state restore",
            "",
            "A standby that becomes active rebuilds the story book from the compacted "
            "alerter-state topic (`StoryGroups.load()`: read_committed from the start to the "
            "last stable offset, decode each record, index its LSH bands). Stories written by "
            "the alerter's own grouping code (one source each, real MinHash signatures) to a "
            "local single-node Kafka 4.1; one partition, as the alerter creates it. Peak RSS "
            "is the benchmark process's (it also holds the records it wrote).",
            "",
            "| stories | topic MB | restore s (wall) | restore CPU s | stories/s | peak RSS MB |",
            "|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run())
