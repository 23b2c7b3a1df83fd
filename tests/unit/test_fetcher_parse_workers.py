"""Fetcher.poll_once with NEWSMON_FETCH_PARSE_WORKERS: the poll parses in a worker process and
publishes what a thread-parsing fetcher publishes."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.http import FeedClient
from newsmon.fetcher.parse_workers import FeedParser
from newsmon.fetcher.state import FeedState, SeenIds
from newsmon.shared.messages import Article
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.support.feed_builder import Item, rss
from tests.support.fetcher import ListSink, fetcher_for

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEED = FeedConfig(name="f1", url="https://feeds.example.org/rss")
BODY = rss(
    [
        Item(f"https://news.example.org/{i}", f"Story {i}", NOW - timedelta(hours=i))
        for i in range(4)
    ]
)


async def _poll(parser: FeedParser) -> list[Article]:
    sink = ListSink()
    client = FeedClient(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=BODY)))
    settings = Settings(kafka_bootstrap="unused:9092", fetch_parse_workers=parser.workers)
    async with client:
        fetcher = fetcher_for(
            settings,
            Metrics(),
            sink,
            client,
            seen=SeenIds(100),
            parser=parser,
            clock=NOW.timestamp,
            rng=random.Random(0),
        )
        await fetcher.poll_once(FEED, FeedState(url=FEED.url))
    return sink.articles


async def test_a_poll_parses_in_a_worker_process_like_in_a_thread() -> None:
    with FeedParser(workers=1) as processes, FeedParser() as thread:
        in_process = await _poll(processes)
        assert processes._pool is not None  # the pool did the parsing
        in_thread = await _poll(thread)
    assert in_process == in_thread
    assert [a.title for a in in_process] == [f"Story {i}" for i in range(4)]


# A process that parses with two workers as the fetcher does, then waits to be killed.
_HOLDER = f"""
import asyncio, sys, time
from datetime import datetime
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.parse_workers import FeedParser
parser = FeedParser(2)
feed = FeedConfig(name="f1", url="https://feeds.example.org/rss")
asyncio.run(parser.parse({BODY!r}, feed=feed, fetched_at=datetime.fromisoformat("{NOW}")))
print("READY", flush=True)
time.sleep(120)
"""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _running(pids: set[int]) -> set[int]:
    """Those of `pids` still running (zombies count as gone: nothing runs in them)."""
    live = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            live.add(pid)
    return live


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_parse_workers_exit_when_their_fetcher_is_killed(tmp_path: Path) -> None:
    # Not pipes: orphaned workers would hold them open and reading to their end would hang.
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        holder = subprocess.Popen([sys.executable, "-c", _HOLDER], stdout=stdout, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while "READY" not in out.read_text() and holder.poll() is None:
            assert time.monotonic() < deadline, "the parsing process did not start"
            time.sleep(0.05)
        workers = _descendants(holder.pid)  # the forkserver and its parse workers
    finally:
        holder.kill()  # kill -9: no close(), no atexit
        holder.wait()
    assert "READY" in out.read_text(), err.read_text()
    assert len(workers) >= 2
    deadline = time.monotonic() + 30  # a bound for the wait, not a speed check
    while _running(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(workers), "parse workers outlived their fetcher"
