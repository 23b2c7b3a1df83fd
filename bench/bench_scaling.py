"""Replicas per stage: classifier and alerter throughput with 1, 2 and 3 processes.

`run()` starts a throw-away broker and, for each stage and replica count, fills the stage's
input topic (6 partitions) and starts that many `newsmon <stage>` processes in one consumer
group (each with its own NEWSMON_INSTANCE_ID), then times the group's committed offsets from
the first commit to the last. Reported: wall items/s, items per CPU-second of all the replicas
together, and the 1-minute load average at the end of the run. The classifier shares its
partitions across replicas; the alerter has one active replica whatever the count (the others
are standbys), which is what its rows show. The machine has 2 cores and is shared with other
work, so wall rates stop growing well before 3 replicas: read them with the load beside them.
`python -m bench scaling` runs only this; docs/SCALING.md quotes it.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from newsmon.shared.kafka import ensure_topics
from newsmon.shared.settings import Settings

from .bench_stages import LOGS, alerter_inputs, classifier_inputs, fill
from .support_kafka import (
    Child,
    broker,
    committed_total,
    group_watcher,
    loadavg,
    service_env,
    start_child,
)

PARTITIONS = 6
REPLICAS = (1, 2, 3)
ITEMS = {"classifier": 8_000, "alerter": 3_000}


async def _follow(
    children: list[Child], settings: Settings, service: str, topic: str, n: int
) -> tuple[float, float, float]:
    """(items, seconds, cpu seconds of every replica) from the first commit to the last."""
    watcher = group_watcher(settings, service)
    await watcher.start()
    try:
        first, started, cpu0 = 0, 0.0, 0.0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = await committed_total(watcher, topic, PARTITIONS)
            if done and not started:
                first, started = done, time.perf_counter()
                cpu0 = sum(c.cpu_seconds() for c in children)
            if done >= n:
                cpu = sum(c.cpu_seconds() for c in children) - cpu0
                return n - first, time.perf_counter() - started, cpu
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{service} did not finish in time; see {LOGS}")
    finally:
        await watcher.stop()


def measure(
    bootstrap: str, service: str, replicas: int, payloads: list[tuple[bytes, bytes]]
) -> str:
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"s{uuid.uuid4().hex[:8]}",
        topic_partitions=PARTITIONS,
        instance_id="bench",
        metrics_port=0,
    )
    topic = settings.topics.articles if service == "classifier" else settings.topics.classified
    asyncio.run(ensure_topics(settings))
    asyncio.run(fill(bootstrap, topic, payloads))
    children = [
        start_child(
            [service],
            service_env(
                settings,
                NEWSMON_INSTANCE_ID=f"bench-{n}",
                NEWSMON_TOPIC_PARTITIONS=str(PARTITIONS),
            ),
            LOGS / f"scaling-{service}-{settings.topic_prefix}-{n}.log",
        )
        for n in range(replicas)
    ]
    try:
        items, seconds, cpu = asyncio.run(
            _follow(children, settings, service, topic, len(payloads))
        )
    finally:
        for child in children:
            child.stop()
    return (
        f"| {service} | {replicas} | {items:,} | {items / seconds:,.0f} | {items / cpu:,.0f} "
        f"| {loadavg()} |"
    )


def run() -> str:
    rows = []
    with broker() as bootstrap:
        inputs = {
            "classifier": classifier_inputs(ITEMS["classifier"]),
            "alerter": alerter_inputs(ITEMS["alerter"]),
        }
        for service, payloads in inputs.items():
            rows.extend(measure(bootstrap, service, n, payloads) for n in REPLICAS)
    return "\n".join(
        [
            "## Replicas per stage (classifier, alerter)",
            "",
            f"Each stage's input topic ({PARTITIONS} partitions) filled beforehand, then 1, 2 or "
            "3 `newsmon <stage>` processes in one consumer group (default settings: "
            "transactions on, batch 200) on a local single-node Kafka 4.1 on the same 2 cores; "
            "the rate counts committed input offsets from the first commit to the last. Items "
            "per CPU-second sums the CPU time of all replicas. The alerter has one active "
            "replica whatever the count (the others are standbys). The machine is shared with "
            "other work: the load average is printed beside each row.",
            "",
            "| stage | replicas | items | wall items/s | items per CPU-second | load (1 min) |",
            "|---|---:|---:|---:|---:|---|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run())
