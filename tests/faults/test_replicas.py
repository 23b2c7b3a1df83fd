"""Two replicas of every stage, kill -9 of one replica of each: nothing lost, nothing twice.

2 fetchers + 2 classifiers + 2 alerters + 2 notifiers as separate processes on the session's
broker, over topics of 2 partitions. One phase per stage: items stream, one replica of the
stage (for the alerter: the active one) is killed with kill -9 mid-stream and not restarted;
the survivor takes over (the fetcher, classifier and notifier groups rebalance once the
session timeout evicts the dead member; the standby alerter is given every partition and
activates). Checked: every expected alert on the alerts topic exactly once (read_committed)
and posted to the Slack stand-in exactly once, no false alert, every feed polled after the
fetcher's death, and a feed added while running (`newsmon feeds add`) polled. The take-over
times are measured and printed (and land in the fault table), never asserted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from newsmon.shared.broker import LocalKafka

from tests.faults.conftest import pipeline
from tests.faults.harness import (
    PHASE_TIMEOUT_S,
    REPO,
    SERVICES,
    SUITE_SETTINGS,
    Pipeline,
    assert_clean,
    first_posts,
    run_phase,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

REPLICAS = ("a", "b")
FEEDS = ("stream-1", "stream-2", "stream-3")
ADDED = "stream-4"
# The suite's session timeout (the broker's minimum): a killed member is evicted that soon.
SESSION_TIMEOUT_S = float(SUITE_SETTINGS["NEWSMON_KAFKA_SESSION_TIMEOUT_S"])
ACTIVATED = "active: took over"


def feed_url(pipe: Pipeline, name: str) -> str:
    return f"{pipe.stream.url}?feed={name}"


def write_feeds(path: Path, pipe: Pipeline) -> None:
    """The feeds file every fetcher replica starts with: the stream under three names."""
    path.write_text(
        "".join(f'[[feed]]\nname = "{n}"\nurl = "{feed_url(pipe, n)}"\n\n' for n in FEEDS),
        encoding="utf-8",
    )


def polled_since(pipe: Pipeline, mark: int) -> set[str]:
    """Feeds (by the `feed=` query) that were requested after the first `mark` requests."""
    return {
        seen.path.rsplit("feed=", 1)[1]
        for seen in list(pipe.stream.stub.requests)[mark:]
        if "feed=" in seen.path
    }


def max_delay(pipe: Pipeline, since: float) -> float:
    """The longest release-to-Slack time of the items released after `since`: what a
    take-over costs the items caught in it."""
    posted = first_posts(pipe.slack)
    released = pipe.stream.released_at.items()
    return max((posted[t] - at for t, at in released if at >= since and t in posted), default=0.0)


def activations(pipe: Pipeline, name: str) -> int:
    try:
        return pipe.procs.log_path(name).read_text(errors="replace").count(ACTIVATED)
    except OSError:
        return 0


@pytest.fixture(scope="module")
async def pipe(
    kafka_broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pipeline]:
    work = tmp_path_factory.mktemp("replicas")
    async with pipeline(kafka_broker.bootstrap, work, "replicas") as running:
        write_feeds(Path(running.procs.env["NEWSMON_FEEDS_FILE"]), running)
        for service in SERVICES:
            for replica in REPLICAS:
                name = f"{service}-{replica}"
                running.procs.start(service, name=name, NEWSMON_INSTANCE_ID=name)
        yield running


async def test_baseline_with_two_replicas_each(pipe: Pipeline) -> None:
    started = time.monotonic()
    row = await run_phase(pipe, "2 replicas per stage (baseline)", _no_fault, fault_after=0)
    row.note = f"from the start of 8 processes; slowest item {max_delay(pipe, started):.1f} s"
    assert_clean(row, pipe)
    # Exactly one alerter activated; the other waits on standby.
    assert sorted(activations(pipe, f"alerter-{r}") for r in REPLICAS) == [0, 1], pipe.logs()


async def _no_fault() -> float:
    return time.monotonic()


@pytest.mark.parametrize("service", SERVICES)
async def test_kill_9_one_replica(pipe: Pipeline, service: str) -> None:
    victim, survivor = f"{service}-a", f"{service}-b"
    if service == "alerter" and activations(pipe, "alerter-b") > activations(pipe, "alerter-a"):
        victim, survivor = survivor, victim  # kill the active one
    before = activations(pipe, survivor)
    took: list[float] = []
    killed_at = [0.0]
    polls_mark = 0

    async def kill() -> float:
        nonlocal polls_mark
        polls_mark = len(pipe.stream.stub.requests)
        killed = killed_at[0] = time.monotonic()
        assert await asyncio.to_thread(pipe.procs.kill, victim) == -9
        if service == "alerter":
            await wait_until(lambda: activations(pipe, survivor) > before, PHASE_TIMEOUT_S)
            took.append(time.monotonic() - killed)
        return killed

    row = await run_phase(
        pipe,
        f"kill -9 one of 2 {service} replicas (no restart)",
        kill,
        matching=4,
        noise=1,
        note=f"session timeout {SESSION_TIMEOUT_S:.0f} s",
    )
    delay = max_delay(pipe, killed_at[0])
    row.note += f"; slowest item after the kill: {delay:.1f} s from release to Slack"
    if took:
        row.note += f"; standby alerter active {took[0]:.1f} s after the kill"
    print(f"\n{service} fail-over: {row.note}")
    pipe.procs.procs.pop(victim)  # killed on purpose: not "exited by itself"
    assert_clean(row, pipe)
    if service == "alerter":
        assert activations(pipe, survivor) == before + 1, pipe.logs()
    if service == "fetcher":
        assert await wait_until(
            lambda: polled_since(pipe, polls_mark) >= set(FEEDS), PHASE_TIMEOUT_S
        ), f"a feed was orphaned by the dead fetcher\n{pipe.logs()}"


async def test_feed_added_while_running_is_polled(pipe: Pipeline) -> None:
    mark = len(pipe.stream.stub.requests)
    added = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            *("-m", "newsmon", "feeds", "add", feed_url(pipe, ADDED), "--name", ADDED),
            *("--interval-min", "1", "--interval-max", "2"),
        ],
        env=pipe.procs.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    assert await wait_until(lambda: polled_since(pipe, mark) >= {*FEEDS, ADDED}, PHASE_TIMEOUT_S), (
        f"not every feed polled after the add\n{pipe.logs()}"
    )
