"""The fetcher side of bench_fetcher, run in a fresh process per scenario so its peak RSS is its
own: `python -m bench.support_fetcher_load SCENARIO --port P ...` prints one JSON object.

Scenarios (all against bench/support_feedserver.py on 127.0.0.1 … 127.0.0.<hosts>):

* `throughput` — the real fetcher path, `Fetcher.poll_once` (fetch through http.py with the
  SSRF guard allowing 127.0.0.0/8, 304 / parse_feed in its worker, dedup against SeenIds,
  publish into a no-op sink, schedule, save state into the no-op sink), one task per feed
  polling again as soon as its poll ends, so the fetcher runs saturated; default settings
  (8 feeds in flight, 2 per host). Polls are counted over `--seconds` after a warm-up.
* `scale` — what `app.run` holds for `--feeds` feeds: the FeedConfigs, per-feed FeedState
  restored as from the state topic (validators, body hash, interval), a full SeenIds
  (NEWSMON_DEDUPE_CAPACITY · 2 keys, as rebuilt from the articles topic), one `poll_forever`
  task per feed under a TaskGroup, per-feed metrics; polls happen as scheduled (interval
  `--interval` s) for `--seconds`, then Prometheus scrapes /metrics once from the ops server
  of this process. Peak RSS is VmHWM of this process.
* `baseline` — a plain sequential loop: httpx.Client GET with If-None-Match, feedparser.parse,
  a set of entry ids; no guard, no caps, no normalization.

Every scenario reports event-loop lag where there is a loop: a ticker task measures how late
`asyncio.sleep(0.01)` wakes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
from newsmon.fetcher.app import Fetcher, PollConfig
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.http import FeedClient, make_client
from newsmon.fetcher.parse_workers import FeedParser, parse_workers
from newsmon.fetcher.publish import PublishConfig, Publisher
from newsmon.fetcher.ssrf import AllowList
from newsmon.fetcher.state import FeedState, KafkaSink, SeenIds, ensure_state_topic, url_key
from newsmon.shared.kafka import ensure_topics, make_producer
from newsmon.shared.lifecycle import run_main
from newsmon.shared.messages import Article, stable_id
from newsmon.shared.metrics import Metrics, serve_ops
from newsmon.shared.settings import Settings

ALLOW = "127.0.0.0/8"
NO_WORKERS = "this build's Fetcher has no parser hook (NEWSMON_FETCH_PARSE_WORKERS)"


def vm_hwm_mib() -> float:
    """Peak resident set size of this process (VmHWM), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vm_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def feeds_for(n: int, kind: str, hosts: int, port: int) -> list[FeedConfig]:
    """`kind` c (changing: always 200), s (static: 304 once validated) or mix (1 in 10 c)."""
    out = []
    for i in range(n):
        k = kind if kind != "mix" else ("c" if i % 10 == 0 else "s")
        out.append(
            FeedConfig(name=f"bench-{i}", url=f"http://127.0.0.{i % hosts + 1}:{port}/{k}/{i}.xml")
        )
    return out


class NullSink:
    """The fetcher's Sink without Kafka: counts what would have been published."""

    def __init__(self) -> None:
        self.articles = 0
        self.saves = 0

    async def publish(self, articles: list[Article]) -> None:
        self.articles += len(articles)

    async def save_state(self, feed: str, state: FeedState) -> None:
        self.saves += 1


class Ticker:
    """How late asyncio.sleep(0.01) wakes, in ms, while it runs."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.on = False

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            if self.on:
                self.lags.append((time.perf_counter() - start - 0.01) * 1000)

    def summary(self) -> dict[str, float]:
        if not self.lags:
            return {}
        q = statistics.quantiles(self.lags, n=100)
        return {"lag_p50_ms": q[49], "lag_p99_ms": q[98], "lag_max_ms": max(self.lags)}


def _settings(**extra: Any) -> Settings:
    return Settings(kafka_bootstrap="unused:9092", fetch_allow_hosts=ALLOW, **extra)


def _workers() -> int:
    return int(os.environ.get("NEWSMON_FETCH_PARSE_WORKERS", "0") or 0)


def _fetcher(
    settings: Settings,
    metrics: Metrics,
    sink: NullSink | KafkaSink,
    client: httpx.AsyncClient,
    seen: SeenIds,
    parser: FeedParser,
) -> Fetcher:
    """A Fetcher as app.run builds it (without WebSub or full-text pages)."""
    publisher = Publisher(PublishConfig.from_settings(settings), metrics, sink, seen)
    return Fetcher(
        PollConfig.from_settings(settings), metrics, sink, client, publisher, parser=parser
    )


class PollLoops:
    """Every feed of a run polled back to back and in turn, one task each, with the polls
    counted while `counting` is set. The first poll of every feed (validators learnt, whole
    bodies parsed, items remembered) is `warm_up`, not counted: the steady state is what is
    measured."""

    def __init__(self, fetcher: Fetcher, feeds: Sequence[FeedConfig]) -> None:
        self.fetcher = fetcher
        self.feeds = feeds
        self.states = {f.name: FeedState(url=f.url) for f in feeds}
        self.count = 0
        self.counting = False

    async def warm_up(self) -> None:
        for chunk in range(0, len(self.feeds), 64):
            await asyncio.gather(
                *(
                    self.fetcher.poll_once(f, self.states[f.name])
                    for f in self.feeds[chunk : chunk + 64]
                )
            )

    async def loop(self, feed: FeedConfig) -> None:
        state = self.states[feed.name]
        while True:
            # Due again the moment its poll ended, so the work slots (oldest due first) serve
            # the feeds in turn, as they serve poll_forever's. Left as poll_once planned it
            # (the feed's interval, 300 s or more, +-10 % jitter), the order was the jitter's:
            # a subset of the feeds polled over and over, on fewer hosts, reusing pooled
            # connections that polling every feed in turn cannot.
            state.next_poll_at = self.fetcher.clock()
            await self.fetcher.poll_once(feed, state)
            if self.counting:
                self.count += 1


def _workers_rss_mib(parser: FeedParser) -> float:
    """Resident memory of the parser's worker processes (they are not in VmHWM)."""
    pool = parser._pool
    total = 0.0
    for pid in list(pool._processes) if pool is not None else []:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def _client(settings: Settings) -> FeedClient:
    # As app.run builds it.
    return make_client(
        connect_s=settings.fetch_connect_timeout_s,
        read_s=settings.fetch_read_timeout_s,
        contact=settings.fetch_contact,
        allow=AllowList.parse(settings.fetch_allow_hosts),
        max_connections=max(16, settings.fetch_concurrency * 2),
    )


def _outcomes(metrics: Metrics) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for family in metrics.registry.collect():
        if family.name == "newsmon_feed_fetches":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    totals[sample.labels["outcome"]] += sample.value
    return dict(totals)


def _workers_cpu_s(parser: FeedParser) -> float:
    """CPU seconds the parser's worker processes used so far."""
    pool = parser._pool
    total = 0.0
    for pid in list(pool._processes) if pool is not None else []:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _scrape(metrics: Metrics) -> tuple[int, int]:
    """GET /metrics from an ops server of this process, as Prometheus asks for it; the page
    is read and dropped chunk by chunk (Prometheus holds it, in another process). Returns
    its size in bytes (uncompressed) and lines."""
    server = serve_ops(metrics, "127.0.0.1", 0)
    size = lines = 0
    try:
        headers = {
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            "Accept-Encoding": "gzip",
        }
        url = f"http://127.0.0.1:{server.port}/metrics"
        with httpx.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")
    finally:
        server.close()
    return size, lines


async def throughput(feeds: Sequence[FeedConfig], warmup: float, seconds: float) -> dict[str, Any]:
    settings = _settings()
    metrics, sink = Metrics(), NullSink()
    seen = SeenIds(settings.dedupe_capacity * 2)
    ticker = Ticker()
    with FeedParser(_workers()) as parser:
        async with _client(settings) as client:
            fetcher = _fetcher(settings, metrics, sink, client, seen, parser)
            polls = PollLoops(fetcher, feeds)
            await polls.warm_up()
            tick = asyncio.create_task(ticker.run())
            tasks = [asyncio.create_task(polls.loop(f)) for f in feeds]
            await asyncio.sleep(warmup)
            before = _outcomes(metrics)
            published0 = sink.articles
            polls.counting, ticker.on = True, True
            cpu0, wcpu0 = time.process_time(), _workers_cpu_s(parser)
            start = time.perf_counter()
            await asyncio.sleep(seconds)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            workers_cpu = _workers_cpu_s(parser) - wcpu0
            polls.counting, ticker.on = False, False
            after = _outcomes(metrics)
            published = sink.articles - published0
            workers_rss = _workers_rss_mib(parser)
            for task in [*tasks, tick]:
                task.cancel()
            await asyncio.gather(*tasks, tick, return_exceptions=True)
    outcomes = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {
        "polls": polls.count,
        "seconds": elapsed,
        "polls_per_min": polls.count / elapsed * 60,
        "outcomes": {k: v for k, v in outcomes.items() if v},
        "published": published,
        "cpu_s": cpu,
        "workers_cpu_s": workers_cpu,
        "rss_peak_mib": vm_hwm_mib(),
        "workers_rss_mib": workers_rss,
        **ticker.summary(),
    }


def _restored_state(feed: FeedConfig, now: float, rng: random.Random) -> FeedState:
    """What load_states hands back for a feed polled before the restart."""
    index = feed.name.rsplit("-", 1)[1]
    return FeedState(
        url=feed.url,
        etag=f'"s{index}"',
        last_modified="Sun, 01 Mar 2026 12:00:00 GMT",
        body_hash=stable_id(feed.url) * 4,
        interval_s=300.0,
        next_poll_at=now + rng.uniform(0, 5),
        last_success_at=now - 300,
    )


async def scale(
    feeds: Sequence[FeedConfig], interval: float, warmup: float, seconds: float, base: float
) -> dict[str, Any]:
    """`base`: VmRSS before the FeedConfigs were made."""
    settings = _settings(poll_interval_s=interval, poll_interval_max_s=interval)
    metrics, sink = Metrics(), NullSink()
    rng = random.Random(1)
    now = time.time()
    states = {f.name: _restored_state(f, now, rng) for f in feeds}
    after_states = vm_rss_mib()
    seen = SeenIds(settings.dedupe_capacity * 2)
    for i in range(settings.dedupe_capacity):
        url = f"https://outlet{i % 50}.example/news/{i}/{i * 7}"
        seen.add(f"urn:bench:old:{i}", f"bench-{i % len(feeds)}")
        seen.add(url_key(url), f"bench-{i % len(feeds)}")
    after_seen = vm_rss_mib()
    # The per-feed series a 304 poll creates, made up front to size them.
    per_feed = [
        metrics.feed_last_fetch_seconds,
        metrics.feed_fetches,
        metrics.feed_interval,
        metrics.feed_last_success,
        metrics.feed_error_streak,
    ]
    for feed in feeds:
        for family in per_feed:
            if family is metrics.feed_fetches:
                family.labels(feed.name, "not_modified")
            else:
                family.labels(feed.name)
    after_metrics = vm_rss_mib()
    ticker = Ticker()
    stop = asyncio.Event()
    parser = FeedParser(_workers())
    async with _client(settings) as client:
        fetcher = _fetcher(settings, metrics, sink, client, seen, parser)

        async def main() -> None:
            async with asyncio.TaskGroup() as group:  # as app.run
                for feed in feeds:
                    group.create_task(fetcher.poll_forever(feed, states[feed.name], stop))
                await stop.wait()

        runner = asyncio.create_task(main())
        tick = asyncio.create_task(ticker.run())
        await asyncio.sleep(warmup)
        before = sink.saves
        ticker.on = True
        start = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - start
        polls = sink.saves - before
        ticker.on = False
        workers_rss = _workers_rss_mib(parser)
        # One Prometheus scrape of all these series from the ops server of this process, as
        # Prometheus asks every 15 s or so (OpenMetrics, gzip): what rendering it holds
        # counts towards the peak too.
        rss_before_scrape = vm_rss_mib()
        scrape_bytes, scrape_lines = await asyncio.to_thread(_scrape, metrics)
        stop.set()
        await runner
        tick.cancel()
        parser.close()
    return {
        "feeds": len(feeds),
        "polls": polls,
        "polls_per_min": polls / elapsed * 60,
        "outcomes": _outcomes(metrics),
        "seen_keys": len(seen),
        "rss_base_mib": base,
        "rss_configs_states_mib": after_states,
        "rss_with_seen_mib": after_seen,
        "rss_with_metrics_mib": after_metrics,
        "per_feed_families": len(per_feed),
        "rss_peak_mib": vm_hwm_mib(),
        "rss_before_scrape_mib": rss_before_scrape,
        "scrape_bytes": scrape_bytes,
        "scrape_lines": scrape_lines,
        "rss_after_scrape_mib": vm_rss_mib(),
        "workers_rss_mib": workers_rss,
        **ticker.summary(),
    }


def proc_cpu_s(pid: int | None) -> float:
    """CPU seconds process `pid` used so far (0 when it is gone or unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def through_kafka(
    feeds: Sequence[FeedConfig],
    bootstrap: str,
    broker_pid: int | None,
    warmup: float,
    seconds: float,
    interval: float = 0.0,
) -> dict[str, Any]:
    """The fetcher as app.run builds it (NEWSMON_FETCH_PARSE_WORKERS from the environment,
    default settings otherwise), publishing through the real broker (acks=all, idempotent).
    `interval` 0: every feed polled again as soon as its poll ends (saturated: capacity).
    Otherwise every feed is scheduled by `poll_forever` as in production with a poll interval
    of `interval` s (NEWSMON_POLL_INTERVAL_S = _MAX_S), so len(feeds) / interval polls fall due
    per second: chosen above capacity, it measures goodput under overload."""
    fixed = {"poll_interval_s": interval, "poll_interval_max_s": interval} if interval else {}
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"bench{os.getpid()}",
        fetch_allow_hosts=ALLOW,
        topic_partitions=2,
        **fixed,
    )
    await ensure_topics(settings)
    await ensure_state_topic(settings)
    metrics = Metrics()
    seen = SeenIds(settings.dedupe_capacity * 2)
    ticker = Ticker()
    producer = make_producer(settings, client_id="bench-fetcher")
    await producer.start()
    try:
        with FeedParser(parse_workers(settings.fetch_parse_workers)) as parser:
            async with _client(settings) as client:
                sink = KafkaSink(settings.topics, producer)
                fetcher = _fetcher(settings, metrics, sink, client, seen, parser)
                polls = PollLoops(fetcher, feeds)
                await polls.warm_up()
                stop = asyncio.Event()
                tick = asyncio.create_task(ticker.run())
                tasks = [
                    asyncio.create_task(
                        fetcher.poll_forever(f, polls.states[f.name], stop)
                        if interval
                        else polls.loop(f)
                    )
                    for f in feeds
                ]
                await asyncio.sleep(warmup)
                before = _outcomes(metrics)
                delays0 = _poll_delays(metrics)
                control = await _start_control(seconds)
                polls.counting, ticker.on = True, True
                cpu0, wcpu0 = time.process_time(), _workers_cpu_s(parser)
                bcpu0 = proc_cpu_s(broker_pid)
                start = time.perf_counter()
                await asyncio.sleep(seconds)
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - cpu0
                workers_cpu = _workers_cpu_s(parser) - wcpu0
                broker_cpu = proc_cpu_s(broker_pid) - bcpu0
                polls.counting, ticker.on = False, False
                after = _outcomes(metrics)
                idle_lag = await _control_lag(control)
                delays = [b - a for a, b in zip(delays0, _poll_delays(metrics), strict=True)]
                saturated = metrics.registry.get_sample_value("newsmon_fetcher_saturated")
                workers_rss = _workers_rss_mib(parser)
                for task in [*tasks, tick]:
                    task.cancel()
                await asyncio.gather(*tasks, tick, return_exceptions=True)
                workers = parser.workers
    finally:
        await producer.stop()
    outcomes = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    ok = sum(outcomes.get(k, 0) for k in ("ok", "not_modified", "unchanged"))
    polled = polls.count if not interval else sum(outcomes.values())
    return {
        "polls": polled,
        "seconds": elapsed,
        "polls_per_min": polled / elapsed * 60,
        "interval_s": interval,
        "due_per_min": len(feeds) / interval * 60 if interval else 0.0,
        "mean_poll_delay_s": delays[1] / max(delays[0], 1),
        "saturated": saturated,
        "idle_lag_p99_ms": idle_lag.get("lag_p99_ms", 0.0),
        "idle_lag_p50_ms": idle_lag.get("lag_p50_ms", 0.0),
        "ok_per_min": ok / elapsed * 60,
        "outcomes": {k: v for k, v in outcomes.items() if v},
        "publish_failures": outcomes.get("kafka", 0),
        "cpu_s": cpu,
        "workers_cpu_s": workers_cpu,
        "broker_cpu_s": broker_cpu,
        "workers": workers,
        "rss_peak_mib": vm_hwm_mib(),
        "workers_rss_mib": workers_rss,
        **ticker.summary(),
    }


def _poll_delays(metrics: Metrics) -> tuple[float, float]:
    """(count, sum) of newsmon_fetcher_poll_delay_seconds: how late polls started."""
    get = metrics.registry.get_sample_value
    return (
        get("newsmon_fetcher_poll_delay_seconds_count") or 0.0,
        get("newsmon_fetcher_poll_delay_seconds_sum") or 0.0,
    )


async def _start_control(seconds: float) -> asyncio.subprocess.Process:
    """An idle_ticker process measuring for `seconds` from now (the loop-lag control)."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.support_fetcher_load", "idle_ticker", "--port", "0"),
        *("--warmup", "0", "--seconds", str(seconds)),
        stdout=asyncio.subprocess.PIPE,
    )


async def _control_lag(control: asyncio.subprocess.Process) -> dict[str, float]:
    out, _ = await control.communicate()
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def idle_ticker(warmup: float, seconds: float) -> dict[str, Any]:
    """The control for loop lag: a process whose loop does nothing but the Ticker, run beside
    a scenario. Its lag is what the machine (other processes on the cores) adds to any loop."""
    ticker = Ticker()
    tick = asyncio.create_task(ticker.run())
    await asyncio.sleep(warmup)
    ticker.on = True
    await asyncio.sleep(seconds)
    tick.cancel()
    return ticker.summary()


def baseline(feeds: Sequence[FeedConfig], warmup: float, seconds: float) -> dict[str, Any]:
    etags: dict[str, str] = {}
    seen: set[str] = set()
    count = 0
    with httpx.Client(timeout=httpx.Timeout(10.0, read=20.0)) as client:

        def poll(feed: FeedConfig) -> None:
            headers = {"If-None-Match": etags[feed.url]} if feed.url in etags else {}
            response = client.get(feed.url, headers=headers)
            if response.status_code == 304:
                return
            response.raise_for_status()
            etags[feed.url] = response.headers.get("ETag", "")
            parsed = feedparser.parse(response.content)
            for entry in parsed.entries:
                seen.add(entry.get("id") or entry.get("link", ""))

        for feed in feeds:  # learn the validators
            poll(feed)
        end = time.perf_counter() + warmup
        while time.perf_counter() < end:
            for feed in feeds:
                poll(feed)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for feed in feeds:
                poll(feed)
                count += 1
                if time.perf_counter() - start >= seconds:
                    break
        elapsed = time.perf_counter() - start
    return {"polls": count, "seconds": elapsed, "polls_per_min": count / elapsed * 60}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "scenario", choices=["throughput", "scale", "baseline", "kafka", "idle_ticker"]
    )
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--broker-pid", type=int, default=None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--kind", choices=["c", "s", "mix", "r"], default="c")
    parser.add_argument("--feeds", type=int, default=200)
    # scale: the feeds' poll interval; kafka: 0 = back to back, else scheduled (overload)
    parser.add_argument("--interval", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    base = vm_rss_mib()
    feeds = feeds_for(args.feeds, args.kind, args.hosts, args.port)
    if args.scenario == "baseline":
        result = baseline(feeds, args.warmup, args.seconds)
    elif args.scenario == "kafka":
        result = asyncio.run(
            through_kafka(
                feeds,
                args.bootstrap,
                args.broker_pid,
                args.warmup,
                args.seconds,
                args.interval or 0.0,
            )
        )
    elif args.scenario == "idle_ticker":
        result = asyncio.run(idle_ticker(args.warmup, args.seconds))
    elif args.scenario == "throughput":
        # On the event loop NEWSMON_EVENT_LOOP names, as `newsmon` runs it (services/cli.py).
        loop = "uvloop" if os.environ.get("NEWSMON_EVENT_LOOP") == "uvloop" else "asyncio"
        result = run_main(throughput(feeds, args.warmup, args.seconds), loop)
    else:
        result = asyncio.run(
            scale(
                feeds,
                60.0 if args.interval is None else args.interval,
                args.warmup,
                args.seconds,
                base,
            )
        )
    result["parse_workers"] = os.environ.get("NEWSMON_FETCH_PARSE_WORKERS", "")
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
