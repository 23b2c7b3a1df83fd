"""All newsmon metrics, in one module (prefix `newsmon_`, units in names, bounded labels).

Naming follows Prometheus' conventions (prometheus.io/docs/practices/naming/): one
application prefix, base units (seconds, not milliseconds), `_total` on counters, `_timestamp_
seconds` on Unix times, and a unit suffix such as `_messages` where one applies. Every label
keeps its cardinality bounded (prometheus.io/docs/practices/instrumentation/#do-not-overuse-
labels): values come from configuration (feed names, topic names, service and group names,
partition numbers) or from small fixed sets (outcomes, exception class names), never from
message content such as URLs or titles.

The registry is injected so tests read real values from a fresh registry and several pipelines
can run in one test process (prometheus_client's registry.py: a global registry would make
every test share counters).

`Health` is the readiness state the consume loops and the runner feed and /readyz reads.
"""

from __future__ import annotations

import contextlib
import platform
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.exposition import (
    ThreadingWSGIServer,
    _SilentHandler,
    choose_encoder,
    gzip_accepted,
)
from prometheus_client.metrics_core import Metric

__all__ = ["Health", "Metrics", "OpsServer", "Routes", "serve_ops"]

# No `<counter>_created` series: a second series for every counter child (Unix time it was
# made), read by nothing here, that with 10,000 feeds adds 30,000 lines to every scrape and
# as many series to Prometheus. prometheus_client's switch is process-wide, as this module is.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds; the top buckets (3 h to a day) hold items a feed published long before we saw them.
_LATENCY_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 10800, 43200, 86400
)  # fmt: skip


class Health:
    """Readiness state: is the broker reachable, and which consumers hold partitions.

    Written by the event loop (consume loops after every poll, the runner's broker probe) and
    read by the ops server's thread, hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._broker_reachable = False
        self._assigned: dict[str, int] = {}
        self._idle: set[str] = set()
        self._standby: set[str] = set()

    def set_broker_reachable(self, reachable: bool) -> None:
        with self._lock:
            self._broker_reachable = reachable

    def set_assigned(self, service: str, partitions: int) -> None:
        with self._lock:
            self._assigned[service] = partitions

    def consumer_stopped(self, service: str) -> None:
        with self._lock:
            self._assigned.pop(service, None)
            self._standby.discard(service)

    def set_idle(self, service: str) -> None:
        """The service runs without a consumer on purpose (the notifier with no webhook)."""
        with self._lock:
            self._idle.add(service)

    def set_standby(self, service: str, standby: bool) -> None:
        """A single-active service (the alerter) waits on standby: ready, holding nothing."""
        with self._lock:
            if standby:
                self._standby.add(service)
            else:
                self._standby.discard(service)

    def notes(self) -> list[str]:
        """What /readyz adds to "ready": the services of this process on standby."""
        with self._lock:
            return [f"{service}: standby" for service in sorted(self._standby)]

    def problems(self, consumers: Iterable[str]) -> list[str]:
        """Why this process is not ready (empty: ready). `consumers` are the services that
        must hold at least one partition of their source topic."""
        with self._lock:
            found = [] if self._broker_reachable else ["Kafka broker unreachable"]
            for service in consumers:
                if service in self._idle or service in self._standby:
                    continue
                if service not in self._assigned:
                    found.append(f"{service}: consumer not started")
                elif self._assigned[service] == 0:
                    found.append(f"{service}: no partitions assigned")
            return found


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Routes:
    """WSGI apps a service mounts on the ops server by path prefix while it runs (the fetcher's
    WebSub callback, /websub/). A table the running service fills, rather than a serve_ops
    argument: the ops server starts before the services (runner.serve), and one port to expose
    per process is simpler to deploy than a second server. Mounted from the event loop, read
    by the ops server's threads, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._apps: dict[str, WsgiApp] = {}

    def mount(self, prefix: str, app: WsgiApp) -> None:
        with self._lock:
            self._apps[prefix] = app

    def unmount(self, prefix: str) -> None:
        with self._lock:
            self._apps.pop(prefix, None)

    def match(self, path: str) -> WsgiApp | None:
        with self._lock:
            for prefix, app in self._apps.items():
                if path.startswith(prefix):
                    return app
            return None


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, version: str = "0") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.health = Health()
        self.routes = Routes()
        r = self.registry
        # The "info" pattern: a constant 1 whose labels carry the build (Prometheus "writing
        # exporters" guide, section "Target labels, not static scraped labels").
        self.build_info = Info("newsmon_build", "Version of the running newsmon", registry=r)
        self.build_info.info({"version": version, "python": platform.python_version()})
        self.broker_reachable = Gauge(
            "newsmon_broker_reachable",
            "1 when the last metadata request to the Kafka bootstrap servers answered, else 0",
            registry=r,
        )
        self.kafka_connect_failures = Counter(
            "newsmon_kafka_connect_failures_total",
            "Failed connection attempts of the Kafka clients (each a reconnect attempt while a "
            "broker is away; the clients retry by themselves)",
            registry=r,
        )

        # Every stage: what came in, what went out, what failed (and was counted, never lost).
        self.items_in = Counter(
            "newsmon_items_in_total", "Items a stage took in", ["service", "topic"], registry=r
        )
        self.items_out = Counter(
            "newsmon_items_out_total",
            "Items a stage published (acknowledged)",
            ["service", "topic"],
            registry=r,
        )
        self.errors = Counter(
            "newsmon_errors_total", "Failures by stage and kind", ["service", "kind"], registry=r
        )
        self.dlq = Counter(
            "newsmon_dlq_messages_total",
            "Messages sent to the dead-letter topic",
            ["service", "reason"],
            registry=r,
        )
        self.outputs_trimmed = Counter(
            "newsmon_outputs_trimmed_total",
            "Outputs whose text was shortened to fit the topic's max.message.bytes (flagged "
            "trimmed in the message)",
            ["service", "topic"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "newsmon_batch_duration_seconds",
            "Time to transform and publish one consumed batch (commit included)",
            ["service"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        # The two halves of a batch: what bounds a stage's rate (its CPU work, or the broker's
        # round trips), and whether its batches run full (a backlog) or small (keeping up).
        self.batch_step_seconds = Histogram(
            "newsmon_batch_step_seconds",
            "Time of one step of a consumed batch: transform (the records' work, in a worker "
            "thread) or publish (outputs, offsets and commit, waiting on the broker)",
            ["service", "step"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_records = Histogram(
            "newsmon_batch_records",
            "Records in one consumed batch (at NEWSMON_BATCH_SIZE: the stage is behind)",
            ["service"],
            buckets=(1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000),
            registry=r,
        )

        # Kafka consumers: how far behind each group is, per partition it holds.
        self.consumer_lag = Gauge(
            "newsmon_consumer_lag_messages",
            "Records between a group's position and the partition's high watermark",
            ["group", "topic", "partition"],
            registry=r,
        )
        self.consumer_assigned = Gauge(
            "newsmon_consumer_assigned_partitions",
            "Partitions this process' consumer of a service holds",
            ["service"],
            registry=r,
        )
        self._lag_labels: dict[str, set[tuple[str, str]]] = {}
        self.active_replica = Gauge(
            "newsmon_active_replica",
            "1 while this replica of a single-active service (the alerter) is the active one, "
            "0 on standby",
            ["service"],
            registry=r,
        )
        self.activation_seconds = Gauge(
            "newsmon_activation_seconds",
            "How long this replica's last activation took: fencing the previous active's "
            "producer, restoring the state topic, reading the committed offsets",
            ["service"],
            registry=r,
        )
        self.activations = Counter(
            "newsmon_activations_total",
            "Times this replica of a single-active service became the active one",
            ["service"],
            registry=r,
        )

        # Fetcher.
        self.feed_fetches = Counter(
            "newsmon_feed_fetches_total", "Feed fetches by outcome", ["feed", "outcome"], registry=r
        )
        # One histogram for all feeds (by outcome, a small fixed set) and one gauge per feed:
        # a per-feed histogram is 12 series a feed, 36 MB of this process with 10,000 feeds
        # (BENCHMARKS.md), for quantiles nobody reads per feed.
        self.feed_fetch_seconds = Histogram(
            "newsmon_feed_fetch_duration_seconds",
            "Time to fetch and parse one feed, all feeds, by outcome (as in "
            "newsmon_feed_fetches_total)",
            ["outcome"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
            registry=r,
        )
        self.feed_last_fetch_seconds = Gauge(
            "newsmon_feed_last_fetch_duration_seconds",
            "Time the last fetch of a feed took (fetch and parse, whatever its outcome)",
            ["feed"],
            registry=r,
        )
        self.feed_items = Counter(
            "newsmon_feed_items_total",
            "Feed entries by fate (new, duplicate, skipped, unchanged: byte-identical to an "
            "item of the feed's last parse, not parsed again)",
            ["feed", "status"],
            registry=r,
        )
        self.feed_last_success = Gauge(
            "newsmon_feed_last_success_timestamp_seconds",
            "Unix time of the last good fetch",
            ["feed"],
            registry=r,
        )
        self.feed_error_streak = Gauge(
            "newsmon_feed_error_streak",
            "Consecutive failed fetches of a feed",
            ["feed"],
            registry=r,
        )
        self.feed_last_new_item = Gauge(
            "newsmon_feed_last_new_item_timestamp_seconds",
            "Unix time a feed last gave an item not seen before",
            ["feed"],
            registry=r,
        )
        self.feed_interval = Gauge(
            "newsmon_feed_interval_seconds",
            "Seconds between polls of a feed as currently scheduled (before error back-off)",
            ["feed"],
            registry=r,
        )
        # Per feed only what a per-feed alert or dashboard panel reads (deploy/prometheus,
        # shared/dashboard.py): every per-feed family is a series per feed, about 0.7 KB of
        # this process each (10,000 feeds: BENCHMARKS.md). HTTP status classes and bytes are
        # for all feeds together; a feed's own failures are in newsmon_feed_fetches_total.
        self.feed_responses = Counter(
            "newsmon_feed_http_responses_total",
            "Final HTTP responses of feed polls, all feeds, by status class (2xx, 304, 4xx, 5xx)",
            ["code"],
            registry=r,
        )
        self.feed_bytes = Counter(
            "newsmon_feed_received_bytes_total",
            "Bytes of feed responses, all feeds, as sent on the wire (before decompression)",
            registry=r,
        )
        # Fetcher under load (services/fetcher/load.py): bounded work and overload control.
        self.fetcher_polls = Gauge(
            "newsmon_fetcher_polls",
            "Polls due and waiting for a slot (stage=waiting) or holding one, by stage (fetch, "
            "parse, publish); holders are at most NEWSMON_FETCH_CONCURRENCY",
            ["stage"],
            registry=r,
        )
        self.fetcher_slot_wait = Histogram(
            "newsmon_fetcher_slot_wait_seconds",
            "Time a due poll waited for a slot (back-pressure from fetches, parsers and Kafka)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.fetcher_poll_delay = Histogram(
            "newsmon_fetcher_poll_delay_seconds",
            "How late polls started after their planned time (slot wait included)",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
            registry=r,
        )
        self.fetcher_saturated = Gauge(
            "newsmon_fetcher_saturated",
            "1 while most polls start behind schedule (intervals stretch evenly), else 0",
            registry=r,
        )
        self.fetcher_unpublished = Gauge(
            "newsmon_fetcher_unpublished_articles",
            "Parsed articles kept after a failed publish, waiting to be published again",
            registry=r,
        )
        self.fetcher_republish = Counter(
            "newsmon_fetcher_republish_total",
            "Publishes of kept articles retried (no re-fetch, no re-parse), by outcome (ok, "
            "failed)",
            ["outcome"],
            registry=r,
        )
        # Fetcher fleet (services/fetcher/fleet.py).
        self.fleet_feeds = Gauge(
            "newsmon_fetcher_owned_feeds",
            "Feeds this fetcher replica polls now (the feeds of the feeds-topic partitions it "
            "holds in the fetcher consumer group)",
            registry=r,
        )
        self.fleet_partitions = Gauge(
            "newsmon_fetcher_owned_partitions",
            "Partitions of the feeds topic this fetcher replica holds",
            registry=r,
        )
        self.fleet_handovers = Counter(
            "newsmon_fetcher_feed_handovers_total",
            "Feeds this replica started polling (gained: assigned, added) or stopped polling "
            "(released: rebalance or shutdown; removed: removed, disabled or changed)",
            ["direction"],
            registry=r,
        )
        # Fetcher, WebSub (services/fetcher/websub.py).
        self.websub_subscriptions = Gauge(
            "newsmon_websub_subscriptions",
            "WebSub subscriptions by state (pending, active, expired, denied)",
            ["state"],
            registry=r,
        )
        self.websub_pushes = Counter(
            "newsmon_websub_pushes_total",
            "WebSub content pushes received, by outcome (published, bad_signature, "
            "unknown_topic, parse_error, failed)",
            ["outcome"],
            registry=r,
        )
        self.websub_requests = Counter(
            "newsmon_websub_subscribe_requests_total",
            "WebSub subscribe requests sent to hubs, by outcome (accepted, refused, blocked, "
            "failed)",
            ["outcome"],
            registry=r,
        )
        self.feed_full_text = Counter(
            "newsmon_feed_full_text_total",
            "Article page fetches for full text by outcome (ok, failed, empty)",
            ["feed", "outcome"],
            registry=r,
        )

        # Classifier.
        self.verdicts = Counter(
            "newsmon_classifier_verdicts_total", "Classifier verdicts", ["match"], registry=r
        )
        self.verdict_categories = Counter(
            "newsmon_classifier_category_matches_total",
            "Categories of matching verdicts",
            ["category"],
            registry=r,
        )

        # Alerter and notifier.
        self.slack_sends = Counter(
            "newsmon_slack_sends_total",
            "Slack webhook attempts by outcome",
            ["outcome"],
            registry=r,
        )
        self.slack_delivery_seconds = Histogram(
            "newsmon_slack_delivery_seconds",
            "From alert creation to Slack's 2xx",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e_seconds = Histogram(
            "newsmon_alert_latency_seconds",
            "From the article's publication (since=published) or fetch (since=fetched) to alert",
            ["since"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # Counted once the transaction carrying them committed (a replayed batch is not
        # counted twice). Topics come from the routing rules, so the label stays bounded.
        self.alerts_published = Counter(
            "newsmon_alerts_published_total",
            "Alert revisions published, by topic (committed)",
            ["topic"],
            registry=r,
        )
        self.alert_updates = Counter(
            "newsmon_alert_updates_total",
            "Alert updates (revision > 1: another outlet carried a known story), committed",
            registry=r,
        )
        self.alert_stories = Gauge(
            "newsmon_alerter_stories",
            "Stories the alerter keeps for grouping (inside the grouping window)",
            registry=r,
        )
        self.slack_retries = Counter(
            "newsmon_slack_retries_total",
            "Slack webhook attempts that failed and were retried, by reason",
            ["reason"],
            registry=r,
        )
        self.slack_skipped = Counter(
            "newsmon_slack_skipped_total",
            "Alerts not posted, by reason (already_delivered, update_muted, no_webhook)",
            ["reason"],
            registry=r,
        )
        # --- newsmon web ---
        self.web_stories = Gauge(
            "newsmon_web_stories", "Stories the web page holds in memory", registry=r
        )
        self.web_live_clients = Gauge(
            "newsmon_web_live_clients", "Open live-update streams (server-sent events)", registry=r
        )
        self.web_requests = Counter(
            "newsmon_web_requests_total",
            "Web page requests by page (a fixed set) and status code",
            ["page", "status"],
            registry=r,
        )

    def observe_consumer(
        self, service: str, group: str, lags: Mapping[tuple[str, int], int | None]
    ) -> None:
        """Record a consumer's lag per (topic, partition) it holds; None: not known yet.
        Partitions no longer held lose their series, so a rebalance leaves no stale lag."""
        current: set[tuple[str, str]] = set()
        for (topic, partition), lag in lags.items():
            if lag is None:
                continue
            labels = (topic, str(partition))
            self.consumer_lag.labels(group, *labels).set(max(lag, 0))
            current.add(labels)
        for gone in self._lag_labels.get(group, set()) - current:
            self.consumer_lag.remove(group, *gone)
        self._lag_labels[group] = current
        self.consumer_assigned.labels(service).set(len(lags))
        self.health.set_assigned(service, len(lags))

    def forget_feed(self, feed: str) -> None:
        """Drop the per-feed gauges of a feed this process no longer polls (moved to another
        fetcher replica, or removed): their last values would read as a stalled feed. The
        counters stay; they are summed across replicas."""
        for gauge in (
            self.feed_last_fetch_seconds,
            self.feed_last_success,
            self.feed_error_streak,
            self.feed_last_new_item,
            self.feed_interval,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(feed)

    def set_active(self, service: str, active: bool) -> None:
        self.active_replica.labels(service).set(1 if active else 0)
        self.health.set_standby(service, not active)

    def consumer_stopped(self, service: str, group: str) -> None:
        for gone in self._lag_labels.pop(group, set()):
            self.consumer_lag.remove(group, *gone)
        self.consumer_assigned.labels(service).set(0)
        self.health.consumer_stopped(service)

    def set_broker_reachable(self, reachable: bool) -> None:
        self.broker_reachable.set(1 if reachable else 0)
        self.health.set_broker_reachable(reachable)


class OpsServer:
    """/metrics, /healthz (process up) and /readyz (dependencies reachable) on one port."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _OneFamily:
    """A registry of one collected family, for the exposition encoders."""

    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> list[Metric]:
        return [self._family]


_EOF = b"# EOF\n"


def _streamed_metrics(registry: CollectorRegistry) -> WsgiApp:
    """/metrics written one metric family at a time (gzip when asked, as make_wsgi_app does).

    make_wsgi_app renders the whole page as one string, then bytes, then gzip: with 10,000
    feeds 80,000 lines, 20 MB held during each scrape (BENCHMARKS.md). Streamed, a scrape
    holds about one family. Requests with parameters (`name[]` filters) and other methods
    go to make_wsgi_app."""
    baked = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return baked(environ, start_response)  # type: ignore[no-any-return]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT") or "")
        compress = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or "")
        headers = [("Content-Type", content_type)]
        if compress:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return _chunks(registry, encoder, compress)

    return app


def _chunks(
    registry: CollectorRegistry, encoder: Callable[[Any], bytes], compress: bool
) -> Iterator[bytes]:
    gz = zlib.compressobj(wbits=16 + zlib.MAX_WBITS) if compress else None
    ends_with_eof = False  # OpenMetrics: one `# EOF` line, after the last family
    for family in registry.collect():
        chunk = encoder(_OneFamily(family))
        if chunk.endswith(_EOF):
            chunk, ends_with_eof = chunk[: -len(_EOF)], True
        yield gz.compress(chunk) if gz is not None else chunk
    tail = _EOF if ends_with_eof else b""
    yield gz.compress(tail) + gz.flush() if gz is not None else tail


def _ops_app(
    metrics: Metrics, is_ready: Callable[[], bool], detail: Callable[[], str] | None
) -> Callable[..., Iterable[bytes]]:
    metrics_app = _streamed_metrics(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        mounted = metrics.routes.match(path)
        if mounted is not None:
            return mounted(environ, start_response)
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ready = is_ready()
            start_response(
                "200 OK" if ready else "503 Service Unavailable", [("Content-Type", "text/plain")]
            )
            text = "ready" if ready else "not ready"
            if not ready and detail is not None:
                text = f"{text}: {detail()}"
            notes = metrics.health.notes()
            if ready and notes:
                text = f"{text} ({'; '.join(notes)})"
            return [f"{text}\n".encode()]
        return metrics_app(environ, start_response)

    return app


def serve_ops(
    metrics: Metrics,
    host: str,
    port: int,
    is_ready: Callable[[], bool] = lambda: True,
    detail: Callable[[], str] | None = None,
) -> OpsServer:
    """Serve the ops endpoints in a background thread (port 0 picks a free port).

    /readyz answers 200 when `is_ready()`, else 503 with `detail()` (why not) in the body.
    """
    server = make_server(
        host,
        port,
        _ops_app(metrics, is_ready, detail),
        ThreadingWSGIServer,
        handler_class=_SilentHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="newsmon-ops", daemon=True)
    thread.start()
    return OpsServer(server, thread)
