"""End to end through the real broker: from an item appearing in a feed to its alert on
newsmon.alerts.v1, with `newsmon run` (one process) and with one process per service.

A local news site (bench/support_newsfeed.py) publishes real-looking items (the development
set's titles and summaries when present, read only; else synthetic sentences), on and off
topic, at 1, 10 and 100 items/s over 10 feeds that the fetcher polls every second. A
read_committed consumer receives the alerts. For every alerted item:

- visible → alert: from the item appearing in its feed to the alert reaching the consumer;
- poll → alert: from the first response that carried the item (what the fetcher could do
  once it had polled; the poll interval is the operator's choice);
- the stages, from the alert's own timestamps: fetched (the fetcher's time of the poll) →
  classified → alerted → received by the consumer (the alerter's transaction committed).

Then the largest sustained rate: articles are produced straight to the articles topic at
rising rates for 10 s each (the fetcher is measured apart, in bench_fetcher); a rate is
sustained while the classifier's and the alerter's lag at the end of the step is no larger
than at its middle plus one second of input. Peak RSS (VmHWM) of each process at the end.
`python -m bench e2e` runs only this.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from newsmon.classifier.engine import Classifier
from newsmon.shared.broker import free_port
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.messages import Article, encode
from newsmon.shared.settings import Settings
from prometheus_client.parser import text_string_to_metric_families

from .bench_classifier import _synthetic
from .support_kafka import (
    REPO,
    Child,
    broker,
    committed_total,
    group_watcher,
    loadavg,
    service_env,
    start_child,
)
from .support_newsfeed import NewsSite, publish_at, serve

DEV = REPO.parent / "shared/corpus/news/dev.jsonl"
LOGS = REPO / ".cache" / "bench"
FEEDS = 10
RATES = ((1, 30.0), (10, 20.0), (100, 10.0))
SUSTAIN_RATES = (100, 200, 400, 800, 1600, 3200, 6400)
MATCH_EVERY = 4  # one item in four is on topic
STEP_S = 10.0


def _corpus() -> list[tuple[str, str]]:
    if DEV.exists():
        rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line]
        return [(r["title"], r["summary"]) for r in rows]
    return [(i["title"], i["summary"]) for i in _synthetic(800, 3, seed=1)]


@functools.cache
def texts() -> tuple[tuple[str, str], ...]:
    """The corpus reordered so that one item in MATCH_EVERY matches (the classifier decides,
    here, once): every step has the same share of alerts, whatever slice it gets."""
    classifier = Classifier.default()
    on, off = [], []
    for title, summary in _corpus():
        verdict = classifier.classify(title=title, summary=summary)
        (on if verdict.match else off).append((title, summary))
    if not on or not off:
        return tuple(on or off)
    out: list[tuple[str, str]] = []
    for k in range(max(len(on) * MATCH_EVERY, len(off))):
        out.append(on[(k // MATCH_EVERY) % len(on)] if k % MATCH_EVERY == 0 else off[k % len(off)])
    return tuple(out)


@dataclass
class Received:
    at: float  # wall time the consumer got the alert
    alert: dict[str, Any]


@dataclass
class AlertWatcher:
    """Reads the alerts topic (read_committed) from its end; keeps the first alert per item."""

    bootstrap: str
    topic: str
    site: NewsSite
    alerts: dict[int, Received] = field(default_factory=dict)
    last: float = 0.0

    async def run(self, ready: asyncio.Event, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, isolation_level="read_committed", group_id=None
        )
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(self.topic) or set()
            while not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            ready.set()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for records in batch.values():
                    for record in records:
                        alert = json.loads(record.value)
                        seq = self.site.seq_of(alert.get("url", ""))
                        if seq is not None and seq not in self.alerts:
                            self.alerts[seq] = Received(now, alert)
                            self.last = now
        finally:
            await asyncio.sleep(0)
            await consumer.stop()


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _pct(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v, v
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[94], q[98]


@dataclass
class RateResult:
    rate: float
    published: int
    polled: int
    expected: int  # matching items among those published
    alerted: int
    visible: tuple[float, float, float]
    poll: tuple[float, float, float]
    stages: dict[str, float]  # median seconds per stage


def _result(rate: float, seqs: list[int], site: NewsSite, watcher: AlertWatcher) -> RateResult:
    got = [(s, watcher.alerts[s]) for s in seqs if s in watcher.alerts]
    visible = [r.at - site.visible[s] for s, r in got]
    poll = [r.at - site.served[s] for s, r in got if s in site.served]
    stages: dict[str, list[float]] = {
        "visible → polled": [],
        "polled → fetched": [],
        "fetched → classified": [],
        "classified → alerted": [],
        "alerted → received": [],
    }
    for s, r in got:
        a = r.alert
        fetched, classified, alerted = _ts(a["fetched"]), _ts(a["classified"]), _ts(a["alerted"])
        stages["visible → polled"].append(site.served.get(s, fetched) - site.visible[s])
        stages["polled → fetched"].append(fetched - site.served.get(s, fetched))
        stages["fetched → classified"].append(classified - fetched)
        stages["classified → alerted"].append(alerted - classified)
        stages["alerted → received"].append(r.at - alerted)
    medians = {k: statistics.median(v) if v else float("nan") for k, v in stages.items()}
    polled = sum(1 for s in seqs if s in site.served)
    expected = sum(1 for s in seqs if s % len(site.texts) % MATCH_EVERY == 0)
    return RateResult(
        rate, len(seqs), polled, expected, len(got), _pct(visible), _pct(poll), medians
    )


async def _until_quiet(watcher: AlertWatcher, quiet_s: float, limit_s: float) -> None:
    """Wait until no new alert came for quiet_s (the stragglers of a step are in)."""
    start = time.time()
    while time.time() - start < limit_s:
        await asyncio.sleep(0.25)
        if time.time() - max(watcher.last, start) >= quiet_s:
            return


async def _lag(settings: Settings) -> dict[str, int]:
    """Unconsumed input of the classifier and the alerter groups (end offset - committed)."""
    out = {}
    for service, topic in (
        ("classifier", settings.topics.articles),
        ("alerter", settings.topics.classified),
    ):
        consumer = group_watcher(settings, service)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
            ends = await consumer.end_offsets(tps)
            done = await committed_total(consumer, topic, settings.topic_partitions)
            out[service] = sum(ends.values()) - done
        finally:
            await consumer.stop()
    return out


@dataclass
class SustainStep:
    rate: int
    achieved: float
    lag_mid: dict[str, int]
    lag_end: dict[str, int]
    cores: dict[str, float] = field(default_factory=dict)  # CPU-s per wall-s of each process
    # Run-queue seconds per wall-s of each process: runnable, waiting for a core.
    waits: dict[str, float] = field(default_factory=dict)

    @property
    def sustained(self) -> bool:
        return all(
            self.lag_end[s] <= self.lag_mid[s] + self.rate and self.achieved >= 0.9 * self.rate
            for s in self.lag_end
        )


def _step_articles(rate: int, seconds: float, tag: str) -> list[tuple[float, bytes, bytes]]:
    """(due second, key, value) of a step's articles, encoded before the step starts: the
    injector must not be what bounds the rate. `fetched` is each article's due time."""
    corpus = _corpus()
    start = time.time()
    out = []
    for k in range(int(rate * seconds)):
        title, summary = corpus[k % len(corpus)]
        due = k / rate
        article = Article(
            id=f"{tag}-{k}",
            feed="bench",
            source="Bench Outlet",
            url=f"https://bench.example/{tag}/{k}",
            title=title,
            summary=summary,
            fetched=datetime.fromtimestamp(start + due, UTC),
        )
        out.append((due, article.id.encode(), encode(article)))
    return out


async def _inject(
    bootstrap: str, settings: Settings, articles: list[tuple[float, bytes, bytes]]
) -> float:
    """Produce the articles to the articles topic, each at its due time (in 10 ms ticks);
    returns the rate achieved."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        start = time.monotonic()
        futures, k = [], 0
        while k < len(articles):
            now = time.monotonic() - start
            while k < len(articles) and articles[k][0] <= now:
                _, key, value = articles[k]
                futures.append(await producer.send(settings.topics.articles, value, key=key))
                k += 1
            await asyncio.sleep(0.01)
        await asyncio.gather(*futures)
        return len(articles) / max(time.monotonic() - start, articles[-1][0] if articles else 1)
    finally:
        await producer.stop()


async def _sustain(
    bootstrap: str, settings: Settings, children: dict[str, Child]
) -> list[SustainStep]:
    steps: list[SustainStep] = []
    for rate in SUSTAIN_RATES:
        articles = _step_articles(rate, STEP_S, f"s{rate}-{uuid.uuid4().hex[:6]}")
        cpu0 = {name: child.cpu_seconds() for name, child in children.items()}
        wait0 = {name: child.run_queue_seconds() for name, child in children.items()}
        started = time.monotonic()
        task = asyncio.create_task(_inject(bootstrap, settings, articles))
        await asyncio.sleep(STEP_S / 2)
        mid = await _lag(settings)
        achieved = await task
        wall = time.monotonic() - started
        cores = {n: (c.cpu_seconds() - cpu0[n]) / wall for n, c in children.items()}
        waits = {n: (c.run_queue_seconds() - wait0[n]) / wall for n, c in children.items()}
        end = await _lag(settings)
        step = SustainStep(rate, achieved, mid, end, cores, waits)
        steps.append(step)
        if not step.sustained:
            break
        # Let the backlog of this step drain before the next one.
        for _ in range(60):
            lag = await _lag(settings)
            if all(v < 50 for v in lag.values()):
                break
            await asyncio.sleep(0.5)
    return steps


def _latency_metric(port: int) -> str:
    """Mean and bucketed p50/p95 of the alerter's own latency histogram (since the fetch), over
    every alert so far (warm-up and the three rates)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "newsmon_alert_latency_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("since") != "fetched":
                continue
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    if not count:
        return "no alerts counted"

    def upper(q: float) -> str:
        for le, seen in sorted(buckets):
            if seen >= q * count:
                return f"≤ {le * 1000:,.0f}" if le != float("inf") else "> last bucket"
        return "?"

    return (
        f"{count:,.0f} alerts, mean {total / count * 1000:,.0f} ms, p50 {upper(0.5)} ms, "
        f"p95 {upper(0.95)} ms"
    )


def _feeds_file(directory: Path, base: str) -> Path:
    path = directory / "feeds.toml"
    path.write_text(
        "".join(
            f'[[feed]]\nurl = "{base}/feed/{i}.xml"\nname = "bench{i}"\ninterval = 1\n'
            "interval_max = 1\nfull_text = false\n\n"
            for i in range(FEEDS)
        ),
        encoding="utf-8",
    )
    return path


@dataclass
class Scenario:
    topology: str
    rates: list[RateResult]
    steps: list[SustainStep]
    rss: dict[str, float]
    load: str
    polls: int
    metric: str  # the alerter's newsmon_alert_latency_seconds{since="fetched"} after the rates


TOPOLOGIES = {
    "newsmon run": ["run"],
    "one process per service": ["fetcher", "classifier", "alerter"],
}


async def scenario(
    bootstrap: str,
    topology: str,
    rates: Sequence[tuple[float, float]] = RATES,
    sustain: bool = True,
    **env: str,
) -> Scenario:
    run_id = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=f"e{run_id}", instance_id="bench", metrics_port=0
    )
    await ensure_topics(settings)
    site = NewsSite(texts(), FEEDS, run_id)
    children: dict[str, Child] = {}
    with serve(site) as base, tempfile.TemporaryDirectory() as tmp:
        feeds = _feeds_file(Path(tmp), base)
        common = dict(
            NEWSMON_FEEDS_FILE=str(feeds),
            NEWSMON_FETCH_ALLOW_HOSTS="127.0.0.1",
            NEWSMON_FETCH_FULL_TEXT="off",
            **env,
        )
        watcher = AlertWatcher(bootstrap, settings.topics.alerts, site)
        ready, stop = asyncio.Event(), asyncio.Event()
        watch = asyncio.create_task(watcher.run(ready, stop))
        try:
            await asyncio.wait_for(ready.wait(), 60)
            ports: dict[str, int] = {}
            for name in TOPOLOGIES[topology]:
                ports[name] = free_port()
                extra = dict(common, NEWSMON_METRICS_PORT=str(ports[name]))
                if name == "run":
                    extra["NEWSMON_WEB_PORT"] = str(free_port())
                children[name] = start_child(
                    [name],
                    service_env(settings, **extra),
                    LOGS / f"e2e-{name}-{settings.topic_prefix}.log",
                )
            # Warm up: one item a second until the first alert arrives (groups joined,
            # producers started, caches warm).
            deadline = time.time() + 180
            while not watcher.alerts and time.time() < deadline:
                await asyncio.to_thread(publish_at, site, 2, 1.0)
            if not watcher.alerts:
                raise RuntimeError(f"no alert within 180 s; see {LOGS}")
            await _until_quiet(watcher, 3, 20)
            results = []
            for rate, seconds in rates:
                seqs = await asyncio.to_thread(publish_at, site, rate, seconds)
                await _until_quiet(watcher, 5, 60)
                results.append(_result(rate, seqs, site, watcher))
            metric = await asyncio.to_thread(_latency_metric, ports.get("run") or ports["alerter"])
            steps = await _sustain(bootstrap, settings, children) if sustain else []
            rss = {name: child.peak_rss_mb() for name, child in children.items()}
            return Scenario(topology, results, steps, rss, loadavg(), site.polls, metric)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watch, 10)
            for child in children.values():
                child.stop()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def _rate_rows(s: Scenario) -> list[str]:
    rows = []
    for r in s.rates:
        v, p = r.visible, r.poll
        stages = " / ".join(_ms(x) for x in r.stages.values())
        rows.append(
            f"| {s.topology} | {r.rate:g} | {r.published:,} | {r.polled:,} "
            f"| {r.alerted:,} / {r.expected:,} "
            f"| {_ms(v[0])} / {_ms(v[1])} / {_ms(v[2])} | {_ms(p[0])} / {_ms(p[1])} / {_ms(p[2])} "
            f"| {stages} |"
        )
    return rows


def _sustain_rows(s: Scenario) -> list[str]:
    rows = []
    for step in s.steps:
        lag = ", ".join(f"{k} {step.lag_mid[k]:,} → {step.lag_end[k]:,}" for k in step.lag_end)
        cores = ", ".join(f"{k} {v:.2f} / {step.waits[k]:.2f}" for k, v in step.cores.items())
        rows.append(
            f"| {s.topology} | {step.rate:,} | {step.achieved:,.0f} | {lag} | {cores} "
            f"| {'yes' if step.sustained else 'no'} |"
        )
    return rows


def _best(s: Scenario) -> str:
    ok = [step.rate for step in s.steps if step.sustained]
    return f"{max(ok):,}" if ok else f"< {SUSTAIN_RATES[0]:,}"


# Settings that trade throughput for latency, measured at 10 items/s with `newsmon run`.
LATENCY_VARIANTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("NEWSMON_KAFKA_LINGER_MS=5 (the default before)", {"NEWSMON_KAFKA_LINGER_MS": "5"}),
    ("NEWSMON_KAFKA_TRANSACTIONS=false", {"NEWSMON_KAFKA_TRANSACTIONS": "false"}),
)


TXN_ROUNDS = 40


async def _back_to_back(bootstrap: str, retry_backoff_ms: int, with_output: bool) -> float:
    """Median ms of TXN_ROUNDS transactions begun right after each other, each committing a
    consumer offset (and one record when with_output), as a pipeline stage does."""
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}", instance_id="bench"
    )
    await ensure_topics(settings, [settings.topics.articles])
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"bench-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
        acks="all",
        retry_backoff_ms=retry_backoff_ms,
    )
    await producer.start()
    took = []
    try:
        tp = TopicPartition(settings.topics.articles, 0)
        for offset in range(1, TXN_ROUNDS + 1):
            started = time.perf_counter()
            async with producer.transaction():
                if with_output:
                    await (await producer.send(tp.topic, b"x", key=b"k"))
                await producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(offset, "")}, f"{settings.topic_prefix}-g"
                )
            took.append((time.perf_counter() - started) * 1000)
    finally:
        await producer.stop()
    return statistics.median(took)


def _back_to_back_rows(bootstrap: str) -> list[str]:
    rows = []
    for with_output in (False, True):
        ms = {rb: asyncio.run(_back_to_back(bootstrap, rb, with_output)) for rb in (100, 20)}
        kind = "one record + offsets" if with_output else "offsets only (no outputs)"
        rows.append(f"| {kind} | {ms[100]:,.0f} | {ms[20]:,.0f} |")
    return rows


def run() -> str:
    with broker() as bootstrap:
        back_to_back = _back_to_back_rows(bootstrap)
        results = [asyncio.run(scenario(bootstrap, t)) for t in TOPOLOGIES]
        variants = [
            asyncio.run(scenario(bootstrap, "newsmon run", ((10, 20.0),), sustain=False, **env))
            for _, env in LATENCY_VARIANTS
        ]
    for (name, _), v in zip(LATENCY_VARIANTS, variants, strict=True):
        v.topology = f"newsmon run, {name}"
    lines = [
        "## End to end: feed item → alert",
        "",
        "A local news site publishes items (development-set titles and summaries, one in "
        f"{MATCH_EVERY} on topic; only those raise alerts) over {FEEDS} feeds that the fetcher "
        "polls "
        "every second (interval = interval_max = 1 s; default settings otherwise: transactions "
        "on, batch 200, linger 0); a read_committed consumer receives the alerts. Latency "
        "percentiles p50 / p95 / p99 in ms. *visible → alert* includes waiting for the next "
        "poll (≤ 1 s here); *poll → alert* starts at the first response that carried the item. "
        "Stage medians in ms: visible → polled / polled → fetched (the fetcher's timestamp is "
        "taken at the poll, so this may be ≤ 0) / fetched → classified / classified → alerted "
        "/ alerted → received (the alerter's transaction committed and the consumer fetched).",
        "",
        "| processes | items/s | items | polled | alerts / matching | visible → alert ms "
        "| poll → alert ms "
        "| stages ms |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for s in results:
        lines += _rate_rows(s)
    for s in variants:
        lines += _rate_rows(s)
    lines += [
        "",
        f"Largest sustained rate through classifier + alerter: articles produced straight to "
        f"the articles topic, {STEP_S:.0f} s a step; lag = unconsumed input of each group at "
        "the middle → end of the step; sustained when it did not grow by more than one second "
        "of input. The articles of a step are encoded before it starts and sent in 10 ms ticks "
        "(the injector is not the bound); CPU / waiting = each service process's CPU seconds "
        "per wall second during the step (1.00 = one core), then the seconds per wall second "
        "its threads were runnable but waited for a core (Linux schedstat run-queue time: "
        "what the machine's other work, the broker included, took from it).",
        "",
        "| processes | offered items/s | achieved | lag mid → end | CPU / waiting, s per s "
        "| sustained |",
        "|---|---:|---:|---|---|---|",
    ]
    for s in results:
        lines += _sustain_rows(s)
    lines += [
        "",
        "The alerter's own latency metric (newsmon_alert_latency_seconds, since the fetch; "
        "bucketed) over the warm-up and the three rates, and each process's peak memory at "
        "the end (after the sustained-rate steps):",
        "",
        "| processes | latency metric | largest sustained items/s | peak RSS MB (VmHWM) "
        "| polls | load at end |",
        "|---|---|---:|---|---:|---|",
    ]
    for s in results:
        rss = ", ".join(f"{k} {v:,.0f}" for k, v in s.rss.items())
        lines.append(f"| {s.topology} | {s.metric} | {_best(s)} | {rss} | {s.polls:,} | {s.load} |")
    lines += [
        "",
        f"Transactions back to back ({TXN_ROUNDS} in a row, median ms each), with aiokafka's "
        "default retry_backoff_ms and with the 20 ms newsmon's transactional producers use: a "
        "transaction begun while the broker still writes the previous one's markers is "
        "answered CONCURRENT_TRANSACTIONS and retried after that backoff (aiokafka shortens "
        "it to 20 ms itself only when the first request is AddPartitionsToTxn).",
        "",
        "| transaction | retry_backoff_ms 100 | 20 (newsmon) |",
        "|---|---:|---:|",
        *back_to_back,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
