"""A "zombie" alerter: the active replica is frozen (SIGSTOP) mid-stream until the standby has
taken over and published, then resumed (SIGCONT). The zombie must find itself fenced and step
down without publishing anything; every alert revision reaches the alerts topic exactly once
(read_committed), and both replicas exit 0 on SIGTERM.

Two real processes (`python -m newsmon alerter`, one group, different instance ids) on the test
broker with its minimum session timeout (6 s); classified items are produced straight to the
classified topic while the fault happens. Every wait is on a condition, with a generous cap that
fails with the logs; nothing is timed.

What it caught (shared/pipeline.py, shared/failover.py): records fetched across a rebalance that
kept the partitions were dropped and never read again (one alert lost, often the first item,
when the second replica joined during the first one's activation: the test then waited for an
alert that never came, with the group's last words "rebalancing"); the resumed zombie took the
partitions back (both claimed them, the first by member id won), or re-activated before the
group told it that it was evicted, fencing the rightful active.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from newsmon.shared.failover import still_member
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.messages import Alert, decode, encode
from newsmon.shared.settings import Settings

from tests.faults.harness import wait_until
from tests.service.test_alerter_grouping import classified, read_alerts
from tests.support.newsmon_process import NewsmonProcesses

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
REPLICAS = ("alerter-a", "alerter-b")
# Generous caps on a loaded 2-core machine, not targets: each ends a wait that failed.
CAP_S = 180.0
ACTIVATED = "active: took over"
PUBLISHED = "published "
STEPPED_DOWN = "standby: another replica holds the partitions"


def _now() -> str:
    """UTC time of day, to set beside the services' log lines."""
    return datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]


def messages(procs: NewsmonProcesses, name: str) -> list[str]:
    """The `msg` of each JSON log line `name` wrote so far."""
    try:
        text = procs.log_path(name).read_text(errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            found.append(str(json.loads(line).get("msg", "")))
    return found


def count(procs: NewsmonProcesses, name: str, text: str, since: int = 0) -> int:
    return sum(text in m for m in messages(procs, name)[since:])


def logs(procs: NewsmonProcesses) -> str:
    return "\n".join(f"--- {n} ---\n{procs.log_tail(n, 6000)}" for n in procs.procs)


class Stream:
    """Classified matching items produced at a steady pace until stopped: new stories, and a
    second copy of every third story (an update: the state must have moved with the alerts)."""

    def __init__(self, settings: Settings, first_story: int) -> None:
        self.settings = settings
        self.next_story = first_story
        self.copies: Counter[int] = Counter()
        # article id -> (partition, offset, UTC time) of its record on the classified
        # topic: names the records behind a lost alert.
        self.produced: dict[str, tuple[int, int, float]] = {}
        self.stop = asyncio.Event()

    async def run(self, every_s: float = 0.05) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            while not self.stop.is_set():
                story, copy = self.next_story, 0
                if story % 3 == 0 and self.copies[story - 6] == 1:
                    story, copy = story - 6, 1
                else:
                    self.next_story += 1
                item = classified(story, copy)
                sent = await producer.send_and_wait(
                    self.settings.topics.classified, encode(item), key=item.article.id.encode()
                )
                self.produced[item.article.id] = (sent.partition, sent.offset, _now())
                self.copies[story] += 1
                await asyncio.sleep(every_s)
        finally:
            await producer.stop()


async def wait_for(condition: Callable[[], bool], what: str, procs: NewsmonProcesses) -> None:
    assert await wait_until(condition, CAP_S), f"not within {CAP_S:.0f} s: {what}\n{logs(procs)}"


async def test_sigstopped_active_alerter_is_fenced_and_nothing_is_lost_or_doubled(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings
    await ensure_topics(settings)
    procs = NewsmonProcesses(
        {
            "NEWSMON_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "NEWSMON_TOPIC_PREFIX": settings.topic_prefix,
            "NEWSMON_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "NEWSMON_METRICS_PORT": "0",
            "NEWSMON_BATCH_SIZE": "4",
            "NEWSMON_SHUTDOWN_TIMEOUT_S": "10",
            # The broker's minimum (group.min.session.timeout.ms): the frozen member is
            # evicted, and the standby given the partitions, 4 s sooner than by default.
            "NEWSMON_KAFKA_SESSION_TIMEOUT_S": "6",
            "NEWSMON_LOG_FORMAT": "json",
        },
        tmp_path,
    )
    stream = Stream(settings, first_story=0)
    started = _now()
    streaming: asyncio.Task[None] | None = None
    zombie, zombie_mark = "", 0
    try:
        for name in REPLICAS:
            procs.start("alerter", name=name, NEWSMON_INSTANCE_ID=name)
        await wait_for(
            lambda: sum(count(procs, n, ACTIVATED) for n in REPLICAS) == 1,
            "one replica activates",
            procs,
        )
        zombie, standby = REPLICAS if count(procs, REPLICAS[0], ACTIVATED) else REPLICAS[::-1]
        streaming = asyncio.create_task(stream.run())
        await wait_for(
            lambda: count(procs, zombie, PUBLISHED) >= 2, "the active replica publishes", procs
        )

        procs.signal(zombie, signal.SIGSTOP)  # mid-stream: most likely mid-batch
        standby_mark = len(messages(procs, standby))
        await wait_for(
            lambda: (
                count(procs, standby, ACTIVATED, standby_mark) == 1
                and count(procs, standby, PUBLISHED, standby_mark) >= 1
            ),
            "the standby takes over and publishes while the active one is frozen",
            procs,
        )

        zombie_mark = len(messages(procs, zombie))
        procs.signal(zombie, signal.SIGCONT)
        await wait_for(
            lambda: (
                count(procs, zombie, STEPPED_DOWN, zombie_mark) >= 1 or not procs.running(zombie)
            ),
            "the resumed zombie steps down (or exits)",
            procs,
        )
        # The new active goes on publishing after the zombie woke up.
        published = count(procs, standby, PUBLISHED)
        await wait_for(
            lambda: count(procs, standby, PUBLISHED) > published,
            "the new active publishes after the zombie resumed",
            procs,
        )
        stream.stop.set()
        await streaming
        expected = sum(stream.copies.values())
        records = await read_alerts(settings, expected, settle_s=3.0)
    finally:
        stream.stop.set()
        if streaming is not None:
            with contextlib.suppress(Exception):
                await streaming
        if zombie and procs.running(zombie):
            procs.signal(zombie, signal.SIGCONT)  # a failed wait must not leave it frozen
        # The zombie first: once the active one left the group, the zombie would rightly be
        # given the partitions and activate.
        order = sorted(procs.procs, key=lambda name: name != zombie)
        stopped = {name: await asyncio.to_thread(procs.stop, name) for name in order}

    codes = {name: code for name, (code, _) in stopped.items()}
    assert codes == dict.fromkeys(REPLICAS, 0), f"exit codes {codes}\n{logs(procs)}"
    alerts = [decode(Alert, r.value) for r in records]
    seen = Counter((a.alert_id, a.revision) for a in alerts)
    doubled = {k: n for k, n in seen.items() if n > 1}
    assert not doubled, f"alert revisions on the topic more than once: {doubled}\n{logs(procs)}"
    missing = {
        article: where
        for article, where in stream.produced.items()
        if article not in {a.article_id for a in alerts}
    }
    assert not missing, (
        f"{len(alerts)} alerts for {expected} items; no alert for (partition, offset, "
        f"produced at) {missing}, test started at {started}\n{logs(procs)}"
    )
    assert len(alerts) == expected
    per_story = Counter(a.alert_id for a in alerts)
    assert sorted(per_story.values()) == sorted(stream.copies.values())
    assert all(len(a.sources) == a.revision for a in alerts)
    # Fenced: the zombie never activated again, so every transaction it began after resuming
    # failed (the new active's producer bumped the epoch). The one batch it had in flight when
    # frozen may have committed before the take-over (the new active's producer completes a
    # transaction whose commit was asked for), and says so only on waking up.
    assert count(procs, zombie, ACTIVATED, zombie_mark) == 0, logs(procs)
    assert count(procs, zombie, PUBLISHED, zombie_mark) <= 1, logs(procs)


async def _member_checked_after_a_freeze(bootstrap: str, group: str, topic: str) -> None:
    """A group member that says whether the group still knows it (`still_member`) once
    assigned, and again once it notices it was frozen (the loop's clock jumped)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        print(f"{STILL_MEMBER} {await still_member(consumer)}", flush=True)
        last = time.monotonic()
        while time.monotonic() - last < 3.0:  # waits for a SIGSTOP to end
            last = time.monotonic()
            await asyncio.sleep(0.1)
        print(f"{AFTER_FREEZE} {await still_member(consumer)}", flush=True)
    finally:
        await consumer.stop()


STILL_MEMBER = "still member:"
AFTER_FREEZE = "after the freeze, still member:"


async def _members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_consumer_groups([group])
        return sum(
            len(g[5]) for g in described.groups
        )  # (error, id, state, type, protocol, members)
    finally:
        await admin.close()


def _start_member(bootstrap: str, group: str, topic: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.service.test_alerter_zombie", bootstrap, group],
        env={**os.environ, "NEWSMON_TOPIC": topic},
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


async def test_a_member_evicted_while_frozen_learns_it_with_one_heartbeat(
    kafka_settings: Settings,
) -> None:
    """The check an alerter makes before it activates (shared/failover.py still_member): a
    process frozen past its session timeout and resumed gets "no" from the broker at once,
    so it cannot activate on an assignment the group has replaced."""
    settings = kafka_settings
    await ensure_topics(settings)
    bootstrap, group = settings.kafka_bootstrap or "", f"{settings.topic_prefix}-probe"
    proc = _start_member(bootstrap, group, settings.topics.classified)
    try:
        assert proc.stdout is not None
        first = await asyncio.to_thread(proc.stdout.readline)
        assert first.strip() == f"{STILL_MEMBER} True", first
        proc.send_signal(signal.SIGSTOP)
        evicted = False
        async with asyncio.timeout(CAP_S):
            while not evicted:
                evicted = await _members(bootstrap, group) == 0
                await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGCONT)
        second = await asyncio.to_thread(proc.stdout.readline)
        assert second.strip() == f"{AFTER_FREEZE} False", second
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    asyncio.run(
        _member_checked_after_a_freeze(sys.argv[1], sys.argv[2], os.environ["NEWSMON_TOPIC"])
    )
