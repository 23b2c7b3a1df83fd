"""One harness for every fault: the services as separate processes on a real broker, a steady
stream of feed items, the Slack stand-in, and the count of expected vs on-topic vs posted.

A *phase* streams one batch of items at a steady pace; once `fault_after` of its alerts reached
Slack (the pipeline flows) it injects its fault while the rest of the batch keeps streaming,
ends the fault, then waits (generously) until every expected alert is on the alerts topic
(read_committed) and posted, and a little more for wrong extra ones. Its row goes to the table
that the session writes to .cache/faults-table.md (docs/RELIABILITY.md quotes it). Recovery
seconds run from the end of the fault until every item released before that moment was posted
to Slack; they are measured and reported, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from newsmon.shared.broker import broker_ready
from newsmon.shared.kafka import stop_consumer
from newsmon.shared.messages import Alert, MessageDecodeError, decode
from newsmon.shared.services import SERVICE_NAMES

from tests.support.kafka_admin import plain_settings, topic_exists
from tests.support.news_stream import Batch, FeedStream, token_in
from tests.support.newsmon_process import NewsmonProcesses
from tests.support.slack_stub import SlackStub

__all__ = [
    "ROWS",
    "AlertWatch",
    "Fault",
    "Pipeline",
    "Row",
    "run_phase",
    "service_env",
    "write_table",
]

log = logging.getLogger("tests.faults")

REPO = Path(__file__).resolve().parents[2]
TABLE_PATH = REPO / ".cache" / "faults-table.md"
# The pipeline's services (the services table without the web page, which the suite leaves out).
SERVICES = tuple(name for name in SERVICE_NAMES if name != "web")
# Settings of every service in the suite: fast polls and short back-offs, so that a phase
# takes seconds (production defaults poll every 300 s); stated in the table's header.
SUITE_SETTINGS = {
    "NEWSMON_TOPIC_PARTITIONS": "2",
    "NEWSMON_POLL_INTERVAL_S": "1",
    "NEWSMON_POLL_INTERVAL_MAX_S": "2",
    "NEWSMON_FETCH_FULL_TEXT": "off",
    "NEWSMON_FETCH_ALLOW_HOSTS": "127.0.0.1",
    "NEWSMON_SLACK_MIN_INTERVAL_S": "0.05",
    "NEWSMON_SLACK_MAX_ATTEMPTS": "2",
    "NEWSMON_SHUTDOWN_TIMEOUT_S": "10",
    # The broker's group.min.session.timeout.ms (production default 10 s): a killed member is
    # evicted, and its restart or a standby given its partitions, 4 s sooner.
    "NEWSMON_KAFKA_SESSION_TIMEOUT_S": "6",
    "NEWSMON_METRICS_PORT": "0",
    "NEWSMON_WEB_PORT": "0",  # `newsmon run` serves the web page too: any free port
    "NEWSMON_LOG_FORMAT": "json",
}
PHASE_TIMEOUT_S = 240.0  # generous: a loaded 2-core CI machine, not a target
SETTLE_S = 2.0  # after the last expected post: room for a wrong extra one

ROWS: list[Row] = []


def service_env(
    bootstrap: str, prefix: str, feeds_file: Path, slack_url: str, instance: str
) -> dict[str, str]:
    return {
        **SUITE_SETTINGS,
        "NEWSMON_KAFKA_BOOTSTRAP": bootstrap,
        "NEWSMON_TOPIC_PREFIX": prefix,
        "NEWSMON_FEEDS_FILE": str(feeds_file),
        "NEWSMON_SLACK_WEBHOOK_URL": slack_url,
        # The same on restart, so a restarted replica fences its killed predecessor.
        "NEWSMON_INSTANCE_ID": instance,
    }


def write_feeds_file(path: Path, url: str) -> Path:
    path.write_text(f'[[feed]]\nname = "fault-stream"\nurl = "{url}"\n', encoding="utf-8")
    return path


async def _topic_exists(bootstrap: str, topic: str) -> bool:
    if not await broker_ready(bootstrap, timeout_s=3.0):
        return False
    return await topic_exists(plain_settings(bootstrap), topic)


class AlertWatch:
    """Reads the alerts topic as a subscriber would (read_committed), from its start, for as
    long as the test runs; waits for the topic to exist (the services create it)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.alerts: list[Alert] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not await _topic_exists(self.bootstrap, self.topic):  # noqa: ASYNC110 - polls a broker
            await asyncio.sleep(1.0)
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            while True:
                try:
                    batch = await consumer.getmany(timeout_ms=500)
                except KafkaError as exc:  # the broker is away in a broker fault: keep going
                    log.info("alert watch: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                for records in batch.values():
                    for record in records:
                        with contextlib.suppress(MessageDecodeError):  # poison on the topic
                            self.alerts.append(decode(Alert, record.value))
        finally:
            await stop_consumer(consumer)

    def by_token(self) -> Counter[str]:
        return Counter(t for a in self.alerts if (t := token_in(a.title)) is not None)


def posted_by_token(slack: SlackStub) -> Counter[str]:
    return Counter(t for t, _ in _posts(slack))


def first_posts(slack: SlackStub) -> dict[str, float]:
    """token -> arrival (time.monotonic()) of its first accepted post."""
    first: dict[str, float] = {}
    for token, at in _posts(slack):
        first.setdefault(token, at)
    return first


def _posts(slack: SlackStub) -> Iterable[tuple[str, float]]:
    """(token, arrival) of every webhook POST that Slack accepted (2xx)."""
    for answered in list(slack.answered):
        body = answered.request.json
        if 200 <= answered.status < 300 and isinstance(body, dict):
            token = token_in(str(body.get("text", "")))
            if token is not None:
                yield token, answered.at


@dataclass
class Pipeline:
    """Everything a phase works with."""

    stream: FeedStream
    slack: SlackStub
    procs: NewsmonProcesses
    watch: AlertWatch
    bootstrap: str
    prefix: str

    def start_services(self, names: Iterable[str] = SERVICES) -> None:
        for name in names:
            self.procs.start(name)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{self.procs.log_tail(name)}" for name in self.procs.procs
        )


@dataclass
class Row:
    fault: str
    expected: int
    on_topic: int
    posted: int
    lost: int
    duplicates: int
    false_alerts: int
    recovery_s: float | None
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def markdown(self) -> str:
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        return (
            f"| {self.fault} | {self.expected} | {self.on_topic} | {self.posted} | {self.lost} "
            f"| {self.duplicates} | {recovery} | {self.note} |"
        )


def _count(pipe: Pipeline, batch: Batch) -> tuple[Counter[str], Counter[str]]:
    wanted = set(batch.expected) | set(batch.noise)
    on_topic = Counter({t: n for t, n in pipe.watch.by_token().items() if t in wanted})
    posted = Counter({t: n for t, n in posted_by_token(pipe.slack).items() if t in wanted})
    return on_topic, posted


def _delivered(pipe: Pipeline, batch: Batch) -> bool:
    on_topic, posted = _count(pipe, batch)
    return all(on_topic[t] and posted[t] for t in batch.expected)


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.25)
    return condition()


Fault = Callable[[], Awaitable[float]]  # injects and ends the fault; returns when it ended


async def run_phase(
    pipe: Pipeline,
    name: str,
    fault: Fault,
    *,
    matching: int = 6,
    noise: int = 2,
    every_s: float = 0.5,
    fault_after: int = 1,
    note: str = "",
) -> Row:
    """One batch through one fault; the row is recorded for the table, then returned.
    The first items stream until `fault_after` of them were posted (the pipeline flows); the
    rest keep streaming while the fault is injected. With `fault_after=0` the fault comes
    first and the whole batch streams through it."""
    batch = pipe.stream.new_batch(matching, noise)
    order = pipe.stream.order(batch)
    split = _after_nth_expected(order, batch, fault_after)
    if split:
        head = pipe.stream.release(batch, order[:split], every_s=every_s)
        flowing = await wait_until(
            lambda: sum(_count(pipe, batch)[1][t] > 0 for t in batch.expected) >= fault_after,
            PHASE_TIMEOUT_S,
        )
        assert flowing, f"{name}: the pipeline did not deliver before the fault\n{pipe.logs()}"
        await head
    release = pipe.stream.release(batch, order[split:], every_s=every_s)
    fault_ended = await fault()
    await wait_until(lambda: _delivered(pipe, batch), PHASE_TIMEOUT_S)
    await release
    await asyncio.sleep(SETTLE_S)
    row = tally(pipe, batch, name, fault_ended, note)
    ROWS.append(row)
    return row


def _after_nth_expected(order: list[str], batch: Batch, n: int) -> int:
    """The position just after the n-th matching item of `order` (0 for n = 0)."""
    seen = 0
    for position, token in enumerate(order, 1):
        if seen >= n:
            return position - 1
        seen += token in batch.expected
    return len(order) if seen >= n else 0


def tally(pipe: Pipeline, batch: Batch, name: str, fault_ended: float, note: str) -> Row:
    on_topic, posted = _count(pipe, batch)
    expected = set(batch.expected)
    first_post = first_posts(pipe.slack)
    # Caught up: every item released before the fault ended is on Slack (items released
    # later are ordinary traffic).
    during = {t for t in expected if pipe.stream.released_at.get(t, 0.0) <= fault_ended}
    last = max((first_post[t] for t in during or expected if t in first_post), default=None)
    return Row(
        fault=name,
        expected=len(expected),
        on_topic=sum(1 for t in expected if on_topic[t]),
        posted=sum(1 for t in expected if posted[t]),
        lost=sum(1 for t in expected if not (on_topic[t] and posted[t])),
        duplicates=sum(n - 1 for n in on_topic.values() if n > 1)
        + sum(n - 1 for n in posted.values() if n > 1),
        false_alerts=sum(on_topic[t] + posted[t] for t in batch.noise),
        recovery_s=None if last is None else max(0.0, last - fault_ended),
        note=note,
    )


def assert_clean(row: Row, pipe: Pipeline) -> None:
    """0 lost, 0 duplicates, 0 false alerts, and no process that died on its own (recovery
    without manual action: a later test must not quietly restart a crashed service)."""
    assert (row.lost, row.duplicates, row.false_alerts) == (0, 0, 0), f"{row}\n{pipe.logs()}"
    ended = [name for name in pipe.procs.procs if not pipe.procs.running(name)]
    assert not ended, f"{row.fault}: {ended} exited by themselves\n{pipe.logs()}"


def write_table(path: Path, rows: list[Row], wall_s: float) -> None:
    """The last run's table, with the machine and the settings it ran with."""
    settings = ", ".join(f"{k}={v}" for k, v in SUITE_SETTINGS.items() if "PORT" not in k)
    lines = [
        f"Fault suite run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or '?'} "
        f"({os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}), {wall_s:.0f} s for the tests that ran; load average "
        f"{os.getloadavg()[1]:.1f} over the last 5 min (other work on the machine stretches "
        "every time below).",
        "",
        f"Service settings: {settings}.",
        "",
        "| fault | expected | on topic | posted | lost | duplicates | recovery s | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *(row.markdown() for row in rows),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
