"""Faults of the services and of Slack, on the session's broker: kill -9 of each service and a
restart, Slack failing (500, then 429 with Retry-After) and recovering, poison on each topic.

One pipeline serves the whole module (starting four processes is the slow part); each test
is one phase with its own batch of items, so its counts are its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from newsmon.shared.broker import LocalKafka

from tests.faults.conftest import pipeline
from tests.faults.harness import (
    PHASE_TIMEOUT_S,
    SERVICES,
    Pipeline,
    assert_clean,
    run_phase,
    wait_until,
)
from tests.support.kafka_read import read_topic
from tests.support.slack_stub import StubReply

# A phase waits up to 240 s for its alerts, after a fault that may itself take a minute.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

DOWN_S = 2.0  # a killed service stays down this long before its restart


@pytest.fixture(scope="module")
async def pipe(
    kafka_broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pipeline]:
    work = tmp_path_factory.mktemp("service-faults")
    async with pipeline(kafka_broker.bootstrap, work, "faults") as running:
        running.start_services()
        yield running


async def _no_fault() -> float:
    return time.monotonic()


async def test_baseline_without_fault(pipe: Pipeline) -> None:
    """The same counts with no fault: the reference for the rows below."""
    row = await run_phase(
        pipe,
        "none (baseline, fresh start)",
        _no_fault,
        fault_after=0,
        note="recovery s here: the whole batch, from the start of the services",
    )
    assert_clean(row, pipe)


@pytest.mark.parametrize("service", SERVICES)
async def test_kill_9_and_restart(pipe: Pipeline, service: str) -> None:
    async def kill_and_restart() -> float:
        code = await asyncio.to_thread(pipe.procs.kill, service)
        assert code == -9
        await asyncio.sleep(DOWN_S)
        pipe.procs.start(service)
        return time.monotonic()

    row = await run_phase(
        pipe, f"kill -9 {service}, restart after {DOWN_S:.0f} s", kill_and_restart
    )
    assert_clean(row, pipe)


SLACK_500_S = 6.0  # at least, and at least three 500s answered
RETRY_AFTER_S = 3
RATE_LIMITED = 2  # 429s answered before Slack recovers


async def test_slack_500_then_429_then_recovery(pipe: Pipeline) -> None:
    answered_before = len(pipe.slack.answered)

    def answered(status: int) -> int:
        return sum(a.status == status for a in pipe.slack.answered[answered_before:])

    spans: dict[int, float] = {}

    async def outage() -> float:
        started = time.monotonic()
        pipe.slack.set_default(StubReply.server_error())
        await asyncio.sleep(SLACK_500_S)
        await wait_until(lambda: answered(500) >= 3, PHASE_TIMEOUT_S)
        rate_limited = time.monotonic()
        spans[500] = rate_limited - started
        pipe.slack.set_default(StubReply.rate_limited(RETRY_AFTER_S))
        await wait_until(lambda: answered(429) >= RATE_LIMITED, PHASE_TIMEOUT_S)
        pipe.slack.set_default(StubReply.ok())
        spans[429] = time.monotonic() - rate_limited
        return time.monotonic()

    row = await run_phase(
        pipe, f"Slack 500, then 429 (Retry-After: {RETRY_AFTER_S}), then recovery", outage
    )
    answers = pipe.slack.answered[answered_before:]
    gaps = [later.at - earlier.at for earlier, later in pairwise(answers) if earlier.status == 429]
    row.note = (
        f"500 for {spans[500]:.0f} s ({answered(500)} answered), then 429 for "
        f"{spans[429]:.0f} s ({answered(429)}); shortest wait after a 429: {min(gaps):.1f} s"
    )
    assert answered(429) >= RATE_LIMITED
    assert_clean(row, pipe)


def _poison(sample: dict[str, Any]) -> dict[str, bytes]:
    """The four kinds of bad record, the wrong types made from a real message of the topic."""
    wrong_types = {k: (12345 if isinstance(v, str) else "x") for k, v in sample.items()}
    return {
        "invalid-json": b'{"id": "abc", "title": ',
        "wrong-schema": json.dumps({"hello": "world", "schema": "not.ours.v9"}).encode(),
        "wrong-types": json.dumps(wrong_types).encode(),
        "non-utf8": b'{"title": "caf\xe9 \xff\xfe"}',
    }


async def _sample(pipe: Pipeline, topic: str) -> dict[str, Any]:
    records = await read_topic(pipe.bootstrap, topic, until=lambda rs: len(rs) >= 1)
    value: dict[str, Any] = json.loads(records[0].value)
    return value


async def test_poison_on_each_topic_goes_to_the_dlq(pipe: Pipeline) -> None:
    stages = {"articles": "classifier", "classified": "alerter", "alerts": "notifier"}
    topics = {name: f"{pipe.prefix}.{name}.v1" for name in stages}
    samples = {name: await _sample(pipe, topic) for name, topic in topics.items()}

    async def poison() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=pipe.bootstrap, acks="all")
        await producer.start()
        try:
            for name, topic in topics.items():
                for kind, value in _poison(samples[name]).items():
                    await producer.send_and_wait(topic, value, key=f"poison-{name}-{kind}".encode())
        finally:
            await producer.stop()
        return time.monotonic()

    row = await run_phase(pipe, "poison ×4 kinds on articles, classified, alerts", poison)
    dead = await read_topic(
        pipe.bootstrap,
        f"{pipe.prefix}.dlq.v1",
        until=lambda rs: sum(1 for r in rs if (r.key or b"").startswith(b"poison-")) >= 12,
        timeout_s=60,
    )
    by_stage = Counter(
        (dict(r.headers)["dlq_stage"].decode(), (r.key or b"").decode().split("-")[1])
        for r in dead
        if (r.key or b"").startswith(b"poison-")
    )
    row.note = f"{sum(by_stage.values())} of 12 in the DLQ"
    assert by_stage == Counter({(stage, name): 4 for name, stage in stages.items()})
    assert_clean(row, pipe)
