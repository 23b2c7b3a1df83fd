"""Starting services: the local broker when needed, topics, /metrics, signals, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from newsmon import __version__
from newsmon.shared.broker import LocalKafka, broker_ready
from newsmon.shared.errors import KafkaAccessError
from newsmon.shared.kafka import ensure_topics, security_kwargs
from newsmon.shared.lifecycle import install_stop_signals, run_until_stopped, sleep_or_stop
from newsmon.shared.logging import Outage, count_kafka_connect_failures
from newsmon.shared.metrics import Metrics, serve_ops
from newsmon.shared.services import ServiceMain, service
from newsmon.shared.settings import Settings

__all__ = ["local_bootstrap", "serve"]

log = logging.getLogger("newsmon")


def local_bootstrap(settings: Settings) -> str:
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.kafka_local_port}"


async def _start_local_broker(settings: Settings) -> LocalKafka | None:
    """Use a broker already answering on the local port, else start one. Returns the broker
    this call started (to stop on exit), or None when it reused one."""
    bootstrap = local_bootstrap(settings)
    if await broker_ready(bootstrap, timeout_s=2.0):
        log.info("using the Kafka broker already running at %s", bootstrap)
        return None
    broker = LocalKafka(
        settings.kafka_local_dir, port=settings.kafka_local_port, heap=settings.kafka_local_heap
    )
    log.info("NEWSMON_KAFKA_BOOTSTRAP is unset: starting a local Kafka broker on %s", bootstrap)
    # Started from the main thread on purpose: the broker is tied to its parent *thread*
    # (PR_SET_PDEATHSIG), and a worker thread may end long before newsmon does.
    broker.start()
    took = await broker.wait_ready()
    log.info("local Kafka broker ready in %.1fs (log: %s)", took, broker.log_file)
    return broker


async def serve(
    settings: Settings,
    names: Sequence[str],
    *,
    process_name: str,
    start_broker: bool,
    stop: asyncio.Event | None = None,
    metrics: Metrics | None = None,
    on_ops_started: Callable[[int], None] | None = None,
) -> int:
    """Run the named services in this process until SIGTERM/SIGINT (or until `stop` is set,
    when the caller owns stopping, as tests do). Returns the exit code.
    `on_ops_started` is called with the port of /metrics once it listens (useful with port 0)."""
    if stop is None:
        stop = asyncio.Event()
        install_stop_signals(stop)
    broker = await _start_local_broker(settings) if start_broker else None
    settings = settings.with_overrides(kafka_bootstrap=local_bootstrap(settings))
    metrics = metrics or Metrics(version=__version__)
    consumers = _consumer_services(names)
    try:
        ops = serve_ops(
            metrics,
            settings.metrics_host,
            settings.metrics_port_for(process_name),
            is_ready=lambda: not metrics.health.problems(consumers),
            detail=lambda: "; ".join(metrics.health.problems(consumers)),
        )
    except OSError as exc:
        port = settings.metrics_port_for(process_name)
        log.error(
            "cannot serve /metrics on %s:%d: %s (set NEWSMON_METRICS_PORT)",
            settings.metrics_host,
            port,
            exc.strerror or exc,
        )
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        return 2
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, ops.port)
    if on_ops_started is not None:
        on_ops_started(ops.port)
    probe = asyncio.create_task(_probe_broker(settings, metrics, stop), name="broker-probe")
    stop_counting = count_kafka_connect_failures(metrics.kafka_connect_failures.inc)
    try:
        try:
            await _wait_for_broker(settings, stop)
        except KafkaAccessError as exc:
            log.error("%s", exc)  # the one line: retrying cannot fix credentials
            stop.set()  # ends the broker probe too
            return 2
        if stop.is_set():
            return 0
        created = await ensure_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
        services = [(name, _bind(service(name).load(), settings, metrics, stop)) for name in names]
        log.info("running %s (Ctrl-C or SIGTERM stops)", ", ".join(names))
        return await run_until_stopped(services, stop, settings.shutdown_timeout_s)
    finally:
        stop_counting()
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
        ops.close()
        if broker is not None:
            await asyncio.to_thread(broker.stop)
            log.info("stopped the local Kafka broker")


def _consumer_services(names: Sequence[str]) -> list[str]:
    """Services that are ready only while their consumer holds partitions (/readyz); one that
    runs idle on purpose says so (`Health.set_idle`: the notifier without a webhook)."""
    return [name for name in names if service(name).needs_partitions]


async def _probe_broker(settings: Settings, metrics: Metrics, stop: asyncio.Event) -> None:
    """Keep /readyz and `newsmon_broker_reachable` current: a metadata request every few s.
    Says once when the broker became unreachable and once when it answers again (the client
    library's own lines about it are summarised, see shared/logging.py)."""
    bootstrap = local_bootstrap(settings)
    security = security_kwargs(settings)
    seen_up = False  # before that, _wait_for_broker speaks for a broker that is not up yet
    outage = Outage()
    while not stop.is_set():
        try:
            reachable = await broker_ready(bootstrap, timeout_s=3.0, security=security)
        except KafkaAccessError:
            reachable = False  # said once by _wait_for_broker (start-up) or by the clients
        metrics.set_broker_reachable(reachable)
        if reachable and (lasted := outage.end()) is not None:
            log.info("Kafka at %s is reachable again after %.0fs", bootstrap, lasted)
        elif not reachable and seen_up and outage.begin():
            log.warning(
                "Kafka at %s is unreachable (since %s); the services retry by themselves",
                bootstrap,
                outage.started_at.isoformat(timespec="seconds") if outage.started_at else "?",
            )
        seen_up = seen_up or reachable
        await sleep_or_stop(stop, 5.0)


def _bind(
    main: ServiceMain, settings: Settings, metrics: Metrics, stop: asyncio.Event
) -> Callable[[], Coroutine[Any, Any, None]]:
    return lambda: main(settings, metrics, stop)


async def _wait_for_broker(settings: Settings, stop: asyncio.Event) -> None:
    """A broker that is down at start-up is waited for (and said so), not a crash; one that
    refuses the credentials or the TLS settings raises KafkaAccessError at once."""
    assert settings.kafka_bootstrap is not None
    started, warned = time.monotonic(), False
    security = security_kwargs(settings)
    while not stop.is_set() and not await broker_ready(settings.kafka_bootstrap, security=security):
        if not warned:
            log.warning("Kafka at %s does not answer yet; waiting for it", settings.kafka_bootstrap)
            warned = True
        await sleep_or_stop(stop, 2.0)
    if warned and not stop.is_set():
        log.info("Kafka answered after %.0fs", time.monotonic() - started)
