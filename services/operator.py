"""Operator commands: `newsmon replay`, `newsmon doctor`, `newsmon feeds health` and the
readable side of `newsmon tail` (time windows, filters, --pretty).

Pure helpers first (time windows, filters, diffs, rows), then the Kafka and HTTP edges.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from newsmon.shared.kafka import bootstrap_of, make_reader, stop_consumer
from newsmon.shared.messages import Article, Classified, Evidence, MessageDecodeError, decode
from newsmon.shared.services import SERVICES, consumer_group
from newsmon.shared.settings import Settings
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

__all__ = [
    "Check",
    "ReplayChange",
    "alert_filter_matches",
    "diff_verdict",
    "parse_time",
    "pretty_alert",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_time(text: str, now: datetime) -> datetime:
    """`1h`, `30m`, `2d`, `1w` (that long before `now`), or an ISO 8601 date or time
    (`2026-12-01`, `2026-12-01T08:00`, with or without an offset; no offset means UTC)."""
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 1h, 2d, 1w) nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- tail --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TailFilter:
    """Filters of `newsmon tail` on a decoded JSON value (alerts, articles, verdicts)."""

    categories: frozenset[str] = frozenset()
    langs: frozenset[str] = frozenset()
    feeds: frozenset[str] = frozenset()

    def matches(self, value: Any) -> bool:
        return alert_filter_matches(value, self)


def _fields(value: Any) -> Mapping[str, Any]:
    """The article-like part of a message: a verdict nests its article."""
    if not isinstance(value, Mapping):
        return {}
    article = value.get("article")
    return {**article, **value} if isinstance(article, Mapping) else value


def alert_filter_matches(value: Any, flt: TailFilter) -> bool:
    fields = _fields(value)
    if flt.categories and not flt.categories & set(fields.get("categories") or ()):
        return False
    if flt.langs and fields.get("lang") not in flt.langs:
        return False
    if flt.feeds:
        feeds = {fields.get("feed")} | {
            s.get("feed") for s in fields.get("sources") or () if isinstance(s, Mapping)
        }
        if not flt.feeds & feeds:
            return False
    return True


def highlighted(evidence: Evidence) -> Text:
    """An evidence sentence with its terms in bold yellow (offsets clamped; no markup is
    parsed from the text, so a headline cannot restyle the terminal)."""
    text = Text(evidence.sentence)
    for term in evidence.terms:
        start, end = max(term.start, 0), min(term.end, len(evidence.sentence))
        if start < end:
            text.stylize("bold yellow", start, end)
    return text


def pretty_alert(value: Any) -> list[Text]:
    """An alert as people read it: headline, outlet and time, categories and score, the
    evidence with its terms highlighted, the link. Other messages: one line of JSON."""
    fields = _fields(value)
    if "title" not in fields:
        return [Text(json.dumps(value, ensure_ascii=False))]
    head = Text(str(fields.get("title", "")), style="bold")
    meta = Text(
        f"  {fields.get('source', '?')} · {fields.get('lang') or '?'} · "
        f"{fields.get('published') or fields.get('alerted') or fields.get('fetched') or ''}",
        style="dim",
    )
    categories = ", ".join(fields.get("categories") or ()) or "-"
    score = fields.get("score")
    line = Text(f"  [{categories}]" + (f" score {score:.2f}" if isinstance(score, float) else ""))
    if fields.get("revision", 1) != 1:
        line.append(f" · update r{fields['revision']}", style="cyan")
    lines = [head, meta, line]
    for raw in (fields.get("evidence") or ())[:3]:
        try:
            evidence = Evidence.model_validate(raw)
        except ValueError:
            continue
        lines.append(Text("  › ").append_text(highlighted(evidence)))
    if fields.get("url"):
        lines.append(Text(f"  {fields['url']}", style="blue"))
    return lines


# --- replay ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayChange:
    kind: str  # "new" (matches now, did not) or "lost" (matched, does not now)
    article: Article
    score_before: float | None
    score_now: float
    categories: tuple[str, ...]
    evidence: tuple[Evidence, ...]


def diff_verdict(
    article: Article, before: Classified | None, now: Classified
) -> ReplayChange | None:
    """What changed for one article (None: same decision). No earlier verdict counts as no
    match (the article was never classified, or its verdict left the topic's retention)."""
    matched = before is not None and before.match
    if matched == now.match:
        return None
    shown = now if now.match else before
    assert shown is not None
    return ReplayChange(
        kind="new" if now.match else "lost",
        article=article,
        score_before=before.score if before is not None else None,
        score_now=now.score,
        categories=shown.categories,
        evidence=shown.evidence,
    )


@dataclass
class ReplayReport:
    articles: int = 0
    matched_before: int = 0
    matched_now: int = 0
    unreadable: int = 0
    changes: list[ReplayChange] = field(default_factory=list)


async def _read_window(
    settings: Settings,
    topic: str,
    start: datetime,
    until: datetime | None,
    handle: Callable[[ConsumerRecord[bytes, bytes]], None],
    *,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> None:
    """Every record of `topic` from `start` up to the topic's end as it is now (or `until`)."""
    from newsmon.shared.statetopic import scan_to_end

    until_ms = int(until.timestamp() * 1000) if until is not None else None

    def take(record: ConsumerRecord[bytes, bytes]) -> bool:
        if until_ms is not None and record.timestamp > until_ms:
            return False
        handle(record)
        return True

    await scan_to_end(
        settings,
        topic,
        take,
        since_ms=int(start.timestamp() * 1000),
        on_progress=on_progress,
        client_id="newsmon-operator",
    )


async def replay(
    settings: Settings,
    since: datetime,
    until: datetime | None,
    *,
    to_topic: str | None,
    progress: Progress | None = None,
) -> ReplayReport:
    """Classify the articles of the window again with the current classifier and compare
    with the verdicts in the classified topic; with `to_topic`, publish the new verdicts."""
    from newsmon.classifier.engine import Classifier
    from newsmon.shared.messages import classified_headers, encode

    classifier = Classifier.default(threshold=settings.classifier_threshold)
    before: dict[str, Classified] = {}

    def take_verdict(record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            verdict = decode(Classified, record.value)
        except MessageDecodeError:
            return
        before[verdict.article.id] = verdict

    # Verdicts are written after their article: reading them from a little earlier than the
    # window's start costs little and the whole window is then covered.
    await _read_window(
        settings, settings.topics.classified, since - timedelta(hours=1), None, take_verdict
    )
    report = ReplayReport()
    outputs: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    task = progress.add_task("re-classifying", total=None) if progress is not None else None

    def take_article(record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            article = decode(Article, record.value)
        except MessageDecodeError:
            report.unreadable += 1
            return
        now = classifier.classify_article(article)
        old = before.get(article.id)
        report.articles += 1
        report.matched_before += bool(old is not None and old.match)
        report.matched_now += now.match
        change = diff_verdict(article, old, now)
        if change is not None:
            report.changes.append(change)
        if to_topic is not None:
            outputs.append((article.id.encode(), encode(now), classified_headers(now)))

    def advance(done: int, total: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=done, total=total)

    await _read_window(
        settings, settings.topics.articles, since, until, take_article, on_progress=advance
    )
    if to_topic is not None and outputs:
        await _publish(settings, to_topic, outputs)
    return report


async def _publish(
    settings: Settings, topic: str, outputs: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    from newsmon.shared.kafka import ensure_topics, make_producer

    await ensure_topics(settings, [topic])
    producer: AIOKafkaProducer = make_producer(settings, client_id="newsmon-replay")
    await producer.start()
    try:
        for key, value, headers in outputs:
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


def print_replay(report: ReplayReport, console: Console, *, since: datetime) -> None:
    for change in report.changes:
        sign, style = ("+ NEW MATCH ", "green") if change.kind == "new" else ("- LOST MATCH", "red")
        before = "-" if change.score_before is None else f"{change.score_before:.2f}"
        line = Text(f"{sign} {before} → {change.score_now:.2f} ", style=style)
        line.append(change.article.title, style="bold")
        console.print(line)
        console.print(
            Text(
                f"    {change.article.source} · {change.article.lang or '?'} · "
                f"[{', '.join(change.categories) or '-'}] · {change.article.url}",
                style="dim",
            )
        )
        for evidence in change.evidence[:2]:
            console.print(Text("    › ").append_text(highlighted(evidence)))
    new = sum(c.kind == "new" for c in report.changes)
    lost = len(report.changes) - new
    console.print(
        f"replayed {report.articles} articles since {since:%Y-%m-%d %H:%M} UTC: "
        f"matched before {report.matched_before}, now {report.matched_now}; "
        f"{new} new matches, {lost} lost"
        + (f"; {report.unreadable} unreadable records skipped" if report.unreadable else ""),
        highlight=False,
    )


# --- feeds health ------------------------------------------------------------------------


async def feeds_health_rows(settings: Settings) -> list[Any]:
    from newsmon.fetcher.state import load_states
    from newsmon.web.feeds import DAY_S, ItemCounter, feed_health

    states = await load_states(settings)
    items = ItemCounter()

    def take(record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            feed = json.loads(record.value or b"null")["feed"]
        except (ValueError, TypeError, KeyError):
            return
        items.add(str(feed), record.timestamp / 1000)

    now = time.time()
    since = datetime.fromtimestamp(now - DAY_S, UTC)
    await _read_window(settings, settings.topics.articles, since, None, take)
    return feed_health(states, items.last_24h(now), now)


def _ago(moment: float | None, now: float) -> str:
    if moment is None:
        return "never"
    seconds = max(now - moment, 0)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def feeds_table(rows: Sequence[Any], now: float) -> Table:
    table = Table(title="Feeds (fetcher-state topic; items from the articles topic)")
    for column in ("feed", "status", "last success", "last new item", "errors", "reason"):
        table.add_column(column)
    table.add_column("interval", justify="right")
    table.add_column("items/24h", justify="right")
    styles = {"failing": "red", "quiet": "yellow", "never-succeeded": "yellow", "ok": "green"}
    for row in rows:
        table.add_row(
            Text(row.name),
            Text(row.status, style=styles.get(row.status, "")),
            _ago(row.last_success_at, now),
            _ago(row.last_new_item_at, now),
            str(row.error_streak),
            Text(row.reason),
            "-" if row.interval_s is None else f"{row.interval_s:.0f}s",
            str(row.items_24h),
        )
    return table


# --- doctor ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, WARN, FAIL
    detail: str


async def _check_broker(settings: Settings) -> list[Check]:
    from newsmon.fetcher.state import state_topic
    from newsmon.shared.broker import check_access
    from newsmon.shared.errors import KafkaAccessError
    from newsmon.shared.kafka import make_admin, security_kwargs

    bootstrap = bootstrap_of(settings)
    try:  # a refused login or TLS handshake, said as such (not as "unreachable")
        await check_access(bootstrap, security=security_kwargs(settings))
    except KafkaAccessError as exc:
        return [Check("broker", "FAIL", str(exc))]
    admin = make_admin(settings, client_id="newsmon-doctor")
    try:
        async with asyncio.timeout(10):  # not wait_for: see shared.lifecycle.sleep_or_stop
            await admin.start()
    except Exception as exc:  # any failure to start is "unreachable", said in one line
        return [Check("broker", "FAIL", f"{bootstrap}: {type(exc).__name__}: {exc}")]
    checks: list[Check] = []
    try:
        cluster = await admin.describe_cluster()
        checks.append(
            Check(
                "broker",
                "PASS",
                f"{bootstrap}: {len(cluster.get('brokers', []))} broker(s), cluster "
                f"{cluster.get('cluster_id')}, controller {cluster.get('controller_id')}"
                + _local_kafka_version(settings),
            )
        )
        wanted = [*settings.topics.all(), state_topic(settings)]
        described = await admin.describe_topics(wanted)
        for topic in described:
            name = topic["topic"]
            if topic["error_code"] != 0:
                checks.append(Check(f"topic {name}", "FAIL", "missing (newsmon run creates it)"))
                continue
            parts = topic["partitions"]
            leaderless = [p["partition"] for p in parts if p.get("leader", -1) < 0]
            checks.append(
                Check(
                    f"topic {name}",
                    "FAIL" if leaderless else "PASS",
                    f"{len(parts)} partition(s)"
                    + (f", no leader: {leaderless}" if leaderless else ""),
                )
            )
        checks += await _check_lag(settings, admin)
    finally:
        await admin.close()
    return checks


def _local_kafka_version(settings: Settings) -> str:
    """The Kafka protocol does not tell a broker's release; the local broker's jar does."""
    if settings.kafka_bootstrap not in (None, f"127.0.0.1:{settings.kafka_local_port}"):
        return ""
    jars = sorted((settings.kafka_local_dir / "lib").glob("kafka_2.13-*.jar"))
    return f", local Kafka {jars[0].stem.removeprefix('kafka_2.13-')}" if jars else ""


async def _check_lag(settings: Settings, admin: Any) -> list[Check]:
    """Committed offsets of each service's consumer group against the topics' ends."""
    # The services whose consumer group does the work on the topic it reads (services table).
    groups = {
        row.name: getattr(settings.topics, topic)
        for row in SERVICES
        if row.needs_partitions
        for topic in row.consumes
    }
    # Ends as the high watermark (read_uncommitted), as this check always measured lag.
    consumer = make_reader(settings, client_id="newsmon-doctor", isolation_level="read_uncommitted")
    await consumer.start()
    checks = []
    try:
        for service, topic in groups.items():
            group = consumer_group(settings.topic_prefix, service)
            try:
                committed = await admin.list_consumer_group_offsets(group)
            except KafkaError as exc:  # e.g. no group ever committed: no coordinator yet
                checks.append(Check(f"lag {service}", "WARN", f"group {group}: {exc}"))
                continue
            mine = {tp: meta.offset for tp, meta in committed.items() if tp.topic == topic}
            if not mine:
                checks.append(
                    Check(f"lag {service}", "WARN", f"group {group} committed nothing yet")
                )
                continue
            ends = await consumer.end_offsets(list(mine))
            lag = sum(max(ends[tp] - offset, 0) for tp, offset in mine.items())
            checks.append(
                Check(
                    f"lag {service}", "PASS", f"group {group}: {lag} message(s) behind on {topic}"
                )
            )
    finally:
        await stop_consumer(consumer)
    return checks


def _check_slack(settings: Settings) -> list[Check]:
    from newsmon.notifier.slack import WebhookUrl

    hooks = {"default": settings.slack_webhook_url} | {
        f"category {k}": v for k, v in settings.slack_category_webhooks.items()
    }
    checks = []
    for name, secret in hooks.items():
        if secret is None:
            checks.append(
                Check("slack webhook", "WARN", "NEWSMON_SLACK_WEBHOOK_URL unset: no Slack")
            )
            continue
        try:
            url = WebhookUrl(secret.get_secret_value())
        except ValueError as exc:
            checks.append(Check(f"slack {name}", "FAIL", str(exc)))
            continue
        slack_like = re.match(
            r"^https://hooks\.slack\.com/services/[^/]+/[^/]+/[^/]+$", url.reveal()
        )
        checks.append(
            Check(
                f"slack {name}",
                "PASS" if slack_like else "WARN",
                f"{url}" + ("" if slack_like else " (not https://hooks.slack.com/services/T/B/X)"),
            )
        )
    return checks


async def _send_test(settings: Settings) -> Check:
    import httpx
    from newsmon.notifier.slack import (
        RetryPolicy,
        SlackPermanentError,
        SlackRetriableError,
        SlackSender,
        WebhookUrl,
    )

    if settings.slack_webhook_url is None:
        return Check("slack test message", "FAIL", "NEWSMON_SLACK_WEBHOOK_URL is unset")
    webhook = WebhookUrl(settings.slack_webhook_url.get_secret_value())
    async with httpx.AsyncClient() as client:
        sender = SlackSender(client, policy=RetryPolicy(max_attempts=2, deadline_s=20))
        try:
            result = await sender.send(webhook, {"text": "newsmon doctor: test message"})
        except (SlackPermanentError, SlackRetriableError) as exc:
            return Check("slack test message", "FAIL", str(exc))
    return Check("slack test message", "PASS", f"HTTP {result.status} from {webhook}")


def _check_metrics_port(settings: Settings) -> Check:
    port = settings.metrics_port_for("run")
    host = settings.metrics_host
    with socket.socket() as probe:
        probe.settimeout(1)
        in_use = probe.connect_ex((host, port)) == 0
    if not in_use:
        return Check("metrics port", "PASS", f"{host}:{port} is free for newsmon run")
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=3) as response:
            if b"newsmon_build_info" in response.read(200_000):
                return Check("metrics port", "PASS", f"newsmon answers on {host}:{port}/metrics")
    except OSError:
        pass
    return Check("metrics port", "FAIL", f"{host}:{port} is taken by something else")


async def _check_feeds(settings: Settings) -> Check:
    import httpx
    from newsmon.fetcher.feeds import FeedsFileError, load_feeds

    try:
        feeds = load_feeds(settings.feeds_file)
    except (FeedsFileError, OSError) as exc:
        return Check("feeds", "FAIL", str(exc))
    gate = asyncio.Semaphore(8)

    async def reach(client: httpx.AsyncClient, url: str) -> str | None:
        if url.startswith("file://"):
            found = await asyncio.to_thread(Path(url.removeprefix("file://")).is_file)
            return None if found else "no such file"
        if not url.startswith(("http://", "https://")):
            return None
        async with gate:
            try:
                response = await client.get(url)
            except httpx.HTTPError as exc:
                return type(exc).__name__
        return None if response.status_code < 400 else f"HTTP {response.status_code}"

    async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
        errors = await asyncio.gather(*(reach(client, f.url) for f in feeds))
    failing = [f"{f.name} ({e})" for f, e in zip(feeds, errors, strict=True) if e]
    detail = f"{len(feeds) - len(failing)}/{len(feeds)} reachable"
    if failing:
        detail += "; failing: " + ", ".join(failing[:8]) + (" …" if len(failing) > 8 else "")
    status = "PASS" if not failing else ("WARN" if len(failing) < len(feeds) else "FAIL")
    return Check("feeds", status, detail)


async def doctor(settings: Settings, *, send_test: bool, feeds: bool) -> list[Check]:
    checks = [Check("config", "PASS", f"{len(settings.describe())} settings valid")]
    checks += await _check_broker(settings)
    checks += _check_slack(settings)
    if send_test:
        checks.append(await _send_test(settings))
    checks.append(_check_metrics_port(settings))
    if feeds:
        checks.append(await _check_feeds(settings))
    return checks


def checks_table(checks: Iterable[Check]) -> Table:
    table = Table(title="newsmon doctor")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    styles = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}
    for check in checks:
        table.add_row(
            check.name, Text(check.status, style=styles[check.status]), Text(check.detail)
        )
    return table


def console_for(stream: TextIO = sys.stdout) -> Console:
    """Colours on a terminal only; plain text (no wrapping at 80) when piped."""
    return Console(file=stream, highlight=False, soft_wrap=not stream.isatty())


# --- command line ------------------------------------------------------------------------

# Shown at the end of each command's --help (one home for every command's examples).
EXAMPLES: dict[str, str] = {
    "run": "newsmon run\n  NEWSMON_KAFKA_BOOTSTRAP=kafka:9092 NEWSMON_WEB_PORT=8080 newsmon run",
    "fetcher": "NEWSMON_FEEDS_FILE=deploy/feeds.toml newsmon fetcher",
    "classifier": "NEWSMON_CLASSIFIER_THRESHOLD=0.6 newsmon classifier",
    "alerter": "NEWSMON_ALERT_ROUTES_FILE=routes.toml newsmon alerter",
    "notifier": "NEWSMON_SLACK_WEBHOOK_URL_FILE=/run/secrets/slack newsmon notifier",
    "web": "newsmon web                         # http://127.0.0.1:8480/\n"
    "  NEWSMON_WEB_HOST=0.0.0.0 NEWSMON_WEB_TOKEN_FILE=/run/secrets/web newsmon web",
    "tail": "newsmon tail newsmon.alerts.v1 --since 1h --pretty\n"
    "  newsmon tail newsmon.alerts.v1 --category troops --lang ru --no-follow\n"
    "  newsmon tail newsmon.articles.v1 --feed yonhap --max 5",
    "replay": "newsmon replay --since 7d\n"
    "  newsmon replay --since 2026-12-01 --until 2026-12-02T12:00\n"
    "  NEWSMON_CLASSIFIER_THRESHOLD=0.5 newsmon replay --since 24h --to-topic shadow.classified",
    "doctor": "newsmon doctor\n  newsmon doctor --no-feeds\n  newsmon doctor --send-test",
    "completion": "newsmon completion bash > ~/.local/share/bash-completion/completions/newsmon\n"
    "  newsmon completion zsh > ~/.zfunc/_newsmon",
    "broker": "newsmon broker start\n  newsmon broker status",
    "config": "newsmon config\n  NEWSMON_CONFIG_FILE=newsmon.toml newsmon config | grep WEB",
    "dashboard": "newsmon dashboard -o deploy/grafana/newsmon.json",
    "classify": 'echo \'{"id": "1", "title": "North Korean troops in Kursk"}\' | newsmon classify',
    "eval": "newsmon eval docs/eval/multilingual.jsonl",
    "routes": 'newsmon routes check \'{"categories": ["troops"], "score": 0.9}\'',
    "fetch": "newsmon fetch https://www.yna.co.kr/rss/northkorea.xml",
    "feeds": "newsmon feeds list\n  newsmon feeds health\n  newsmon feeds add https://example.org/rss",
    "slack-preview": "newsmon tail newsmon.alerts.v1 --max 1 | jq .value | newsmon slack-preview",
}


def add_examples(parsers: Mapping[str, Any]) -> None:
    """Put each command's examples at the end of its --help."""
    import argparse

    for name, parser in parsers.items():
        examples = EXAMPLES.get(name)
        if examples is None:
            continue
        epilog = f"{parser.epilog}\n\n" if parser.epilog else ""
        parser.epilog = f"{epilog}Examples:\n  {examples}"
        if parser.formatter_class is argparse.HelpFormatter:
            parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _settings() -> Settings:
    from newsmon.cli import _settings as settings_or_exit

    return settings_or_exit()


def _bootstrap(settings: Settings) -> Settings:
    from newsmon.runner import local_bootstrap

    return settings.with_overrides(kafka_bootstrap=local_bootstrap(settings))


def _time_arg(text: str) -> datetime:
    import argparse

    try:
        return parse_time(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_replay(args: Any) -> int:
    settings = _bootstrap(_settings())
    if args.to_topic in (settings.topics.classified, settings.topics.articles):
        raise SystemExit(
            f"newsmon replay: --to-topic {args.to_topic} is a live topic; name a topic of "
            "its own (e.g. shadow.classified) and point a second alerter at it"
        )
    err = console_for(sys.stderr)
    with Progress(console=err, transient=True, disable=not sys.stderr.isatty()) as progress:
        report = asyncio.run(
            replay(settings, args.since, args.until, to_topic=args.to_topic, progress=progress)
        )
    print_replay(report, console_for(), since=args.since)
    if args.to_topic:
        print(f"published {report.articles} verdicts to {args.to_topic}")
    return 0


def cmd_doctor(args: Any) -> int:
    try:
        settings = _bootstrap(Settings())
    except Exception as exc:  # a configuration that does not load is the first failed check
        console_for().print(checks_table([Check("config", "FAIL", str(exc))]))
        return 1
    checks = asyncio.run(doctor(settings, send_test=args.send_test, feeds=args.feeds))
    console_for().print(checks_table(checks))
    counts = {
        status: sum(c.status == status for c in checks) for status in ("PASS", "WARN", "FAIL")
    }
    print(
        f"{len(checks)} checks: {counts['PASS']} passed, {counts['WARN']} warnings, "
        f"{counts['FAIL']} failed"
    )
    return 1 if counts["FAIL"] else 0


def cmd_feeds_health() -> int:
    settings = _bootstrap(_settings())
    rows = asyncio.run(feeds_health_rows(settings))
    console_for().print(feeds_table(rows, time.time()))
    return 0


def cmd_completion(args: Any) -> int:
    import shtab
    from newsmon.cli import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


def add_subcommands(sub: Any) -> None:
    replay_p = sub.add_parser(
        "replay",
        help="re-classify articles already in the articles topic and show what would change",
        description="Reads the articles of a time window from the articles topic, classifies "
        "them with the current classifier (lexicon, weights, NEWSMON_CLASSIFIER_THRESHOLD) and "
        "compares with the verdicts in the classified topic: new matches and lost matches, "
        "with their evidence. Nothing is published unless --to-topic is given.",
    )
    replay_p.add_argument(
        "--since", type=_time_arg, required=True, help="start: 30m, 1h, 7d, or ISO 8601 time"
    )
    replay_p.add_argument(
        "--until", type=_time_arg, default=None, help="end (default: now), same forms as --since"
    )
    mode = replay_p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only show the changes (default)")
    mode.add_argument(
        "--to-topic", default=None, metavar="TOPIC", help="also publish the new verdicts to TOPIC"
    )
    replay_p.set_defaults(func=cmd_replay)

    doctor_p = sub.add_parser(
        "doctor",
        help="check config, broker, topics, consumer lag, Slack webhook, metrics port, feeds",
        description="Runs every check and prints a pass/fail table; exit code 1 if any check "
        "failed. Posts nothing to Slack unless --send-test.",
    )
    doctor_p.add_argument(
        "--send-test", action="store_true", help="post one test message to the Slack webhook"
    )
    doctor_p.add_argument(
        "--feeds",
        action=argparse_boolean(),
        default=True,
        help="fetch each configured feed once to see it answers (default: on)",
    )
    doctor_p.set_defaults(func=cmd_doctor)

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, tcsh)",
        description="Prints the completion script of every newsmon command for your shell.",
    )
    completion.add_argument("shell", choices=["bash", "zsh", "tcsh"])
    completion.set_defaults(func=cmd_completion)


def argparse_boolean() -> Any:
    import argparse

    return argparse.BooleanOptionalAction
