"""The Grafana dashboard, generated from code: a small typed builder and the newsmon dashboard.

`newsmon dashboard -o deploy/grafana/dashboards/newsmon.json` writes it; a test checks the
committed file equals what this module builds, and the real-Prometheus test runs every query.

The JSON follows Grafana's dashboard model (grafana.com/docs/grafana/latest/dashboards/
build-dashboards/view-dashboard-json-model/): panels on a 24-column grid (`gridPos`), `row`
panels as section headers, Prometheus targets with `expr`/`legendFormat`/`instant`, units in
`fieldConfig.defaults.unit`. Panels take their data source from the `datasource` template
variable, so the file imports into any Grafana with a Prometheus data source, and the
provisioned one (deploy/grafana/provisioning) is picked by default. Queries use
`$__rate_interval`, which Grafana sizes from the scrape interval (grafana.com/docs/grafana/
latest/datasources/prometheus/template-variables/#use-__rate_interval).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Dashboard",
    "Panel",
    "Row",
    "Target",
    "build_dashboard",
    "expressions",
    "render",
]

GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PanelKind = Literal["timeseries", "stat", "table"]

# The main alert topic is `<prefix>.alerts.v1`; routed topics and the alerter's state topic
# have other names, so this selects "alerts raised" whatever the prefix.
MAIN_ALERTS = 'service="alerter", topic=~".+\\\\.alerts\\\\.v1"'


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False  # one value per series (tables, stats) instead of a time series


@dataclass(frozen=True)
class Panel:
    title: str
    targets: Sequence[Target]
    kind: PanelKind = "timeseries"
    unit: str = "short"
    description: str = ""
    width: int = 8
    height: int = 8
    # Table only: the column title of each target's value, in target order.
    columns: Sequence[str] = ()
    # Field overrides by column title: unit per column (tables).
    column_units: dict[str, str] = field(default_factory=dict)
    mappings: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    rows: Sequence[Row]
    description: str = ""
    tags: Sequence[str] = ()
    refresh: str = "30s"
    time_from: str = "now-6h"

    def to_json(self) -> dict[str, Any]:
        panels: list[dict[str, Any]] = []
        y, next_id = 0, 1
        for row in self.rows:
            panels.append(
                {
                    "type": "row",
                    "id": next_id,
                    "title": row.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                    "panels": [],
                }
            )
            next_id += 1
            y += 1
            x, line_height = 0, 0
            for panel in row.panels:
                if x + panel.width > GRID_WIDTH:  # wrap onto the next line of the row
                    x, y, line_height = 0, y + line_height, 0
                panels.append(_panel_json(panel, next_id, x, y))
                next_id += 1
                x += panel.width
                line_height = max(line_height, panel.height)
            y += line_height
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": True,
            "graphTooltip": 1,  # shared crosshair
            "refresh": self.refresh,
            "schemaVersion": 39,
            "time": {"from": self.time_from, "to": "now"},
            "timezone": "utc",
            "templating": {
                "list": [
                    {
                        "name": "datasource",
                        "label": "Prometheus",
                        "type": "datasource",
                        "query": "prometheus",
                        "current": {"text": "Prometheus (newsmon)", "value": "newsmon-prometheus"},
                        "hide": 0,
                    }
                ]
            },
            "annotations": {"list": []},
            "panels": panels,
        }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    refs = [chr(ord("A") + i) for i in range(len(panel.targets))]
    targets = [
        {
            "refId": ref,
            "datasource": DATASOURCE,
            "expr": t.expr,
            "legendFormat": t.legend or "__auto",
            "instant": t.instant,
            "range": not t.instant,
            "format": "table" if panel.kind == "table" else "time_series",
        }
        for ref, t in zip(refs, panel.targets, strict=True)
    ]
    out: dict[str, Any] = {
        "type": panel.kind,
        "id": panel_id,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "mappings": list(panel.mappings)},
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": name},
                    "properties": [{"id": "unit", "value": unit}],
                }
                for name, unit in panel.column_units.items()
            ],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
    }
    if panel.kind == "table":
        # One row per feed: merge the instant queries on their labels, hide the timestamps,
        # name the value columns (Grafana's merge + organize transformations).
        out["transformations"] = [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        f"Value #{ref}": title
                        for ref, title in zip(refs, panel.columns, strict=True)
                    },
                },
            },
        ]
        out["options"] = {"showHeader": True, "cellHeight": "sm"}
    if panel.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return out


def _rate(metric: str, by: str, selector: str = "") -> str:
    sel = f"{{{selector}}}" if selector else ""
    return f"sum by ({by}) (rate({metric}{sel}[$__rate_interval]))"


def _quantile(q: float, histogram: str, by: str) -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({histogram}_bucket[$__rate_interval])))"


def build_dashboard() -> Dashboard:
    overview = Row(
        "Pipeline overview",
        [
            Panel(
                "Items in per second, by stage",
                [Target(_rate("newsmon_items_in_total", "service"), "{{service}}")],
                unit="ops",
                description="Records each stage consumed (fetcher: none; it reads feeds).",
            ),
            Panel(
                "Items out per second, by stage",
                [Target(_rate("newsmon_items_out_total", "service"), "{{service}}")],
                unit="ops",
                description="Records each stage published, acknowledged by Kafka (notifier: "
                "Slack posts).",
            ),
            Panel(
                "Alerts per hour",
                [Target(f"sum(increase(newsmon_items_out_total{{{MAIN_ALERTS}}}[1h]))", "alerts")],
                kind="stat",
                width=4,
                description="Alert revisions written to the main alerts topic in the last hour.",
            ),
            Panel(
                "Kafka reachable",
                [Target("min(newsmon_broker_reachable)", "reachable")],
                kind="stat",
                width=4,
                mappings=[
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "DOWN", "color": "red"},
                            "1": {"text": "OK", "color": "green"},
                        },
                    }
                ],
            ),
            Panel(
                "End-to-end latency (p50, p95)",
                [
                    Target(
                        _quantile(0.5, "newsmon_alert_latency_seconds", "since"),
                        "p50 since {{since}}",
                    ),
                    Target(
                        _quantile(0.95, "newsmon_alert_latency_seconds", "since"),
                        "p95 since {{since}}",
                    ),
                ],
                unit="s",
                width=12,
                description="From the article's fetch (since=fetched) or its publication by the "
                "outlet (since=published) to its alert.",
            ),
            Panel(
                "Errors per second, by stage and kind",
                [Target(_rate("newsmon_errors_total", "service, kind"), "{{service}} {{kind}}")],
                unit="ops",
                width=12,
            ),
        ],
    )
    feeds = Row(
        "Feeds",
        [
            Panel(
                "Feeds",
                [
                    Target("max by (feed) (newsmon_feed_error_streak) == bool 0", instant=True),
                    Target(
                        "max by (feed) (newsmon_feed_last_success_timestamp_seconds) * 1000",
                        instant=True,
                    ),
                    Target(
                        "max by (feed) (newsmon_feed_last_new_item_timestamp_seconds) * 1000",
                        instant=True,
                    ),
                    Target("max by (feed) (newsmon_feed_error_streak)", instant=True),
                    Target(
                        'sum by (feed) (increase(newsmon_feed_items_total{status="new"}[1h]))',
                        instant=True,
                    ),
                    Target(
                        "max by (feed) (newsmon_feed_last_fetch_duration_seconds)", instant=True
                    ),
                ],
                kind="table",
                width=24,
                height=10,
                columns=(
                    "Status",
                    "Last success",
                    "Last new item",
                    "Error streak",
                    "New items/h",
                    "Last fetch took",
                ),
                column_units={
                    "Last success": "dateTimeFromNow",
                    "Last new item": "dateTimeFromNow",
                    "New items/h": "short",
                    "Last fetch took": "s",
                },
                mappings=[
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "FAILING", "color": "red"},
                            "1": {"text": "OK", "color": "green"},
                        },
                    }
                ],
                description="One row per configured feed. Status: OK when the last fetch "
                "succeeded.",
            ),
            Panel(
                "Fetches per second, by outcome",
                [Target(_rate("newsmon_feed_fetches_total", "outcome"), "{{outcome}}")],
                unit="ops",
                width=12,
            ),
            Panel(
                "Fetch duration p95, by outcome",
                [
                    Target(
                        _quantile(0.95, "newsmon_feed_fetch_duration_seconds", "outcome"),
                        "{{outcome}}",
                    )
                ],
                unit="s",
                width=12,
                description="All feeds together; per feed, see the slowest feeds and the "
                "Feeds table.",
            ),
            Panel(
                "Slowest feeds, last fetch duration",
                [
                    Target(
                        "topk(10, max by (feed) (newsmon_feed_last_fetch_duration_seconds))",
                        "{{feed}}",
                    )
                ],
                unit="s",
                width=12,
                description="The 10 feeds whose last fetch (and parse) took longest.",
            ),
            Panel(
                "New items per hour, by feed",
                [
                    Target(
                        'sum by (feed) (increase(newsmon_feed_items_total{status="new"}[1h]))',
                        "{{feed}}",
                    )
                ],
                width=12,
            ),
        ],
    )
    classifier = Row(
        "Classifier",
        [
            Panel(
                "Match rate",
                [
                    Target(
                        'sum(rate(newsmon_classifier_verdicts_total{match="true"}'
                        "[$__rate_interval])) / "
                        "sum(rate(newsmon_classifier_verdicts_total[$__rate_interval]))",
                        "matching share",
                    )
                ],
                unit="percentunit",
                description="Share of classified articles that match (become alert candidates).",
            ),
            Panel(
                "Matches per hour, by category",
                [
                    Target(
                        "sum by (category) "
                        "(increase(newsmon_classifier_category_matches_total[1h]))",
                        "{{category}}",
                    )
                ],
            ),
            Panel(
                "Batch duration p95, by stage",
                [
                    Target(
                        _quantile(0.95, "newsmon_batch_duration_seconds", "service"), "{{service}}"
                    )
                ],
                unit="s",
                description="Transform plus publish (and commit) of one consumed batch.",
            ),
        ],
    )
    slack = Row(
        "Alerter and Slack",
        [
            Panel(
                "Slack attempts per second, by outcome",
                [Target(_rate("newsmon_slack_sends_total", "outcome"), "{{outcome}}")],
                unit="ops",
                description="ok; retry_5xx / retry_429 / retry_network (retried); permanent "
                "(refused, dead-lettered); gave_up (retried later).",
            ),
            Panel(
                "Slack retries per hour, by reason",
                [
                    Target(
                        "sum by (reason) (increase(newsmon_slack_retries_total[1h]))", "{{reason}}"
                    )
                ],
            ),
            Panel(
                "Slack failures per hour",
                [
                    Target(
                        "sum by (outcome) "
                        '(increase(newsmon_slack_sends_total{outcome=~"gave_up|permanent"}[1h]))',
                        "{{outcome}}",
                    )
                ],
            ),
            Panel(
                "Slack delivery latency p95",
                [Target(_quantile(0.95, "newsmon_slack_delivery_seconds", ""), "p95")],
                unit="s",
                width=12,
                description="From the alert's creation to Slack's 2xx.",
            ),
            Panel(
                "Dead letters per hour, by stage and reason",
                [
                    Target(
                        "sum by (service, reason) (increase(newsmon_dlq_messages_total[1h]))",
                        "{{service}} {{reason}}",
                    )
                ],
                width=12,
            ),
        ],
    )
    kafka = Row(
        "Kafka",
        [
            Panel(
                "Consumer lag, by group",
                [Target("sum by (group) (newsmon_consumer_lag_messages)", "{{group}}")],
                description="Records each consumer group still has to read (high watermark "
                "minus position).",
            ),
            Panel(
                "Consumer lag, by partition",
                [
                    Target(
                        "max by (group, topic, partition) (newsmon_consumer_lag_messages)",
                        "{{group}} {{topic}}/{{partition}}",
                    )
                ],
            ),
            Panel(
                "Assigned partitions, by service",
                [Target("sum by (service) (newsmon_consumer_assigned_partitions)", "{{service}}")],
                description="0 for a consumer service: it does no work (not ready).",
            ),
        ],
    )
    return Dashboard(
        uid="newsmon-overview",
        title="newsmon",
        description="Feeds to alerts: throughput, freshness, classifier, Slack, Kafka lag. "
        "Generated by `newsmon dashboard` (shared/dashboard.py): edit the code, not this JSON.",
        tags=("newsmon",),
        rows=(overview, feeds, classifier, slack, kafka),
    )


def render(dashboard: Dashboard | None = None) -> str:
    """The dashboard as the JSON file Grafana provisions (stable: same code, same bytes)."""
    model = (dashboard or build_dashboard()).to_json()
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def expressions(dashboard: Dashboard | None = None) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard."""
    for row in (dashboard or build_dashboard()).rows:
        for panel in row.panels:
            for target in panel.targets:
                yield panel.title, target.expr
