"""Two fetcher processes share the feeds through the feeds topic and one consumer group.

Real processes (`python -m newsmon fetcher`, each with its own NEWSMON_INSTANCE_ID and the same
feeds file) on the test broker, polling 12 feeds of a real local HTTP server that records who
asked for what (the User-Agent carries each replica's NEWSMON_FETCH_CONTACT). Checked: every
feed polled by exactly one replica; a feed moves with its state (the new owner's first request
is conditional and answered 304); `newsmon feeds add` / `remove` reach the running replicas;
after `kill -9` of one replica, and after a clean stop of another, the survivor takes the
feeds over; no article published twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from newsmon.shared.broker import free_port
from newsmon.shared.settings import Settings
from prometheus_client.parser import text_string_to_metric_families

from tests.support.feed_builder import Item, rss
from tests.support.feed_server import Request, serve_directory
from tests.support.kafka_read import read_topic

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
NEWSMON = [sys.executable, "-m", "newsmon"]
NAMES = [f"f{n:02d}" for n in range(1, 13)]
SESSION_TIMEOUT_S = 6  # the broker's group.min.session.timeout.ms


def items(name: str, count: int) -> list[Item]:
    return [
        Item(url=f"https://news.example.org/{name}/{n}", title=f"Story {n} of {name}")
        for n in range(1, count + 1)
    ]


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def owned_feeds(self) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except (OSError, urllib.error.URLError):
            return 0.0  # not serving yet, or gone
        for family in text_string_to_metric_families(text):
            if family.name == "newsmon_fetcher_owned_feeds":
                return float(family.samples[0].value)
        return 0.0


def environment(settings: Settings, feeds_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update(
        {
            "NEWSMON_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "NEWSMON_TOPIC_PREFIX": settings.topic_prefix,
            "NEWSMON_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "NEWSMON_FEEDS_FILE": str(feeds_file),
            "NEWSMON_FETCH_ALLOW_HOSTS": "127.0.0.1",
            "NEWSMON_KAFKA_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
            "NEWSMON_SHUTDOWN_TIMEOUT_S": "10",
            "NEWSMON_LOG_FORMAT": "json",
        }
    )
    return env


def start(name: str, env: dict[str, str], log: Path) -> Replica:
    port = free_port()
    own = {
        **env,
        "NEWSMON_INSTANCE_ID": name,
        "NEWSMON_FETCH_CONTACT": f"replica-{name}",
        "NEWSMON_METRICS_PORT": str(port),
    }
    with log.open("ab") as out:
        process = subprocess.Popen([*NEWSMON, "fetcher"], env=own, cwd=REPO, stdout=out, stderr=out)
    return Replica(name, port, process)


async def until(condition: Callable[[], bool], what: str, log: Path, timeout_s: float = 90) -> None:
    """Wait for `condition` (a generous deadline only so that a broken build cannot hang)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached\n{last_lines(log)}")
        await asyncio.sleep(0.2)


def last_lines(log: Path) -> str:
    return log.read_text()[-3000:]


def newsmon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NEWSMON, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def feed_of(request: Request) -> str:
    return request.path.strip("/").removesuffix(".xml")


def pollers(requests: list[Request]) -> dict[str, set[str]]:
    """feed -> the replicas that requested it."""
    seen: dict[str, set[str]] = {}
    for r in requests:
        seen.setdefault(feed_of(r), set()).add(r.user_agent.rsplit("+", 1)[-1].rstrip(")"))
    return seen


def polled_again(requests: list[Request], since: int, names: list[str], times: int) -> bool:
    counts = Counter(feed_of(r) for r in requests[since:])
    return all(counts[n] >= times for n in names)


async def test_two_fetchers_share_the_feeds_and_take_over_a_killed_one(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for name in [*NAMES, "f13"]:
        (site / f"{name}.xml").write_bytes(rss(items(name, 2), title=name))
    log = tmp_path / "fetchers.log"
    requests: list[Request] = []
    with serve_directory(site, requests) as base:
        feeds_file = tmp_path / "feeds.toml"
        feeds_file.write_text(
            "".join(
                f'[[feed]]\nname = "{n}"\nurl = "{base}/{n}.xml"\ninterval_min = 1\n'
                "interval_max = 2\n\n"
                for n in NAMES
            )
        )
        env = environment(kafka_settings, feeds_file)
        a = start("a", env, log)
        replicas = [a]
        try:
            # One replica alone polls everything; a second one joins and takes a share.
            await until(lambda: a.owned_feeds() == 12, "replica a owns the 12 feeds", log)
            await until(lambda: set(pollers(requests)) >= set(NAMES), "every feed polled", log)
            b = start("b", env, log)
            replicas.append(b)
            await until(
                lambda: (
                    min(a.owned_feeds(), b.owned_feeds()) > 0
                    and a.owned_feeds() + b.owned_feeds() == 12
                ),
                "the feeds are shared",
                log,
            )
            mark = len(requests)
            await until(lambda: polled_again(requests, mark, NAMES, 2), "polled twice", log)
            owners = pollers(requests[mark:])
            assert all(len(owners[n]) == 1 for n in NAMES), owners
            of_a = sorted(n for n in NAMES if owners[n] == {"replica-a"})
            of_b = sorted(n for n in NAMES if owners[n] == {"replica-b"})
            assert len(of_a) >= 2, owners
            assert of_b, owners
            # b's first request of each feed it took from a is conditional: answered 304.
            first_by_b = {}
            for r in requests:
                if r.user_agent.endswith("replica-b)"):
                    first_by_b.setdefault(feed_of(r), r.status)
            assert all(first_by_b[n] == 304 for n in of_b), first_by_b

            # A feed added while running is polled; a removed one no longer.
            added = await asyncio.to_thread(
                newsmon,
                *("feeds", "add", f"{base}/f13.xml", "--name", "f13"),
                *("--interval-min", "1", "--interval-max", "2"),
                env=env,
            )
            assert added.returncode == 0, added.stderr
            await until(lambda: "f13" in pollers(requests), "the added feed is polled", log)
            gone = of_a[0]
            removed = await asyncio.to_thread(newsmon, "feeds", "remove", gone, env=env)
            assert removed.returncode == 0, removed.stderr
            assert f'name = "{gone}"' not in feeds_file.read_text(), "and from the feeds file"
            await until(
                lambda: a.owned_feeds() + b.owned_feeds() == 12, "the removed feed stops", log
            )
            mark = len(requests)
            kept = [n for n in NAMES if n != gone]
            await until(lambda: polled_again(requests, mark, kept, 2), "others polled", log)
            assert gone not in pollers(requests[mark:])

            # kill -9 of a: b takes a's feeds over with their state.
            changed = of_a[-1]  # gets a third item while a is dead: b publishes only that one
            killed_at = time.monotonic()
            a.process.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(a.process.wait, 30) == -signal.SIGKILL
            (site / f"{changed}.xml").write_bytes(rss(items(changed, 3), title=changed))
            mark = len(requests)
            await until(lambda: b.owned_feeds() == 12, "b owns every feed", log)
            owned_after = time.monotonic() - killed_at
            taken = [n for n in of_a if n != gone]
            await until(lambda: polled_again(requests, mark, taken, 1), "a's feeds polled", log)
            polled_after = time.monotonic() - killed_at
            print(
                f"\ntakeover after kill -9 (session timeout {SESSION_TIMEOUT_S}s): owned after "
                f"{owned_after:.1f}s, all polled after {polled_after:.1f}s"
            )
            first_after: dict[str, int] = {}
            for r in requests[mark:]:
                first_after.setdefault(feed_of(r), r.status)
            assert first_after[changed] == 200
            assert all(first_after[n] == 304 for n in taken if n != changed), first_after
            assert all(p == {"replica-b"} for p in pollers(requests[mark:]).values())

            # A clean stop hands over at once: c joins, b stops (SIGTERM), c takes b's feeds.
            now = [*kept, "f13"]
            c = start("c", env, log)
            replicas.append(c)
            await until(
                lambda: (
                    min(b.owned_feeds(), c.owned_feeds()) > 0
                    and b.owned_feeds() + c.owned_feeds() == 12
                ),
                "b and c share the feeds",
                log,
            )
            mark = len(requests)
            await until(lambda: polled_again(requests, mark, now, 1), "b and c poll", log)
            owners = pollers(requests[mark:])
            assert all(len(owners[n]) == 1 for n in now), owners
            of_b = [n for n in now if owners[n] == {"replica-b"}]
            stopped_at = time.monotonic()
            b.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(b.process.wait, 30) == 0, last_lines(log)
            mark = len(requests)
            await until(lambda: c.owned_feeds() == 12, "c owns every feed", log)
            owned_after = time.monotonic() - stopped_at
            await until(lambda: polled_again(requests, mark, of_b, 1), "b's feeds polled", log)
            polled_after = time.monotonic() - stopped_at
            print(
                f"takeover after SIGTERM: owned after {owned_after:.1f}s (b's drain and exit "
                f"included), all polled after {polled_after:.1f}s"
            )
            first_after = {}
            for r in requests[mark:]:
                first_after.setdefault(feed_of(r), r.status)
            assert all(first_after[n] == 304 for n in of_b), first_after

            # Every article once: 12 feeds x 2, f13's 2 and the changed feed's third.
            expected = 12 * 2 + 2 + 1
            records = await read_topic(
                kafka_settings.kafka_bootstrap or "",
                kafka_settings.topics.articles,
                until=lambda rs: len(rs) >= expected,
                settle_s=3.0,
            )
            keys = Counter(r.key for r in records)
            assert [k for k, n in keys.items() if n > 1] == []
            assert len(keys) == expected

            c.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(c.process.wait, 30) == 0, last_lines(log)
        finally:
            for replica in replicas:
                if replica.process.poll() is None:
                    replica.process.kill()
                    replica.process.wait()
