"""Fetcher throughput, memory and event-loop lag on the real code path, against a local feed
server in its own process, beside a plain sequential httpx + feedparser loop run the same way.

Processes (so nothing shares a GIL it would not share in production):

* bench/support_feedserver.py — the feed server (asyncio, HTTP/1.1) on 127.0.0.1 … 127.0.0.8,
  serving generated RSS feeds of 30 items (about 30 KB): `/c/<i>` changes on every request
  (always 200, one new item), `/s/<i>` never changes (304 when If-None-Match matches).
* bench/support_fetcher_load.py — one fresh process per scenario running the fetcher:
  `Fetcher.poll_once` / `poll_forever` from services/fetcher/app.py with the HTTP client of
  app.run (SSRF guard allowing 127.0.0.0/8), parse_feed, dedup against SeenIds, scheduling and
  metrics, default settings (8 feeds in flight, 2 per host). Kafka is not part of it: articles
  and feed states go to a no-op sink with the fetcher Sink's signature. Full-text page fetches
  and WebSub are off.

`run()` returns the Markdown section; `python -m bench.bench_fetcher` prints it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.parse import parse_feed
from newsmon.shared.broker import LocalKafka, free_port

from bench.bench_alerter import _baseline_path
from bench.support_feedserver import Feeds, real_templates
from bench.support_fetcher_load import NO_WORKERS, proc_cpu_s

REPO = Path(__file__).resolve().parents[1]
HOSTS = 8
MANY_HOSTS = 64  # host addresses of the realistic scenario (and what the feed server listens on)
REAL_FEEDS = 200
FEEDS = 200  # feeds polled round and round in the throughput scenarios
SCALE_FEEDS = 10_000
OVERLOAD = 2.0  # due polls per capacity in the overload scenario


def _load(
    port: int,
    scenario: str,
    *args: str,
    workers: int | str = 0,
    hosts: int = HOSTS,
    event_loop: str = "asyncio",
    tree: Path | None = None,
) -> dict[str, Any] | None:
    """Run a scenario of bench/support_fetcher_load.py in a fresh process; `tree`: the
    sources of an earlier commit (`_before_tree`) instead of this checkout's."""
    env = {
        **os.environ,
        "NEWSMON_FETCH_PARSE_WORKERS": str(workers),
        "NEWSMON_EVENT_LOOP": event_loop,
    }
    env.pop("NEWSMON_KAFKA_BOOTSTRAP", None)
    if tree is not None:
        env["PYTHONPATH"] = f"{tree / 'path'}{os.pathsep}{tree}"
    out = subprocess.run(
        [
            *(sys.executable, "-m", "bench.support_fetcher_load", scenario),
            *("--port", str(port), "--hosts", str(hosts), *args),
        ],
        cwd=tree or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if NO_WORKERS in out.stderr:
        return None
    if out.returncode != 0:
        raise RuntimeError(f"{scenario} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# main before session 4's fetcher work (transport-level GET, per-feed series cut), measured
# beside this checkout in the same run: CPU per poll moves with the machine's load.
BEFORE_REF = "b368062"


def _before_tree() -> Path | None:
    """The services, shared and bench folders of BEFORE_REF, importable as `newsmon` and
    `bench` from the returned folder (bench_alerter builds the package part); None without
    git."""
    path = _baseline_path(BEFORE_REF)
    if path is None:
        return None
    root = path.parent
    if not (root / "bench").is_dir():
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", BEFORE_REF, "bench"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def _need(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        raise RuntimeError(NO_WORKERS)
    return result


def _parse_costs() -> tuple[float, float, int]:
    """ms per parse_feed and per plain feedparser.parse of one generated 30-item feed, and its
    size; one core, this process."""
    body = Feeds(t0=time.time() - 86_400).body(7, 1)
    feed = FeedConfig(name="bench-7", url="http://127.0.0.1/c/7.xml")
    now = datetime.now(UTC)
    ct = "application/rss+xml; charset=utf-8"

    def ours() -> object:
        return parse_feed(body, feed=feed, fetched_at=now, content_type=ct)

    def plain() -> object:
        return feedparser.parse(body)

    costs = []
    for fn in (ours, plain):
        fn()
        start = time.perf_counter()
        for _ in range(40):
            fn()
        costs.append((time.perf_counter() - start) / 40 * 1000)
    return costs[0], costs[1], len(body)


def _pool_note(r: dict[str, Any] | None) -> str:
    if r is None:
        return ""
    return (
        f" With 2 parser processes the loop keeps {r['cpu_s'] / max(r['polls'], 1) * 1000:.1f}"
        " ms per poll (HTTP, pickling, dedup, metrics) and parsing runs on both cores; the "
        f"worker processes held {r['workers_rss_mib']:.0f} MB resident together."
    )


def _lag(r: dict[str, Any]) -> str:
    return f"{r['lag_p50_ms']:.1f} / {r['lag_p99_ms']:.0f} / {r['lag_max_ms']:.0f}"


def _verdict(value: float, target: float, higher: bool = True) -> str:
    ok = value >= target if higher else value <= target
    return "meets" if ok else "misses"


def _cpu_ms_per_call(calls: list[Any]) -> float:
    start = time.process_time()
    for call in calls:
        call()
    return (time.process_time() - start) / len(calls) * 1000


def _real_parse_costs() -> list[tuple[str, int, float, float, float]]:
    """Per realistic body (template, KB): ms of one core for plain feedparser.parse, parse_feed
    of the whole body (a feed's first poll, or the code before item memos) and parse_feed with
    the memo of the previous version (29 of 30 items unchanged, the steady state)."""
    now = datetime.now(UTC)
    feed = FeedConfig(name="bench", url="http://127.0.0.1/r/1.xml")
    rows = []
    for template in real_templates():
        bodies = [template.body("outlet1.example", 1, v) for v in range(12)]
        memos = [parse_feed(b, feed=feed, fetched_at=now).memo for b in bodies]
        pairs = list(zip(bodies[1:], memos[:-1], strict=True))
        plain = [functools.partial(feedparser.parse, b) for b, _ in pairs]
        whole = [functools.partial(parse_feed, b, feed=feed, fetched_at=now) for b, _ in pairs]
        memo = [
            functools.partial(parse_feed, b, feed=feed, fetched_at=now, memo=m) for b, m in pairs
        ]
        costs = (_cpu_ms_per_call(plain), _cpu_ms_per_call(whole), _cpu_ms_per_call(memo))
        rows.append((template.name, len(bodies[0]) // 1024, *costs))
    return rows


def _kafka_runs(port: int, seconds: float) -> dict[str, dict[str, Any] | None]:
    """The realistic scenario through a throw-away broker: parse workers auto and 0 at
    saturation (capacity), then auto with twice as many polls falling due as that capacity
    (`overload`)."""
    broker_port = free_port()
    kafka = LocalKafka(
        REPO / ".cache" / "kafka",
        port=broker_port,
        name=f"bench-fetcher-{broker_port}",
        pom=REPO / "deploy/kafka/pom.xml",
    )
    kafka.start()
    try:
        asyncio.run(kafka.wait_ready(timeout_s=120))
        pid = kafka.running_pid()
        k = [
            *("--kind", "r", "--feeds", str(REAL_FEEDS), "--bootstrap", kafka.bootstrap),
            *("--broker-pid", str(pid or 0), "--seconds", str(seconds), "--warmup", "4"),
        ]
        runs: dict[str, dict[str, Any] | None] = {
            "auto": _load(port, "kafka", *k, workers="auto", hosts=MANY_HOSTS)
        }
        auto = runs["auto"]
        if auto and auto["ok_per_min"] > 0:
            # Right after the capacity run, as the machine's other load changes over minutes:
            # the poll interval at which REAL_FEEDS feeds fall due at OVERLOAD × capacity; the
            # warm-up lets the queue of due polls build up (intervals stretch) first.
            interval = REAL_FEEDS * 60 / (OVERLOAD * auto["ok_per_min"])
            o = [*k[: k.index("--seconds")], "--seconds", str(seconds)]
            o += ["--warmup", f"{max(8.0, 3 * interval):.1f}", "--interval", f"{interval:.3f}"]
            runs["overload"] = _load(port, "kafka", *o, workers="auto", hosts=MANY_HOSTS)
        runs["thread"] = _load(port, "kafka", *k, workers=0, hosts=MANY_HOSTS)
        return runs
    finally:
        kafka.stop()
        shutil.rmtree(kafka.run_dir, ignore_errors=True)


def _kafka_row(name: str, r: dict[str, Any] | None, base: dict[str, Any]) -> str:
    if r is None:
        return f"| {name} | not in this build | | | | | | | |"
    ok = r["ok_per_min"]
    own = _own_cpu_ms_per_poll(r)
    broker = r["broker_cpu_s"] / max(r["polls"], 1) * 1000
    need = max(6000.0, 2 * base["polls_per_min"])
    rss = r["rss_peak_mib"] + r["workers_rss_mib"]
    return (
        f"| {name} | {r['polls_per_min']:,.0f} | {ok:,.0f} "
        f"| {ok / base['polls_per_min']:.2f}x | ≥ {need:,.0f} ({_verdict(ok, need)}) "
        f"| {r['publish_failures']:.0f} | {own:.1f} (+ {broker:.1f} broker) "
        f"({_verdict(own, 20, higher=False)} ≤ 20) | {_lag(r)}{_control(r)} | {rss:.0f} |"
    )


def _control(r: dict[str, Any]) -> str:
    idle = r.get("idle_lag_p99_ms")
    return f" (idle loop beside it: p99 {idle:.0f})" if idle else ""


def _overload_lines(capacity: dict[str, Any] | None, r: dict[str, Any] | None) -> list[str]:
    """Goodput with OVERLOAD times as many polls falling due as the capacity measured above."""
    if capacity is None or r is None:
        return []
    share = r["ok_per_min"] / capacity["ok_per_min"]
    per_poll = _own_cpu_ms_per_poll(r)
    # The two runs follow each other, and the cores the machine's other work leaves them change
    # within a minute; CPU per poll does not, and the fetcher is CPU-bound in both.
    cpu_share = _own_cpu_ms_per_poll(capacity) / per_poll
    return [
        f"Goodput under {OVERLOAD:g}x overload (parse workers auto): the same {REAL_FEEDS} feeds "
        "scheduled as in production (`poll_forever`, NEWSMON_POLL_INTERVAL_S = _MAX_S = "
        f"{r['interval_s']:.2f} s, so {r['due_per_min']:,.0f} polls/min fall due, "
        f"{OVERLOAD:g}x the capacity of the auto row): **{r['ok_per_min']:,.0f} successful "
        f"polls/min = {share:.0%} of capacity** (target ≥ 90 %: "
        f"{_verdict(share, 0.9)}); {r['publish_failures']:.0f} publish failures, outcomes "
        f"{_outcome_text(r['outcomes'])}; polls started {r['mean_poll_delay_s']:.1f} s late on "
        f"average (intervals stretched evenly), saturated flag {r['saturated']:.0f}; "
        f"{per_poll:.1f} CPU-ms per poll (fetcher and parsers) against "
        f"{_own_cpu_ms_per_poll(capacity):.1f} in the auto row: on the same CPU the overload "
        f"would give {cpu_share:.0%} of capacity; loop lag p50 / p99 / max "
        f"{_lag(r)} ms{_control(r)}.",
        "",
    ]


def _own_cpu_ms_per_poll(r: dict[str, Any]) -> float:
    """CPU-ms of the fetcher and its parser processes per poll of a through-Kafka run."""
    return float(r["cpu_s"] + r["workers_cpu_s"]) / max(r["polls"], 1) * 1000


def _outcome_text(outcomes: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:,.0f}" for k, v in sorted(outcomes.items())) or "none"


def _kafka_section(
    runs: dict[str, dict[str, Any] | None], base: dict[str, Any], costs: list[Any]
) -> list[str]:
    auto = runs.get("auto")
    workers = auto["workers"] if auto else "?"
    capacity = ""
    if auto:
        per_poll = (auto["cpu_s"] + auto["workers_cpu_s"] + auto["broker_cpu_s"]) / max(
            auto["polls"], 1
        )
        capacity = (
            f" Polls/min depend on how much of the {os.cpu_count()} cores other work leaves "
            "(see the load average above); CPU per poll does not: at "
            f"{per_poll * 1000:.1f} ms per poll, fetcher, parsers and broker together, two idle "
            f"cores would carry about {120 / per_poll:,.0f} polls/min (an estimate, "
            "2 × 60 s / CPU per poll, not a measurement)."
        )
    return [
        "### Through the real broker, with realistic bodies",
        "",
        f"`Fetcher.poll_once` as `app.run` builds it, publishing with the real `KafkaSink` "
        "(acks=all, idempotent producer) to a throw-away local Kafka 4.1 broker on this "
        f"machine, feed states saved to the compacted state topic after every poll. {REAL_FEEDS} "
        f"feeds on {MANY_HOSTS} loopback host addresses, each polled again as soon as its poll "
        "ends (saturated: the 8 work slots are always full). Bodies: the real RSS 2.0 feeds of "
        "../shared/corpus/feeds/real used as templates (those whose 30-item rendering is "
        "20-160 KB: "
        + ", ".join(f"{name} {kb} KB" for name, kb, *_ in costs)
        + "), 30 items, one new item per poll (every poll a 200), encodings as in the "
        "originals (UTF-8, ISO-8859-1, windows-1251). Baseline: the plain sequential "
        "httpx + feedparser loop on the same feeds, in the same run (no Kafka). CPU counts the "
        "fetcher process and its parser processes; the broker's CPU is shown apart. Peak RSS: "
        "the fetcher's VmHWM plus its parser processes' resident memory. Loop lag: how late "
        "`asyncio.sleep(0.01)` wakes in the fetcher's loop; beside it an idle process runs the "
        "same ticker over the same seconds, and its lag is what the machine's other work adds "
        "to any loop." + capacity,
        "",
        "| parsing | polls/min | successful polls/min | vs baseline | target "
        "| publish failures | CPU ms/poll | loop lag p50 / p99 / max ms | peak RSS MB |",
        "|---|---:|---:|---:|---|---:|---|---|---:|",
        _kafka_row(f"auto ({workers} processes, the default here)", auto, base),
        _kafka_row("thread (NEWSMON_FETCH_PARSE_WORKERS=0)", runs.get("thread"), base),
        f"| baseline: sequential httpx + feedparser | {base['polls_per_min']:,.0f} "
        f"| {base['polls_per_min']:,.0f} | 1.00x | | | | | |",
        "",
        *_overload_lines(auto, runs.get("overload")),
        "Parse cost per realistic body, ms of one core (this process): plain "
        "`feedparser.parse`; `parse_feed` of the whole body (a feed's first poll, and every "
        "poll before item memos); `parse_feed` with the memo of the feed's previous poll "
        "(29 of 30 items cut out before feedparser, items.py).",
        "",
        "| template | KB | feedparser.parse | parse_feed, whole | parse_feed, with memo |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {kb} | {plain:.1f} | {whole:.1f} | {memo:.1f} |"
            for name, kb, plain, whole, memo in costs
        ),
    ]


def run(seconds: float = 12.0) -> str:
    load = Path("/proc/loadavg").read_text().split()[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.support_feedserver", "--hosts", str(MANY_HOSTS)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError("the feed server did not start")
        port = int(ready[1])
        t = ["--seconds", str(seconds), "--feeds", str(FEEDS)]
        changing = _need(_load(port, "throughput", "--kind", "c", *t))
        changing_pool = _load(port, "throughput", "--kind", "c", *t, workers=2)
        changing_base = _need(_load(port, "baseline", "--kind", "c", *t))
        # What the feed server itself takes while it answers 304s: is it the bound?
        server_cpu0, wall0 = proc_cpu_s(server.pid), time.perf_counter()
        static = _need(_load(port, "throughput", "--kind", "s", *t))
        server_share = (proc_cpu_s(server.pid) - server_cpu0) / (time.perf_counter() - wall0)
        static_uvloop = _load(port, "throughput", "--kind", "s", *t, event_loop="uvloop")
        before = _before_tree()
        static_before = before and _load(port, "throughput", "--kind", "s", *t, tree=before)
        static_base = _need(_load(port, "baseline", "--kind", "s", *t))
        scale = _load(
            port,
            "scale",
            "--kind",
            "mix",
            "--feeds",
            str(SCALE_FEEDS),
            "--interval",
            "60",
            "--warmup",
            "5",
            "--seconds",
            "15",
        )
        scale = _need(scale)
        real_base = _need(
            _load(
                port,
                "baseline",
                "--kind",
                "r",
                *t[:2],
                "--feeds",
                str(REAL_FEEDS),
                hosts=MANY_HOSTS,
            )
        )
        kafka_runs = _kafka_runs(port, seconds * 2)
    finally:
        if server.stdin:
            server.stdin.close()  # the server stops when its stdin closes
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    ours_ms, plain_ms, size = _parse_costs()
    real_costs = _real_parse_costs()

    def row(name: str, r: dict[str, Any] | None, base: dict[str, Any], target: int) -> str:
        if r is None:
            return f"| {name} | not in this build | | | | | |"
        ppm = r["polls_per_min"]
        cpu = r["cpu_s"] / max(r["polls"], 1) * 1000
        wcpu = r["workers_cpu_s"] / max(r["polls"], 1) * 1000
        cpu_text = f"{cpu:.1f}" + (f" (+ {wcpu:.1f} in workers)" if wcpu else "")
        return (
            f"| {name} | {ppm:,.0f} | {base['polls_per_min']:,.0f} "
            f"| {ppm / base['polls_per_min']:.2f}x | ≥ {target:,} ({_verdict(ppm, target)}) "
            f"| {cpu_text} | {_lag(r)} |"
        )

    peak = scale["rss_peak_mib"]
    return "\n".join(
        [
            "## Fetcher throughput, memory and event-loop lag",
            "",
            f"The real fetcher path (`Fetcher.poll_once`: HTTP through services/fetcher/http.py "
            "with the SSRF guard allowing 127.0.0.0/8, conditional GET, parse_feed, dedup "
            "against SeenIds, schedule, metrics) in a fresh process per scenario, against a "
            f"local feed server in another process on {HOSTS} loopback addresses, both on this "
            f"machine's {os.cpu_count()} cores (1-min load average {load} before the run: other "
            "work on the machine takes cores too). Default settings: 8 feeds in flight, 2 per "
            f"host. {FEEDS} feeds polled again as soon as each poll ends (saturated), counted "
            f"over {seconds:g} s after a warm-up. Feeds: generated RSS 2.0, 30 items, "
            f"{size / 1024:.0f} KB, no compression; a changing feed shows one new item per "
            "poll. **Kafka is not part of this benchmark**: articles and feed states go to a "
            "no-op sink with the fetcher Sink's signature; full-text page fetches and WebSub "
            "are off.",
            "Baseline: a plain sequential loop in one process, httpx.Client GET with "
            "If-None-Match, `feedparser.parse` with its defaults, a set of entry ids (no SSRF "
            "guard, caps, normalization, schedule or metrics).",
            "",
            "| responses | newsmon polls/min | baseline polls/min | ratio | target "
            "| fetcher-process CPU ms/poll | loop lag p50 / p99 / max ms |",
            "|---|---:|---:|---:|---|---|---|",
            row(
                "200, parse in a thread (NEWSMON_FETCH_PARSE_WORKERS=0)",
                changing,
                changing_base,
                5000,
            ),
            row("200, NEWSMON_FETCH_PARSE_WORKERS=2", changing_pool, changing_base, 5000),
            row("304 (thread)", static, static_base, 60000),
            row("304 (thread), NEWSMON_EVENT_LOOP=uvloop", static_uvloop, static_base, 60000),
            row(f"304 (thread), main at {BEFORE_REF} (before)", static_before, static_base, 60000),
            "",
            f"In the 304 run (asyncio) the feed server took {server_share:.0%} of one core "
            "(its CPU over the fetcher process's whole life, warm-up included) and the fetcher "
            f"process {static['cpu_s'] / static['seconds']:.0%} (over the counted seconds): the "
            "fetcher's single thread, not the stub, bounds that row; its polls/min is the share "
            "of a core the machine's other work leaves it over its CPU per poll.",
            "",
            f"Where the time of a 200 goes: `parse_feed` takes {ours_ms:.1f} ms of one core per "
            f"body (plain `feedparser.parse` {plain_ms:.1f} ms; parse_feed turns HTML "
            "sanitising off but adds normalization, language detection and Article validation). "
            "In a thread that CPU time holds the GIL: the fetcher process is capped at one core "
            "and the event loop wakes tens of ms late." + _pool_note(changing_pool),
            "",
            f"Memory with {scale['feeds']:,} feeds configured (one process, as `app.run` "
            "holds them: FeedConfigs, FeedState restored with validators, one `poll_forever` "
            "task each, per-feed metrics, a /metrics scrape streamed by the ops server, "
            "SeenIds full at NEWSMON_DEDUPE_CAPACITY · 2 = "
            f"{scale['seen_keys']:,} keys; 1 feed in 10 changes, the rest answer 304; "
            "interval 60 s, parsing in a thread):",
            "",
            "| stage | VmRSS MB |",
            "|---|---:|",
            f"| interpreter and imports | {scale['rss_base_mib']:.0f} |",
            f"| + {scale['feeds']:,} FeedConfigs and FeedStates | "
            f"{scale['rss_configs_states_mib']:.0f} |",
            f"| + SeenIds, {scale['seen_keys']:,} keys | {scale['rss_with_seen_mib']:.0f} |",
            f"| + per-feed metric series ({scale['per_feed_families']} families of counters and "
            "gauges, one child each) | "
            f"{scale['rss_with_metrics_mib']:.0f} |",
            f"| + all feeds polling, at the end of the run | "
            f"{scale['rss_before_scrape_mib']:.0f} |",
            f"| peak (VmHWM) with all tasks polling and one /metrics scrape "
            f"({scale['scrape_lines']:,} lines, {scale['scrape_bytes'] / 2**20:.1f} MiB) | "
            f"**{peak:.0f}** (target ≤ 200: {_verdict(peak, 200, higher=False)}) |",
            "",
            f"In that run: {scale['polls_per_min']:,.0f} polls/min as scheduled, loop lag "
            f"p50 / p99 / max {_lag(scale)} ms.",
            "",
            *_kafka_section(kafka_runs, real_base, real_costs),
        ]
    )


if __name__ == "__main__":
    print(run())
