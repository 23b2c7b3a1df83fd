"""WebSub subscriber (W3C Recommendation, https://www.w3.org/TR/websub/): feeds that advertise a
hub get pushed to us, and their new items are published within a second instead of a poll.

The flow, with the spec's sections:

* Discovery (§4): a parsed feed carries `<link rel="hub">` and `<link rel="self">` (parse.py,
  `ParsedFeed.hub_url` / `self_url`); the self URL is the topic. Both are also kept in the
  feed's state (`FeedState.extra["websub"]`), so a restarted fetcher subscribes at once.
* Subscribing (§5.1): POST hub.mode=subscribe, hub.topic, hub.callback, hub.lease_seconds and
  hub.secret (random per subscription, < 200 bytes, §5.1.1) to the hub, through the fetcher's
  own HTTP client: the SSRF guard of ssrf.py checks every connection, 307/308 hops included
  (§5.1.2 lets a hub redirect to another). A 2xx (202 expected) means "will verify"; anything
  else is retried with capped exponential back-off, as is a 202 never followed by a
  verification.
* Callback (§5.1.1): a capability URL per subscription, `<NEWSMON_WEBSUB_CALLBACK_URL>/<token>`
  with a random token; requests reach `/websub/<token>` on the service's HTTP port. The token
  is what identifies the subscription of a push: §7 forbids using the Link headers for that.
* Intent verification (§5.3, §5.3.1): a GET answers hub.challenge only when the token names a
  subscription we asked for and hub.topic is its topic; 404 otherwise. hub.lease_seconds is
  recorded and the subscription renewed at 80% of it (`renewal_at`). A denial (§5.2) is
  acknowledged and the subscription given up on until the feed names another hub or topic.
* Content distribution (§7, §8): a POST is answered 202 at once (§7: a 2xx acknowledges
  receipt, not processing). Its X-Hub-Signature (`sha1|sha256|sha384|sha512=<hex HMAC of the
  body>`, §8.1) is checked in constant time; a wrong or missing one gets the same 202 but the
  body is ignored and counted (§8.2). A valid body is parsed with parse_feed (in a worker
  thread) and goes through the fetcher's own dedupe/publish path. A push to an unknown token
  gets 410 Gone, so the hub drops that subscription.
* Polling continues, at the feed's max interval while a subscription is active, so nothing is
  lost when a hub fails silently; at the normal interval otherwise.

Renewals keep the callback and secret although §5.1.1 says the callback SHOULD change: a new
callback is a second subscription at the hub (§5.1: re-requests override only the same topic +
callback), so every item would be pushed twice until the old lease ends.

`Subscriptions` is the pure part (no I/O, time passed in); `WebSub` is the I/O edge: the
subscribe requests on the event loop and the callback, a WSGI app served by the ops server's
thread (shared/metrics.py `Routes`), which hands valid pushes to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from newsmon.shared.backoff import exponential_delay
from newsmon.shared.clock import Clock
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from .feeds import FeedConfig
from .parse import FeedParseError, ParsedFeed, parse_feed
from .state import FeedState

__all__ = [
    "CALLBACK_PATH",
    "PENDING",
    "RENEW_AT",
    "PushPublisher",
    "Subscription",
    "Subscriptions",
    "WebSub",
    "WebSubConfig",
    "renewal_at",
    "retry_delay",
    "signature_ok",
]

log = logging.getLogger("newsmon.fetcher")

CALLBACK_PATH: Final = "/websub/"
RENEW_AT: Final = 0.8  # renew after 80% of the granted lease
VERIFY_TIMEOUT_S: Final = 300.0  # a hub that accepted but did not verify by then: ask again
RETRY_MIN_S: Final = 60.0
RETRY_MAX_S: Final = 6 * 3600.0
MIN_LEASE_S: Final = 60.0  # a hub granting less is treated as granting this (no hot loop)
MAX_HUB_REDIRECTS: Final = 3
MAX_PUSH_BYTES_DEFAULT: Final = 10 * 1024 * 1024

# §8.1 recognized algorithm names (FIPS PUB 180-4).
_ALGORITHMS: Final[Mapping[str, Callable[..., Any]]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

# Subscription states (label values of newsmon_websub_subscriptions).
PENDING: Final = "pending"  # asked (or about to ask) the hub; waiting for its verification
ACTIVE: Final = "active"  # verified, lease running
EXPIRED: Final = "expired"  # verified once, lease ran out before a renewal was verified
DENIED: Final = "denied"  # the hub refused it (§5.2)
STATES: Final = (PENDING, ACTIVE, EXPIRED, DENIED)

# newsmon_websub_pushes_total outcomes.
PUSH_OUTCOMES: Final = ("published", "bad_signature", "unknown_topic", "parse_error", "failed")


def renewal_at(verified_at: float, lease_s: float) -> float:
    """When to renew a subscription verified at `verified_at` for `lease_s` seconds: after 80%
    of the lease, so a slow or failing hub leaves a fifth of it for retries (§5.3.1: the
    subscriber MUST re-request before the lease has elapsed)."""
    return verified_at + max(lease_s, MIN_LEASE_S) * RENEW_AT


def retry_delay(attempts: int) -> float:
    """Seconds before asking a hub again after `attempts` unsuccessful requests in a row."""
    return exponential_delay(RETRY_MIN_S, max(attempts, 1), RETRY_MAX_S)


def signature_ok(header: str | None, body: bytes, secret: str) -> bool:
    """Whether X-Hub-Signature (`method=hex`, §8.1) is the HMAC of `body` under `secret`.
    The comparison takes the same time wherever the first wrong digit is (hmac.compare_digest)."""
    if not header or "=" not in header:
        return False
    method, _, given = header.strip().partition("=")
    digest = _ALGORITHMS.get(method.strip().lower())
    if digest is None:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8", "replace"))


@dataclass
class Subscription:
    """One feed's subscription to one topic at one hub. Times are Unix seconds."""

    feed: str
    hub: str
    topic: str
    token: str  # the last path segment of the callback URL: a capability
    secret: str  # hub.secret: the HMAC key of pushes
    state: str = PENDING
    lease_s: float | None = None
    verified_at: float | None = None
    expires_at: float | None = None
    next_request_at: float = 0.0  # when to send the (next) subscribe request
    attempts: int = 0  # requests since the last verification

    def state_at(self, now: float) -> str:
        if self.state == ACTIVE and self.expires_at is not None and now >= self.expires_at:
            return EXPIRED
        return self.state


class Subscriptions:
    """Every subscription of this process, by feed and by callback token. Pure (the time is an
    argument) and thread-safe: the event loop changes it, the callback thread reads and
    verifies."""

    def __init__(self, lease_s: float, *, token: Callable[[], str] | None = None) -> None:
        self.lease_s = lease_s
        self._token = token or (lambda: secrets.token_urlsafe(24))
        self._lock = threading.Lock()
        self._by_feed: dict[str, Subscription] = {}
        self._by_token: dict[str, Subscription] = {}

    def want(self, feed: str, hub: str, topic: str, now: float) -> Subscription | None:
        """Make sure `feed` is subscribed to `topic` at `hub`; returns the new subscription
        when one was created (due at once), None when it already existed."""
        with self._lock:
            old = self._by_feed.get(feed)
            if old is not None and old.hub == hub and old.topic == topic:
                return None
            if old is not None:
                # The feed moved to another hub or topic: its old callback becomes unknown
                # (410 to pushes), so the old hub drops it.
                self._by_token.pop(old.token, None)
            sub = Subscription(
                feed, hub, topic, self._token(), secrets.token_hex(32), next_request_at=now
            )
            self._by_feed[feed] = sub
            self._by_token[sub.token] = sub
            return sub

    def drop(self, feed: str) -> None:
        with self._lock:
            sub = self._by_feed.pop(feed, None)
            if sub is not None:
                self._by_token.pop(sub.token, None)

    def get(self, feed: str) -> Subscription | None:
        with self._lock:
            return self._by_feed.get(feed)

    def by_token(self, token: str) -> Subscription | None:
        with self._lock:
            return self._by_token.get(token)

    def due(self, now: float) -> list[Subscription]:
        """Subscriptions whose (re)subscribe request is due: new ones, renewals at 80% of the
        lease, retries after a failure or a verification that never came."""
        with self._lock:
            return [
                s for s in self._by_feed.values() if s.state != DENIED and s.next_request_at <= now
            ]

    def next_due_at(self) -> float | None:
        with self._lock:
            times = [s.next_request_at for s in self._by_feed.values() if s.state != DENIED]
            return min(times, default=None)

    def requested(self, token: str, now: float) -> None:
        """A subscribe request is about to go out (before the POST: a hub may verify before it
        answers). Unless verified by VERIFY_TIMEOUT_S from now, it is sent again."""
        with self._lock:
            sub = self._by_token.get(token)
            if sub is None:
                return
            sub.attempts += 1
            sub.next_request_at = now + max(VERIFY_TIMEOUT_S, retry_delay(sub.attempts))

    def request_failed(self, token: str, now: float) -> None:
        """The hub refused the request or could not be reached: try again after a back-off
        (an active subscription stays active until its lease ends)."""
        with self._lock:
            sub = self._by_token.get(token)
            if sub is not None:
                sub.next_request_at = now + retry_delay(sub.attempts)

    def verify(
        self, token: str, mode: str, topic: str, lease_s: float | None, now: float
    ) -> Subscription | None:
        """Intent verification (§5.3.1): the subscription when `token` names one we asked for
        (pending, active or expired, never denied) and `topic` is its topic; None means 404.
        A verified subscribe starts a lease of `lease_s` (the hub's; ours when it sent none)
        and plans the renewal at 80% of it."""
        with self._lock:
            sub = self._by_token.get(token)
            if sub is None or mode != "subscribe" or topic != sub.topic or sub.state == DENIED:
                return None
            lease = max(lease_s if lease_s and lease_s > 0 else self.lease_s, MIN_LEASE_S)
            sub.state, sub.lease_s, sub.verified_at = ACTIVE, lease, now
            sub.expires_at = now + lease
            sub.next_request_at = renewal_at(now, lease)
            sub.attempts = 0
            return sub

    def deny(self, token: str, topic: str) -> Subscription | None:
        """The hub denied the subscription (§5.2): stop asking (until the feed names another
        hub or topic, or the process restarts)."""
        with self._lock:
            sub = self._by_token.get(token)
            if sub is None or topic != sub.topic:
                return None
            sub.state = DENIED
            return sub

    def is_active(self, feed: str, now: float) -> bool:
        with self._lock:
            sub = self._by_feed.get(feed)
            return sub is not None and sub.state_at(now) == ACTIVE

    def counts(self, now: float) -> dict[str, int]:
        with self._lock:
            found = dict.fromkeys(STATES, 0)
            for sub in self._by_feed.values():
                found[sub.state_at(now)] += 1
            return found


class PushPublisher(Protocol):
    """Where a push's items go: the fetcher's own dedupe and publish step (publish.Publisher),
    the same one a poll takes."""

    async def publish_parsed(
        self, feed: FeedConfig, state: FeedState, parsed: ParsedFeed
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class WebSubConfig:
    """The settings WebSub uses (NEWSMON_WEBSUB_CALLBACK_URL, NEWSMON_WEBSUB_LEASE_S, and the
    fetch limits a push body and a subscribe request get)."""

    callback_url: str | None
    lease_s: int
    max_push_bytes: int
    request_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> WebSubConfig:
        return cls(
            callback_url=settings.websub_callback_url,
            lease_s=settings.websub_lease_s,
            max_push_bytes=settings.fetch_max_bytes,
            request_timeout_s=settings.fetch_total_timeout_s,
        )


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _lease_of(values: Mapping[str, list[str]]) -> float | None:
    raw = (values.get("hub.lease_seconds") or [""])[0].strip()
    return float(raw) if raw.isdigit() else None


class WebSub:
    """The subscriber of one fetcher process: subscribe requests, renewals, the callback."""

    def __init__(
        self,
        config: WebSubConfig,
        metrics: Metrics,
        client: httpx.AsyncClient,
        feeds: Mapping[str, FeedConfig],
        states: Mapping[str, FeedState],
        publisher: PushPublisher,
        *,
        clock: Clock = time.time,
    ) -> None:
        if not config.callback_url:
            raise ValueError("WebSub needs NEWSMON_WEBSUB_CALLBACK_URL")
        self.config = config
        self.metrics = metrics
        self.client = client
        self.feeds = feeds  # live: the feeds this replica polls now (fleet.FeedTasks)
        self.states = states
        self.publisher = publisher
        self.clock = clock
        self.callback_base = config.callback_url.rstrip("/")
        self.max_push_bytes = config.max_push_bytes
        self.subscriptions = Subscriptions(float(config.lease_s))
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._push_locks: dict[str, asyncio.Lock] = {}
        for outcome in PUSH_OUTCOMES:  # every series exists from the start, at 0
            metrics.websub_pushes.labels(outcome)

    def callback_url(self, sub: Subscription) -> str:
        return f"{self.callback_base}/{sub.token}"

    # --- called by the fetcher, on the event loop ---------------------------------------------

    def is_active(self, feed: str) -> bool:
        """Whether pushes cover `feed` now (polling then slows to the feed's max interval)."""
        return self.subscriptions.is_active(feed, self.clock())

    def feed_parsed(self, feed: FeedConfig, state: FeedState, parsed: ParsedFeed) -> None:
        """A poll parsed `feed`: subscribe when it advertises a hub and a topic (§4), keep both
        in its state for the next start, forget the subscription when it no longer does."""
        hub, topic = parsed.hub_url, parsed.self_url
        if hub and topic and urlsplit(hub).scheme.lower() in ("http", "https"):
            state.extra["websub"] = {"hub": hub, "topic": topic}
            if self.subscriptions.want(feed.name, hub, topic, self.clock()) is not None:
                log.info(
                    "feed %s advertises WebSub hub %s: subscribing",
                    feed.name,
                    hub,
                    extra={"feed": feed.name},
                )
                self._wake.set()
        elif self.subscriptions.get(feed.name) is not None:
            state.extra.pop("websub", None)
            self.subscriptions.drop(feed.name)
            log.info("feed %s no longer advertises a WebSub hub", feed.name)
            self._wake.set()

    # --- the subscriber's own task ----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Mount the callback on the ops server, subscribe what the saved states name, then
        send every due (re)subscribe request until `stop`."""
        self._loop = asyncio.get_running_loop()
        self.metrics.routes.mount(CALLBACK_PATH, self.wsgi_app())
        log.info("WebSub callback at %s/<token>", self.callback_base)
        try:
            now = self.clock()
            for name, feed in self.feeds.items():
                saved = self.states.get(name)
                known = saved.extra.get("websub") if saved is not None else None
                if isinstance(known, dict) and known.get("hub") and known.get("topic"):
                    self.subscriptions.want(feed.name, str(known["hub"]), str(known["topic"]), now)
            while not stop.is_set():
                now = self.clock()
                for sub in self.subscriptions.due(now):
                    self.subscriptions.requested(sub.token, now)
                    self._spawn(self._subscribe(sub))
                self._refresh_gauge(now)
                next_at = self.subscriptions.next_due_at()
                wait = 60.0 if next_at is None else min(60.0, max(0.0, next_at - self.clock()))
                await self._sleep(stop, wait)
        finally:
            self.metrics.routes.unmount(CALLBACK_PATH)
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            self._wake.clear()

    def _refresh_gauge(self, now: float) -> None:
        for state, count in self.subscriptions.counts(now).items():
            self.metrics.websub_subscriptions.labels(state).set(count)

    async def _subscribe(self, sub: Subscription) -> None:
        """One subscribe request (§5.1); the verification arrives on the callback."""
        form = {
            "hub.mode": "subscribe",
            "hub.topic": sub.topic,
            "hub.callback": self.callback_url(sub),
            "hub.lease_seconds": str(self.config.lease_s),
            # §5.1.1: SHOULD only be sent over HTTPS. Sent anyway on an http:// hub: without
            # it pushes could not be authenticated at all, and we take none unsigned.
            "hub.secret": sub.secret,
        }
        url, outcome, detail = sub.hub, "failed", ""
        try:
            async with asyncio.timeout(self.config.request_timeout_s):
                for _hop in range(MAX_HUB_REDIRECTS + 1):
                    response = await self.client.post(url, data=form)
                    location = response.headers.get("Location", "")
                    if response.status_code in (307, 308) and location:  # §5.1.2: another hub
                        url = urljoin(url, location)
                        continue
                    if 200 <= response.status_code < 300:
                        outcome = "accepted"
                    else:
                        outcome = "refused"
                        detail = f"HTTP {response.status_code}: {response.text[:200].strip()}"
                    break
                else:
                    detail = f"more than {MAX_HUB_REDIRECTS} redirects"
        except TimeoutError:
            detail = "no answer in time"
        except httpx.HTTPError as exc:
            blocked = "refused to connect to" in str(exc)
            outcome = "blocked" if blocked else "failed"
            detail = f"{type(exc).__name__}: {exc}"
        except (httpx.InvalidURL, ValueError) as exc:
            # A hub or Location URL that is not a URL: the feed's fault, retried like a failure.
            detail = f"bad hub URL: {exc}"
        self.metrics.websub_requests.labels(outcome).inc()
        if outcome == "accepted":
            log.info(
                "feed %s: hub %s accepted the subscription to %s; awaiting its verification",
                sub.feed,
                url,
                sub.topic,
                extra={"feed": sub.feed},
            )
            return
        self.subscriptions.request_failed(sub.token, self.clock())
        log.warning(
            "feed %s: WebSub subscription at %s failed (%s): %s; will retry, polling meanwhile",
            sub.feed,
            url,
            outcome,
            detail,
            extra={"feed": sub.feed, "kind": outcome},
        )

    async def _take_push(self, sub: Subscription, body: bytes, content_type: str | None) -> None:
        """A verified push: parse it and publish what is new, like a poll would."""
        feed, state = self.feeds.get(sub.feed), self.states.get(sub.feed)
        if feed is None or state is None:
            self.metrics.websub_pushes.labels("unknown_topic").inc()
            return
        fetched_at = datetime.fromtimestamp(self.clock(), UTC)
        lock = self._push_locks.setdefault(feed.name, asyncio.Lock())
        try:
            parsed = await asyncio.to_thread(
                parse_feed,
                body,
                feed=feed,
                fetched_at=fetched_at,
                content_type=content_type,
                base_url=sub.topic,
            )
            async with lock:  # two pushes of one feed in a row: the second sees the first
                await self.publisher.publish_parsed(feed, state, parsed)
        except FeedParseError as exc:
            self.metrics.websub_pushes.labels("parse_error").inc()
            log.warning("feed %s: unreadable WebSub push: %s", feed.name, exc)
            return
        except Exception as exc:  # Kafka down etc.: the next poll publishes these items
            self.metrics.websub_pushes.labels("failed").inc()
            log.warning(
                "feed %s: could not publish a WebSub push (%s: %s); the next poll will",
                feed.name,
                type(exc).__name__,
                exc,
                extra={"feed": feed.name},
            )
            return
        self.metrics.websub_pushes.labels("published").inc()

    # --- the callback, in the ops server's thread ---------------------------------------------

    def wsgi_app(self) -> WsgiApp:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            token = str(environ.get("PATH_INFO", ""))[len(CALLBACK_PATH) :]
            method = str(environ.get("REQUEST_METHOD", "GET")).upper()
            if method == "GET":
                status, body = self._on_get(token, parse_qs(str(environ.get("QUERY_STRING", ""))))
            elif method == "POST":
                status, body = self._on_post(token, environ)
            else:
                status, body = "405 Method Not Allowed", b""
            start_response(
                status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
            )
            return [body]

        return app

    def _on_get(self, token: str, query: Mapping[str, list[str]]) -> tuple[str, bytes]:
        mode = (query.get("hub.mode") or [""])[0]
        topic = (query.get("hub.topic") or [""])[0]
        if mode == "denied":  # §5.2
            sub = self.subscriptions.deny(token, topic)
            if sub is None:
                return "404 Not Found", b""
            reason = (query.get("hub.reason") or [""])[0][:200]
            log.warning("feed %s: hub %s denied the subscription: %s", sub.feed, sub.hub, reason)
            self._wake_loop()
            return "200 OK", b""
        challenge = (query.get("hub.challenge") or [""])[0]
        now = self.clock()
        sub = (
            self.subscriptions.verify(token, mode, topic, _lease_of(query), now)
            if challenge
            else None
        )
        if sub is None:  # §5.3.1: not an action we wish to carry out
            return "404 Not Found", b""
        log.info(
            "feed %s: WebSub subscription verified, lease %.0fs",
            sub.feed,
            sub.lease_s or 0,
            extra={"feed": sub.feed},
        )
        self._wake_loop()
        return "200 OK", challenge.encode()

    def _on_post(self, token: str, environ: Mapping[str, Any]) -> tuple[str, bytes]:
        sub = self.subscriptions.by_token(token)
        if sub is None:
            self.metrics.websub_pushes.labels("unknown_topic").inc()
            return "410 Gone", b""  # the hub may drop a subscription we no longer have
        length = str(environ.get("CONTENT_LENGTH") or "")
        if not length.isdigit():
            return "411 Length Required", b""
        if int(length) > self.max_push_bytes:
            return "413 Content Too Large", b""
        body = environ["wsgi.input"].read(int(length))
        if not signature_ok(environ.get("HTTP_X_HUB_SIGNATURE"), body, sub.secret):
            # §8.2: acknowledge (the same 202 as a good push, nothing to learn from it), ignore.
            self.metrics.websub_pushes.labels("bad_signature").inc()
            log.warning(
                "feed %s: ignored a WebSub push with a wrong or missing X-Hub-Signature",
                sub.feed,
                extra={"feed": sub.feed},
            )
            return "202 Accepted", b""
        loop = self._loop
        if loop is None or loop.is_closed():
            return "503 Service Unavailable", b""
        content_type = environ.get("CONTENT_TYPE") or None
        try:  # handed to the event loop; §7: the 2xx acknowledges receipt, not processing
            loop.call_soon_threadsafe(self._start_push, sub, body, content_type)
        except RuntimeError:  # the loop closed meanwhile: shutting down
            return "503 Service Unavailable", b""
        return "202 Accepted", b""

    def _start_push(self, sub: Subscription, body: bytes, content_type: str | None) -> None:
        self._spawn(self._take_push(sub, body, content_type))

    def _wake_loop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)
