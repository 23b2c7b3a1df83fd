"""The one table of newsmon's services. `newsmon run`, the per-service commands and their
--help (cli.py), the runner, /readyz and the default /metrics ports (settings.py) are all
derived from it: adding a service is one row here (see docs/ARCHITECTURE.md).

Entry points are named, not imported, so that reading the table (`newsmon --help`, settings)
loads no service code and no module imports the CLI back."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from newsmon.shared.metrics import Metrics
    from newsmon.shared.settings import Settings

__all__ = [
    "RUN_METRICS_PORT",
    "SERVICES",
    "SERVICE_NAMES",
    "Service",
    "ServiceMain",
    "client_id",
    "consumer_group",
    "service",
]

ServiceMain = Callable[["Settings", "Metrics", asyncio.Event], Coroutine[Any, Any, None]]

# `newsmon run` (every service in one process) serves one /metrics endpoint on this port.
RUN_METRICS_PORT: Final = 9400


@dataclass(frozen=True, slots=True)
class Service:
    name: str  # the `newsmon <name>` command and the `service` label of the metrics
    entry_point: str  # "module:function", a ServiceMain, imported only when the service runs
    metrics_port: int  # default /metrics port when run alone (services side by side on a host)
    consumes: tuple[str, ...]  # `Topics` attributes this service reads
    help: str  # one line: the command's help in `newsmon --help`
    # Ready (/readyz) only while its consumer group holds partitions; a surplus replica (more
    # replicas than partitions) then reports not ready: it runs but does no work.
    needs_partitions: bool = False

    def load(self) -> ServiceMain:
        module, _, function = self.entry_point.partition(":")
        main: ServiceMain = getattr(importlib.import_module(module), function)
        return main


SERVICES: Final[tuple[Service, ...]] = (
    Service(
        "fetcher",
        "newsmon.fetcher.app:run",
        9401,
        ("feeds", "articles"),
        "poll the feeds of NEWSMON_FEEDS_FILE and publish articles",
    ),
    Service(
        "classifier",
        "newsmon.classifier.app:run",
        9402,
        ("articles",),
        "classify articles and publish verdicts",
        needs_partitions=True,
    ),
    Service(
        "alerter",
        "newsmon.alerter.app:run",
        9403,
        ("classified",),
        "turn matching verdicts into alerts on newsmon.alerts.v1",
        needs_partitions=True,
    ),
    Service(
        "notifier",
        "newsmon.notifier.app:run",
        9404,
        ("alerts",),
        "post alerts to the Slack webhook NEWSMON_SLACK_WEBHOOK_URL",
        needs_partitions=True,
    ),
    Service(
        "web",
        "newsmon.web.app:run",
        9405,
        ("alerts", "articles"),
        "serve the analysts' page (alerts, stories, feeds; live) on "
        "http://NEWSMON_WEB_HOST:NEWSMON_WEB_PORT/ (default http://127.0.0.1:8480/)",
    ),
)

SERVICE_NAMES: Final[tuple[str, ...]] = tuple(s.name for s in SERVICES)


def service(name: str) -> Service:
    """The row of `name`; KeyError for a name not in the table."""
    for row in SERVICES:
        if row.name == name:
            return row
    raise KeyError(name)


def consumer_group(topic_prefix: str, name: str) -> str:
    """The Kafka consumer group every replica of service `name` joins (so they share the
    partitions, and lag tools find it): `<prefix>-<name>`."""
    return f"{topic_prefix}-{name}"


def client_id(topic_prefix: str, name: str, instance_id: str) -> str:
    """The Kafka client id of service `name`'s clients in replica `instance_id` (broker logs
    and quotas tell the replicas apart): `<prefix>-<name>.<instance id>`."""
    return f"{consumer_group(topic_prefix, name)}.{instance_id}"
