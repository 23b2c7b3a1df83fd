"""All newsmon metrics, in one module (prefix `newsmon_`, units in names, bounded labels).

The registry is injected so tests read real values from a fresh registry and several pipelines
can run in one test process. Label values come from configuration (feed names, topic names,
service names) or from small fixed sets (outcomes), never from message content.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

__all__ = ["Metrics", "OpsServer", "serve_ops"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, version: str = "0") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("newsmon_build", "Version of the running newsmon", registry=r)
        self.build_info.info({"version": version})

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

        # Fetcher.
        self.feed_fetches = Counter(
            "newsmon_feed_fetches_total", "Feed fetches by outcome", ["feed", "outcome"], registry=r
        )
        self.feed_fetch_seconds = Histogram(
            "newsmon_feed_fetch_duration_seconds",
            "Time to fetch and parse one feed",
            ["feed"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
            registry=r,
        )
        self.feed_items = Counter(
            "newsmon_feed_items_total",
            "Feed entries by fate (new, duplicate, skipped)",
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
            "From the article's fetch to its alert",
            ["since"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )


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


def _ops_app(metrics: Metrics, is_ready: Callable[[], bool]) -> Callable[..., Iterable[bytes]]:
    metrics_app = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ready = is_ready()
            start_response(
                "200 OK" if ready else "503 Service Unavailable", [("Content-Type", "text/plain")]
            )
            return [b"ready\n" if ready else b"not ready\n"]
        return metrics_app(environ, start_response)  # type: ignore[no-any-return]

    return app


def serve_ops(
    metrics: Metrics, host: str, port: int, is_ready: Callable[[], bool] = lambda: True
) -> OpsServer:
    """Serve the ops endpoints in a background thread (port 0 picks a free port)."""
    server = make_server(
        host, port, _ops_app(metrics, is_ready), ThreadingWSGIServer, handler_class=_SilentHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="newsmon-ops", daemon=True)
    thread.start()
    return OpsServer(server, thread)
