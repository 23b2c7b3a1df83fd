"""`newsmon web`: the analysts' page on the alert and fetcher-state topics.

Starlette (ASGI) served by uvicorn in the service's event loop. Three Kafka readers (no
consumer group, read_committed) fill the in-memory views: the alerts topic from the beginning
of its retention, the compacted fetcher-state topic from the beginning, the articles topic
from 24 hours ago (items per feed). Every page is rendered on the server with its data (works
with curl and without JavaScript); /events streams new and updated alert cards (server-sent
events) to a small script that inserts them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from jinja2 import Environment, PackageLoader, select_autoescape
from newsmon.fetcher.state import FeedState, state_topic
from newsmon.shared.errors import ConfigError
from newsmon.shared.kafka import make_reader, seek_to_time, stop_consumer
from newsmon.shared.lifecycle import sleep_or_stop
from newsmon.shared.messages import Alert, MessageDecodeError, decode
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings
from newsmon.shared.statetopic import wait_for_partitions
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import render
from .feeds import DAY_S, ItemCounter, feed_health
from .store import SINCE_CHOICES, AlertFilter, AlertStore, alerts_per_day

__all__ = ["WebData", "bind_socket", "check_access", "create_app", "run", "web_token"]

log = logging.getLogger("newsmon.web")

STATIC = Path(__file__).with_name("static")
# Defence in depth behind escaping: no inline script, no foreign origin, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_LIMIT = 200


@dataclass
class WebData:
    """Everything the pages show; filled by the Kafka readers, read by the handlers."""

    store: AlertStore
    feed_states: dict[str, FeedState] = field(default_factory=dict)
    items: ItemCounter = field(default_factory=ItemCounter)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False  # set on shutdown: live streams end

    def notify(self) -> None:
        """Wake every live stream; each makes a new event to wait on next."""
        self.changed.set()
        self.changed = asyncio.Event()


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("newsmon.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        highlight=render.highlight,
        safe_href=render.safe_href,
        when=render.when,
        colour_index=render.colour_index,
    )
    env.filters["unix_time"] = lambda t: render.when(
        datetime.fromtimestamp(t, UTC) if t is not None else None
    )
    return env


def _page_of(path: str) -> str:
    """A bounded label for the requests metric."""
    first = path.strip("/").split("/", 1)[0]
    return {"": "alerts", "story": "story", "feeds": "feeds", "events": "events"}.get(
        first, "static" if first == "static" else "other"
    )


class AccessGuard:
    """Read-only access control and security headers for every response (pure ASGI, so the
    event stream is not buffered). With a token set, a request needs `Authorization: Bearer
    <token>` or basic auth whose password is the token."""

    def __init__(self, app: ASGIApp, token: str | None, metrics: Metrics) -> None:
        self.app, self.token, self.metrics = app, token, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = _page_of(scope.get("path", "/"))
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            if self.token is not None and not check_access(
                dict(scope.get("headers", [])).get(b"authorization", b""), self.token
            ):
                response = PlainTextResponse(
                    "newsmon: this page needs the NEWSMON_WEB_TOKEN (bearer or basic auth)\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="newsmon", charset="UTF-8"'},
                )
                await response(scope, receive, send_with_headers)
                return
            await self.app(scope, receive, send_with_headers)
        finally:
            self.metrics.web_requests.labels(page, str(status or 500)).inc()


def check_access(authorization: bytes, token: str) -> bool:
    """True when the Authorization header carries the token (bearer, or basic-auth password)."""
    scheme, _, value = authorization.decode("latin-1").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        given = value
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def create_app(data: WebData, metrics: Metrics, *, token: str | None = None) -> ASGIApp:
    """The web application over `data` (tests build one on data they fill themselves)."""
    env = _environment()

    def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status_code)

    def now() -> datetime:
        return datetime.now(UTC)

    async def alerts_page(request: Request) -> Response:
        flt = AlertFilter.from_query(request.query_params)
        stories = data.store.query(flt, now(), PAGE_LIMIT)
        chart = render.chart_svg(alerts_per_day(data.store.stories(), now().date()))
        return page(
            "alerts.html",
            stories=stories,
            flt=flt,
            facets=data.store.facets(),
            since_choices=[c for c in SINCE_CHOICES if c],
            seq=data.store.seq,
            total=len(data.store),
            limit=PAGE_LIMIT,
            chart=chart,
            events_query=flt.as_query(),
        )

    async def story_page(request: Request) -> Response:
        story = data.store.story(request.path_params["alert_id"])
        if story is None:
            return page("missing.html", what="story", status_code=404)
        return page("story.html", story=story, alert=story.latest)

    async def feeds_page(request: Request) -> Response:
        moment = time.time()
        rows = feed_health(data.feed_states, data.items.last_24h(moment), moment)
        return page("feeds.html", rows=rows)

    async def events(request: Request) -> Response:
        flt = AlertFilter.from_query(request.query_params)
        # A reconnecting EventSource says where it got to (Last-Event-ID): resume there.
        resume = request.headers.get("last-event-id") or request.query_params.get("since", "0")
        try:
            since = int(resume)
        except ValueError:
            since = 0
        card = env.get_template("_card.html")

        async def stream() -> AsyncIterator[ServerSentEvent]:
            nonlocal since
            metrics.web_live_clients.inc()
            try:
                while True:
                    waiter = data.changed
                    changes = data.store.changed_since(since)
                    if changes is None:  # fell too far behind: the page reloads itself
                        yield ServerSentEvent(data="", event="reload")
                        return
                    since, stories = changes
                    for story in stories:
                        if flt.matches(story, now()):
                            html = card.render(story=story, alert=story.latest)
                            yield ServerSentEvent(data=html, event="story", id=str(since))
                    await waiter.wait()
                    if data.closing:
                        return
            finally:
                metrics.web_live_clients.dec()

        return EventSourceResponse(stream(), ping=15, send_timeout=30)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def json_alerts(request: Request) -> Response:
        flt = AlertFilter.from_query(request.query_params)
        stories = data.store.query(flt, now(), PAGE_LIMIT)
        body = [json.loads(s.latest.model_dump_json(by_alias=True)) for s in stories]
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/", alerts_page),
            Route("/story/{alert_id}", story_page),
            Route("/feeds", feeds_page),
            Route("/events", events),
            Route("/alerts.json", json_alerts),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    return AccessGuard(app, token, metrics)


# --- Kafka readers -------------------------------------------------------------------------

Handler = Callable[[ConsumerRecord[bytes, bytes]], None]


async def follow(
    settings: Settings,
    topic: str,
    handle: Handler,
    stop: asyncio.Event,
    *,
    start_ms: Callable[[], int | None] = lambda: None,
    on_batch: Callable[[], None] = lambda: None,
) -> None:
    """Read every partition of `topic` (from the beginning, or from the time `start_ms` gives)
    and follow it until `stop`. A topic that does not exist yet is waited for.

    A live tail, not shared/statetopic.py's read to the end: it never ends, so it needs no
    end rule nor idle cap (a quiet topic is normal); it only tells `on_batch` when records
    came, and a Kafka failure is `follow_forever`'s to retry."""
    consumer = make_reader(
        settings, client_id=f"newsmon-web-{topic}", max_poll_records=settings.batch_size
    )
    await consumer.start()
    try:
        partitions = await _wait_for_partitions(settings, topic, stop)
        if not partitions:
            return
        consumer.assign(partitions)
        at = start_ms()
        if at is None:
            await consumer.seek_to_beginning(*partitions)
        else:
            await seek_to_time(consumer, partitions, at)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    handle(record)
            if batches:
                on_batch()
    finally:
        await stop_consumer(consumer)


async def follow_forever(
    settings: Settings,
    metrics: Metrics,
    topic: str,
    handle: Handler,
    stop: asyncio.Event,
    *,
    start_ms: Callable[[], int | None] = lambda: None,
    on_start: Callable[[], None] = lambda: None,
    on_batch: Callable[[], None] = lambda: None,
) -> None:
    """`follow`, started again after a Kafka failure (one log line each, counted): the page
    keeps serving what it has while the broker is away."""
    while not stop.is_set():
        on_start()
        try:
            await follow(settings, topic, handle, stop, start_ms=start_ms, on_batch=on_batch)
        except (KafkaError, OSError) as exc:
            metrics.errors.labels("web", "kafka").inc()
            log.warning("reading %s failed (%s); reading it again in 5 s", topic, exc)
            await sleep_or_stop(stop, 5.0)


async def _wait_for_partitions(
    settings: Settings, topic: str, stop: asyncio.Event
) -> list[TopicPartition]:
    """The topic's partitions, asked of the broker (a consumer's cached metadata may not know a
    topic created moments ago); a missing topic is waited for."""
    ids = await wait_for_partitions(
        settings,
        topic,
        every_s=5.0,
        on_missing=lambda: log.info(
            "topic %s does not exist yet; the web page waits for it", topic
        ),
        stop=stop,
    )
    return [TopicPartition(topic, p) for p in ids]


class _Readers:
    """Turns records into WebData updates; a bad record is counted and logged once per topic
    (one line, not thousands), then skipped."""

    def __init__(self, data: WebData, metrics: Metrics) -> None:
        self.data, self.metrics = data, metrics
        self._warned: set[str] = set()

    def _bad(self, record: ConsumerRecord[bytes, bytes], error: Exception) -> None:
        self.metrics.errors.labels("web", "decode").inc()
        if record.topic not in self._warned:
            self._warned.add(record.topic)
            log.warning(
                "skipping unreadable records of %s (first at partition %d offset %d: %s); "
                'more are counted in newsmon_errors_total{service="web",kind="decode"}',
                record.topic,
                record.partition,
                record.offset,
                error,
            )

    def alert(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            alert = decode(Alert, record.value)
        except MessageDecodeError as exc:
            self._bad(record, exc)
            return
        self.data.store.add(alert, record.value)

    def alerts_done(self) -> None:
        self.metrics.web_stories.set(len(self.data.store))
        self.data.notify()

    def state(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if not record.key:
            return
        name = record.key.decode("utf-8", errors="replace")
        if record.value is None:
            self.data.feed_states.pop(name, None)
            return
        try:
            self.data.feed_states[name] = FeedState.from_json(record.value)
        except (ValueError, TypeError) as exc:
            self._bad(record, exc)

    def reset_items(self) -> None:
        self.data.items = ItemCounter()  # read again from 24 h ago: count afresh

    def article(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            feed = json.loads(record.value or b"null")["feed"]
        except (ValueError, TypeError, KeyError) as exc:
            self._bad(record, exc)
            return
        self.data.items.add(str(feed), record.timestamp / 1000)


# --- serving -------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_token(settings: Settings) -> str | None:
    """The token the page requires, or ConfigError when it listens beyond loopback without
    one (an open page of the alerts on a network interface is refused, not served)."""
    token = settings.web_token.get_secret_value() if settings.web_token else None
    if token is not None and not token:
        raise ConfigError("NEWSMON_WEB_TOKEN is set but empty")
    if token is None and not _is_loopback(settings.web_host):
        raise ConfigError(
            f"newsmon web listens on {settings.web_host}, beyond loopback, without a token: "
            "set NEWSMON_WEB_TOKEN (or NEWSMON_WEB_TOKEN_FILE), or NEWSMON_WEB_HOST=127.0.0.1"
        )
    return token


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket (bound here so a busy port is one clear ConfigError)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot serve the web page on {host}:{port}: {exc.strerror or exc} "
            "(set NEWSMON_WEB_PORT or NEWSMON_WEB_HOST)"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: newsmon's stop event ends it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


async def run(
    settings: Settings,
    metrics: Metrics,
    stop: asyncio.Event,
    *,
    on_listening: Callable[[int], Awaitable[None] | None] | None = None,
) -> None:
    """Serve the page until `stop`. `on_listening` gets the port (useful with port 0)."""
    token = web_token(settings)
    data = WebData(store=AlertStore(settings.web_max_stories))
    readers = _Readers(data, metrics)
    app = create_app(data, metrics, token=token)
    sock = bind_socket(settings.web_host, settings.web_port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        server_header=False,
    )
    server = _Server(config)
    # newsmon logs the start itself; uvicorn's own start/stop lines add nothing but noise.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    topics = settings.topics

    def day_ago_ms() -> int:
        return int((time.time() - DAY_S) * 1000)

    async def stop_server() -> None:
        await stop.wait()
        data.closing = True
        data.notify()  # live streams see `closing` and end
        server.should_exit = True

    log.info("web page on http://%s:%d/", settings.web_host, port)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(server.serve(sockets=[sock]), name="web-server")
        tasks.create_task(stop_server(), name="web-stop")
        tasks.create_task(
            follow_forever(
                settings, metrics, topics.alerts, readers.alert, stop, on_batch=readers.alerts_done
            )
        )
        tasks.create_task(
            follow_forever(settings, metrics, state_topic(settings), readers.state, stop)
        )
        tasks.create_task(
            follow_forever(
                settings,
                metrics,
                topics.articles,
                readers.article,
                stop,
                start_ms=day_ago_ms,
                on_start=readers.reset_items,
            )
        )
        if on_listening is not None:
            result = on_listening(port)
            if result is not None:
                await result
    sock.close()
