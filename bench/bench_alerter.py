"""Alerter throughput on a real Kafka broker: alert revisions/s with transactions on and off.

`run()` starts a throw-away single-node Kafka 4.1 (newsmon.shared.broker.LocalKafka, as the
tests do), writes matching Classified messages (two thirds new stories, one third later copies
that become alert updates), runs the alerter in this process and times how fast the consumer
group's committed offsets advance; the broker is stopped at the end. `python -m bench.bench_alerter`
prints the Markdown section.
"""

from __future__ import annotations

import asyncio
import json
import platform
import random
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from newsmon.alerter import app as alerter
from newsmon.alerter.grouping import (
    fingerprint,
    fingerprint_v1,
    jaccard_estimate,
    normalize,
    shingles,
)
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.messages import Article, Classified, encode
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from .support_kafka import committed_total, group_watcher, local_broker

REPO = Path(__file__).resolve().parents[1]
ITEMS = 3000
_STEMS = ("kursk", "troops", "shells", "missile", "treaty", "drone", "envoy", "tank", "port")
_VOCAB = [f"{stem}{k}" for stem in _STEMS for k in range(40)]


def _items(n: int, seed: int = 7) -> list[Classified]:
    rng = random.Random(seed)
    t0 = datetime.now(UTC)
    stories = [rng.sample(_VOCAB, 18) for _ in range(n)]
    out: list[Classified] = []
    for i in range(n):
        # Every third item is a later copy of an earlier story (an alert update).
        story = i - 1 if i % 3 == 2 else i
        words = stories[story]
        at = t0 + timedelta(seconds=i)
        article = Article(
            id=f"bench-{i}",
            feed="bench",
            source=f"Outlet {i % 7}",
            url=f"https://bench.example/{i}",
            title=" ".join(words[:7]),
            summary=" ".join(words[7:]),
            fetched=at,
            lang="en",
        )
        out.append(
            Classified(
                article=article,
                match=True,
                score=0.9,
                categories=("troops", "weapons"),
                classifier_version="bench",
                classified=at,
            )
        )
    return out


async def _produce(settings: Settings, items: list[Classified]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for item in items:
            await producer.send(
                settings.topics.classified, encode(item), key=item.article.id.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _measure(bootstrap: str, transactions: bool, items: list[Classified]) -> float:
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"b{uuid.uuid4().hex[:8]}",
        kafka_transactions=transactions,
        instance_id="bench",
        metrics_port=0,
    )
    await ensure_topics(settings)
    await _produce(settings, items)
    stop = asyncio.Event()
    task = asyncio.create_task(alerter.run(settings, Metrics(), stop))
    watcher = group_watcher(settings, "alerter")
    await watcher.start()
    try:
        start_count, started = 0, 0.0
        while True:
            done = await committed_total(
                watcher, settings.topics.classified, settings.topic_partitions
            )
            if done and not started:
                start_count, started = done, time.perf_counter()
            if done >= len(items):
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        await watcher.stop()
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    return (len(items) - start_count) / elapsed


def _rate(fn: Callable[[str, str], object], texts: Sequence[tuple[str, str]]) -> float:
    """Calls per CPU-second of this process (not wall time: the machine may be shared)."""
    for title, summary in texts[:20]:
        fn(title, summary)
    done, started = 0, time.process_time()
    while time.process_time() - started < 1.5:
        for title, summary in texts:
            fn(title, summary)
        done += len(texts)
    return done / (time.process_time() - started)


def _datasketch() -> Callable[[str, str], object] | None:
    """datasketch's MinHash (affine32 scheme, its 2.x default) over the same shingles, with the
    same CRC-32 shingle hash, so only the MinHash implementations differ."""
    try:
        from datasketch import MinHash
    except ImportError:
        return None
    permutations = MinHash(num_perm=128, seed=1).permutations

    def signature(title: str, summary: str) -> object:
        m = MinHash(num_perm=128, permutations=permutations, hashfunc=zlib.crc32, scheme="affine32")
        m.update_batch([s.encode() for s in shingles(normalize(title, summary))])
        return m.hashvalues

    return signature


def _estimate_error(fn: Callable[[str, str], tuple[int, ...]], pairs: int = 300) -> float:
    """Mean |estimate - true Jaccard| over pairs of texts sharing a random share of words."""
    rng = random.Random(3)
    errors = []
    for _ in range(pairs):
        a = rng.sample(_VOCAB, 40)
        keep = rng.randrange(10, 41)
        b = a[:keep] + rng.sample([w for w in _VOCAB if w not in a], 40 - keep)
        sa, sb = shingles(a), shingles(b)
        true = len(sa & sb) / len(sa | sb)
        errors.append(abs(jaccard_estimate(fn(" ".join(a), ""), fn(" ".join(b), "")) - true))
    return sum(errors) / len(errors)


def _fingerprints(items: list[Classified]) -> list[str]:
    texts = _corpus_texts() or [(i.article.title, i.article.summary) for i in items]
    v2, v1 = _rate(fingerprint, texts), _rate(fingerprint_v1, texts)
    sketch = _datasketch()
    ds_rate = _rate(sketch, texts) if sketch else None
    ds = f"{ds_rate:,.0f}" if ds_rate else "not installed"
    source = "development-set titles + summaries" if _corpus_texts() else "the items above"
    return [
        f"Story fingerprints alone (MinHash, 128 functions; {source}; items per CPU-second; "
        "estimate error = mean |estimate − true Jaccard| over 300 pairs of 40-word texts):",
        "",
        "| fingerprint | items per CPU-second | estimate error |",
        "|---|---:|---:|",
        f"| version 2 (numpy multiply-add-shift, CRC-32 shingles; default) | {v2:,.0f} "
        f"| {_estimate_error(fingerprint):.3f} |",
        f"| version 1 (pure Python, BLAKE2b, mod 2^61 − 1; the baseline) | {v1:,.0f} "
        f"| {_estimate_error(fingerprint_v1):.3f} |",
        f"| datasketch 2 MinHash (affine32), same shingles and hash | {ds} | — |",
        "",
        f"Version 2 is {v2 / v1:,.0f}x version 1"
        + (f" and {v2 / ds_rate:.2f}x datasketch" if ds_rate else "")
        + " in this run; datasketch is therefore not used (it would add scipy for no gain).",
    ]


def _corpus_texts() -> list[tuple[str, str]]:
    dev = REPO.parent / "shared/corpus/news/dev.jsonl"
    if not dev.exists():
        return []
    rows = [json.loads(line) for line in dev.read_text(encoding="utf-8").splitlines() if line]
    return [(r["title"], r["summary"]) for r in rows]


def run(items: int = ITEMS) -> str:
    data = _items(items)
    with local_broker() as kafka:
        rates = {tx: asyncio.run(_measure(kafka.bootstrap, tx, data)) for tx in (True, False)}
    fingerprints = _fingerprints(data)
    return "\n".join(
        [
            "## Alerter throughput",
            "",
            f"{items:,} matching Classified messages (two thirds new stories, one third later "
            "copies that become alert updates) on a local single-node Kafka 4.1, 3 partitions; "
            f"one alerter in this process, batch size 200; {platform.python_implementation()} "
            f"{platform.python_version()}. Each matching message publishes one alert revision to "
            "newsmon.alerts.v1 and two routed topics (troops, weapons) plus one state record. "
            "Rate = inputs committed per second once the first batch committed.",
            "",
            "| mode | alert revisions/s |",
            "|---|---|",
            f"| transactions on (exactly-once, default) | {rates[True]:,.0f} |",
            f"| transactions off (at-least-once) | {rates[False]:,.0f} |",
            "",
            *fingerprints,
        ]
    )


if __name__ == "__main__":
    print(run())
