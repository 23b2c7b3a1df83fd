"""Slack notifications: a pure alert -> Block Kit formatter, and a careful webhook sender.

Formatting is pure (an `Alert` in, a JSON-ready dict out) so it can be tested exhaustively and
previewed with `newsmon slack-preview`. Sending is the only I/O: `SlackSender` posts with an
injected `httpx.AsyncClient`, spaces messages per webhook, retries what may pass and tells the
caller, by the exception type, whether to dead-letter the alert or leave its offset uncommitted.

Article text is hostile input: a headline may contain `<!channel>` or `<http://evil|click>`.
Everything that came from an article goes through `escape_mrkdwn`, and the only link in a
payload is the headline link that `build_payload` builds itself from a checked URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO
from urllib.parse import quote, urlsplit

import httpx
from newsmon.shared.backoff import exponential_delay
from newsmon.shared.clock import Clock
from newsmon.shared.errors import PermanentError, RetriableError
from newsmon.shared.http_headers import parse_retry_after
from newsmon.shared.messages import Alert, MessageDecodeError, decode

__all__ = [
    "AttemptHook",
    "Outcome",
    "RetryPolicy",
    "SendResult",
    "SlackPermanentError",
    "SlackRetriableError",
    "SlackSender",
    "WebhookRateLimiter",
    "WebhookUrl",
    "build_payload",
    "build_update_payload",
    "escape_mrkdwn",
    "payload_json",
    "preview_command",
    "safe_link_url",
    "webhooks_for",
]

log = logging.getLogger(__name__)

# --- Limits -----------------------------------------------------------------------------------
# Block Kit reference (docs.slack.dev/reference/block-kit/blocks/section-block and
# .../composition-objects/text-object): a section's text and any text object hold at most 3000
# characters; a context block holds at most 10 elements.
SECTION_TEXT_MAX: Final = 3000
CONTEXT_ELEMENTS_MAX: Final = 10
# Header blocks hold at most 150 characters (docs.slack.dev/reference/block-kit/blocks/
# header-block). We do not use one: a header is plain_text, so it cannot carry the article link,
# and whether plain_text decodes &amp; is not documented. The bold linked headline replaces it.
HEADER_TEXT_MAX: Final = 150
# Our own budgets, well inside Slack's, so a message stays readable in a channel.
TITLE_MAX: Final = 300
QUOTE_MAX: Final = 400
FALLBACK_MAX: Final = 500
URL_MAX: Final = 2000
NAMES_SHOWN: Final = 5

# --- Escaping ---------------------------------------------------------------------------------
# api.slack.com/reference/surfaces/formatting#escaping ("Formatting text for app surfaces"):
# Slack uses &, < and > as control characters for special parsing (<!channel>, <@U123>, <#C1>,
# <url|text>), so text not meant for parsing must carry them as &amp; &lt; &gt; -- and only
# those three are decoded, so nothing else may be entity-encoded.
_SLACK_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Bidi embeddings/overrides/isolates can make text read differently from what it says
# ("Trojan Source", CVE-2021-42574); they are dropped. Other control characters (Unicode Cc,
# which includes newlines) and line/paragraph separators become a space, so article text can
# neither start a new mrkdwn line (a "> quote") nor smuggle terminal escapes into logs.
_BIDI_CONTROLS: Final = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROLS: Final = (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
_ESCAPE_TABLE: Final[dict[int, str]] = {
    **dict.fromkeys(_CONTROLS, " "),
    **dict.fromkeys(_BIDI_CONTROLS, ""),
    **{ord(ch): entity for ch, entity in _SLACK_ENTITIES.items()},
}


def escape_mrkdwn(text: str) -> str:
    """Text that Slack shows as written: &, <, > entity-encoded, control characters neutralised."""
    return text.translate(_ESCAPE_TABLE)


def _one_line(text: str) -> str:
    return " ".join(escape_mrkdwn(text).split())


_CONTROLS_TO_SPACE: Final = dict.fromkeys(_CONTROLS, " ")


def _printable(text: str) -> str:
    """Server text for logs and errors: one line, no control characters."""
    return " ".join(text.translate(_CONTROLS_TO_SPACE).split())


def _fit(text: str, limit: int) -> str:
    """`text` escaped on one line in at most `limit` characters, cut at a word if one is near.

    Cutting happens on raw characters, so an entity such as &amp; is never split in half.
    """
    line = " ".join(text.split())
    escaped = _one_line(line)
    if len(escaped) <= limit:
        return escaped
    pieces: list[str] = []
    used = 0
    for ch in line:
        piece = escape_mrkdwn(ch)
        if used + len(piece) > limit - 1:  # room for the ellipsis
            break
        pieces.append(piece)
        used += len(piece)
    cut = "".join(pieces)
    space = cut.rfind(" ")
    if space >= len(cut) * 4 // 5:  # a word boundary in the last fifth: end there
        cut = cut[:space]
    return " ".join(cut.split()) + "…"


# RFC 3986 reserved and unreserved characters stay as they are ('%' too, so existing escapes
# survive); everything else -- '|', '<', '>', spaces, quotes, controls, non-ASCII -- is
# percent-encoded, so the URL cannot end the <url|text> syntax early.
_URL_SAFE_CHARS: Final = "!#$%&'()*+,/:;=?@[]~"
# The WHATWG URL parser drops ASCII tab and newlines anywhere in a URL; we do the same before
# deciding on the scheme, so "java\tscript:" is read as the browser would read it.
_URL_DROPPED: Final = str.maketrans("", "", "\t\n\r")
# It also strips leading and trailing "C0 control or space" (U+0000..U+0020), and so does
# urllib.parse.urlsplit: strip them too, so the URL we encode is the one whose scheme we checked.
_C0_CONTROL_OR_SPACE: Final = "".join(map(chr, range(0x21)))


def safe_link_url(url: str) -> str | None:
    """The URL ready for `<url|text>` (http/https only, encoded, escaped), or None if unsafe."""
    cleaned = url.translate(_URL_DROPPED).strip(_C0_CONTROL_OR_SPACE)
    try:
        parts = urlsplit(cleaned)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    # '&' stays a query separator; Slack decodes &amp; back to '&' like any other text.
    link = escape_mrkdwn(quote(cleaned, safe=_URL_SAFE_CHARS))
    return link if len(link) <= URL_MAX else None


# --- Payload ----------------------------------------------------------------------------------


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack otherwise auto-links bare URLs, conversation names and some mentions in
    # text (docs.slack.dev/reference/block-kit/composition-objects/text-object); article text
    # must only ever show as text.
    return {"type": "mrkdwn", "text": text[:SECTION_TEXT_MAX], "verbatim": True}


def _headline(alert: Alert) -> str:
    link = safe_link_url(alert.url)
    if link is None:
        return f"*{_fit(alert.title, TITLE_MAX) or 'Untitled'}*"
    budget = min(TITLE_MAX, SECTION_TEXT_MAX - len(link) - len("*<|>*"))
    return f"*<{link}|{_fit(alert.title, budget) or link}>*"


def _names(values: Iterable[str]) -> str:
    unique = list(dict.fromkeys(v for v in (" ".join(v.split()) for v in values) if v))
    shown = ", ".join(_fit(v, 100) for v in unique[:NAMES_SHOWN])
    more = len(unique) - NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _source_names(alert: Alert) -> list[str]:
    # The alerted copy's outlet first, then every other outlet that carried the story.
    return [alert.source, *(s.source for s in alert.sources)]


def _evidence_quote(alert: Alert) -> str | None:
    for evidence in alert.evidence:
        quote_text = _fit(evidence.sentence, QUOTE_MAX)
        if quote_text:
            return f"> “{quote_text}”"
    return None


def _published(alert: Alert) -> str:
    if alert.published is None:
        return "*Published:* unknown"
    # A fixed UTC string rather than Slack's <!date^...> token: deterministic, and no '<!'.
    return f"*Published:* {alert.published.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _context(alert: Alert) -> list[dict[str, Any]]:
    sources = _source_names(alert)
    label = "Sources" if len(set(sources)) > 1 else "Source"
    parts = [
        f"*{label}:* {_names(sources)}",
        f"*Categories:* {_names(alert.categories) or 'none'}",
        f"*Score:* {alert.score:.2f}",
        _published(alert),
    ]
    if alert.lang:
        parts.append(f"*Language:* {_fit(alert.lang, 20)}")
    if alert.revision > 1:
        parts.append(f"*Update:* revision {alert.revision}")
    return [_mrkdwn(p) for p in parts[:CONTEXT_ELEMENTS_MAX]]


def _fallback(alert: Alert) -> str:
    # Shown in notifications and by clients without Block Kit; mrkdwn too, hence escaped.
    title = _fit(alert.title, TITLE_MAX) or "Untitled"
    text = f"newsmon alert: {title} ({_fit(alert.source, 100)}, score {alert.score:.2f})"
    return text[:FALLBACK_MAX]


def build_payload(alert: Alert) -> dict[str, Any]:
    """The incoming-webhook payload for an alert: same alert, same payload, byte for byte."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _mrkdwn(_headline(alert))}]
    quote_text = _evidence_quote(alert)
    if quote_text is not None:
        blocks.append({"type": "section", "text": _mrkdwn(quote_text)})
    blocks.append({"type": "context", "elements": _context(alert)})
    return {
        "text": _fallback(alert),
        "blocks": blocks,
        # The message already says what the article is; an unfurl would repeat the publisher's
        # own preview (unescaped by us, and different on every fetch).
        "unfurl_links": False,
        "unfurl_media": False,
    }


def build_update_payload(alert: Alert) -> dict[str, Any]:
    """A short message for an alert update (revision > 1): the story got one more source."""
    newest = alert.source
    others = [s.source for s in alert.sources if s.article_id != alert.article_id]
    line = f"*Update {alert.revision}:* also reported by *{_fit(newest, 100) or 'another outlet'}*"
    if others:
        line += f" (after {_names(others)})"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(f"{line} \u2014 {_headline(alert)}")},
        {
            "type": "context",
            "elements": [
                _mrkdwn(f"*Sources:* {len({s.source for s in alert.sources}) or 1}"),
                _mrkdwn(f"*Categories:* {_names(alert.categories) or 'none'}"),
                _mrkdwn(f"*Score:* {alert.score:.2f}"),
            ],
        },
    ]
    title = _fit(alert.title, TITLE_MAX) or "Untitled"
    text = f"newsmon update {alert.revision}: {title} (also {_fit(newest, 100)})"
    return {
        "text": text[:FALLBACK_MAX],
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def webhooks_for(
    alert: Alert, default: WebhookUrl | None, by_category: dict[str, WebhookUrl]
) -> list[tuple[str, WebhookUrl]]:
    """(label, webhook) pairs an alert is posted to: the webhook of each of its categories,
    each distinct URL once; the default webhook when no category has one. Labels are category
    names or "default" (never the secret URL), stable so deliveries can be remembered."""
    chosen: dict[WebhookUrl, str] = {}
    for category in alert.categories:
        webhook = by_category.get(category)
        if webhook is not None and webhook not in chosen:
            chosen[webhook] = category
    if not chosen and default is not None:
        chosen[default] = "default"
    return [(label, webhook) for webhook, label in chosen.items()]


def payload_json(payload: dict[str, Any]) -> bytes:
    """The exact request body `SlackSender` posts (and `slack-preview` prints)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- Webhook secrets --------------------------------------------------------------------------

# Slack webhook paths start with one of these; showing it helps an operator tell webhooks apart.
_PUBLIC_PATH_PREFIXES: Final = frozenset({"services", "workflows", "triggers"})


class WebhookUrl:
    """A webhook URL, which is a bearer secret: str() and repr() show only a masked form."""

    __slots__ = ("_masked", "_value")

    def __init__(self, value: str) -> None:
        value = value.strip()
        try:
            parts = urlsplit(value)
            host, port = parts.hostname, parts.port
        except ValueError:
            raise ValueError("webhook URL is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError("webhook URL must be an absolute http(s) URL")
        self._value = value
        self._masked = _mask(parts.scheme, host, port, parts.path)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return self._masked

    def __repr__(self) -> str:
        return f"WebhookUrl({self._masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebhookUrl) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("WebhookUrl", self._value))


def _mask(scheme: str, host: str, port: int | None, path: str) -> str:
    netloc = f"[{host}]" if ":" in host else host  # userinfo is never shown
    if port is not None:
        netloc = f"{netloc}:{port}"
    segments = [s for s in path.split("/") if s]
    if len(segments) >= 2 and segments[0] in _PUBLIC_PATH_PREFIXES:
        return f"{scheme}://{netloc}/{segments[0]}/{segments[1][:1]}…/***"
    return f"{scheme}://{netloc}/***"


def _scrub(text: str, webhook: WebhookUrl) -> str:
    """`text` with the secret URL masked, in case a library quoted it in an error message."""
    return text.replace(webhook.reveal(), str(webhook))


# --- Errors -----------------------------------------------------------------------------------


class SlackPermanentError(PermanentError):
    """Slack refused the message for good (4xx other than 429): dead-letter it."""

    def __init__(self, webhook: WebhookUrl, status: int, reason: str, attempts: int) -> None:
        self.webhook = webhook
        self.status = status
        self.reason = reason
        self.attempts = attempts
        super().__init__(f"Slack webhook {webhook} refused the message: HTTP {status} {reason}")


class SlackRetriableError(RetriableError):
    """Slack could not be reached or kept failing: do not commit, the alert is retried later."""

    def __init__(self, webhook: WebhookUrl, attempts: int, last: str) -> None:
        self.webhook = webhook
        self.attempts = attempts
        self.last = last
        super().__init__(f"Slack webhook {webhook}: gave up after {attempts} attempt(s): {last}")


# --- Sending ----------------------------------------------------------------------------------

Outcome = Literal["ok", "retry_5xx", "retry_429", "retry_network", "permanent", "gave_up"]
"""Per HTTP attempt: ok, retry_5xx, retry_429, retry_network or permanent; then `gave_up`
once per send that ran out of attempts or time (after that send's last retry_* outcome)."""
AttemptHook = Callable[[Outcome], None]
Sleep = Callable[[float], Awaitable[None]]
Jitter = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    deadline_s: float = 60.0  # budget for one send, waits included
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    request_timeout_s: float | None = 10.0  # None: the injected client's own timeout

    def backoff(self, attempt: int, jitter: Jitter) -> float:
        # "Full jitter": a uniform draw below the capped exponential spreads retries of many
        # senders apart (aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
        ceiling = exponential_delay(self.backoff_base_s, attempt, self.backoff_max_s)
        return jitter(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class SendResult:
    status: int
    attempts: int
    latency_s: float  # from the call to Slack's 2xx, rate-limit and retry waits included


class WebhookRateLimiter:
    """At most one request per `interval_s` per webhook, in arrival order.

    Slack allows incoming webhooks about one message per second, with short bursts
    (api.slack.com/docs/rate-limits); spacing requests keeps us from earning 429s at all.
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._sleep = sleep
        self._ready_at: dict[Hashable, float] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def wait(self, key: Hashable) -> None:
        """Return when a request to `key` may go, and count it as sent."""
        async with self._locks.setdefault(key, asyncio.Lock()):  # FIFO: fair among senders
            now = self._clock()
            ready_at = self._ready_at.get(key, now)
            if ready_at > now:
                await self._sleep(ready_at - now)
                now = self._clock()
            self._ready_at[key] = max(now, ready_at) + self._interval

    def hold(self, key: Hashable, seconds: float) -> None:
        """No request to `key` for `seconds` (a 429's Retry-After applies to every sender)."""
        until = self._clock() + seconds
        self._ready_at[key] = max(self._ready_at.get(key, until), until)


def _retry_after(response: httpx.Response) -> float | None:
    # Slack sends Retry-After in seconds (api.slack.com/docs/rate-limits); an HTTP-date (RFC
    # 9110 §10.2.3) is read too. None (absent or garbage): our own backoff applies instead.
    return parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class _Attempt:
    outcome: Outcome
    status: int  # 0 when no response arrived
    detail: str
    retry_after: float | None = None


class SlackSender:
    """Posts payloads to Slack webhooks with spacing, backoff and an honest answer.

    Returns `SendResult` on a 2xx; raises `SlackPermanentError` when Slack refuses the message
    for good (dead-letter it) and `SlackRetriableError` when attempts or time run out (do not
    commit: an outage delays alerts but never drops them).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
        limiter: WebhookRateLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        jitter: Jitter = random.uniform,
        on_attempt: AttemptHook | None = None,
    ) -> None:
        self._client = client
        self._policy = policy or RetryPolicy()
        self._limiter = limiter or WebhookRateLimiter(clock=clock, sleep=sleep)
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._on_attempt = on_attempt or (lambda outcome: None)

    async def send(
        self, webhook: WebhookUrl, payload: dict[str, Any], *, max_attempts: int | None = None
    ) -> SendResult:
        """`max_attempts` overrides the policy's for this send (1: a probe of a Slack that
        was failing, see the notifier)."""
        body = payload_json(payload)
        started = self._clock()
        attempts_allowed = max_attempts or self._policy.max_attempts
        attempt = 0
        while True:
            attempt += 1
            await self._limiter.wait(webhook)
            result = await self._post(webhook, body)
            self._on_attempt(result.outcome)
            if result.outcome == "ok":
                return SendResult(result.status, attempt, self._clock() - started)
            if result.outcome == "permanent":
                raise SlackPermanentError(webhook, result.status, result.detail, attempt)
            delay = result.retry_after
            if delay is None:
                delay = self._policy.backoff(attempt, self._jitter)
            else:
                # Held even when this send gives up: the next send (any sender, the
                # notifier's next probe) waits for it too.
                self._limiter.hold(webhook, delay)
            elapsed = self._clock() - started
            if attempt >= attempts_allowed or elapsed + delay > self._policy.deadline_s:
                self._on_attempt("gave_up")
                raise SlackRetriableError(webhook, attempt, result.detail)
            log.warning(
                "Slack send failed, retrying",
                extra={
                    "webhook": str(webhook),
                    "outcome": result.outcome,
                    "detail": result.detail,
                    "attempt": attempt,
                    "retry_in_s": round(delay, 3),
                },
            )
            if result.retry_after is None:  # else the limiter's hold waits, for every sender
                await self._sleep(delay)

    async def _post(self, webhook: WebhookUrl, body: bytes) -> _Attempt:
        timeout = self._policy.request_timeout_s
        try:
            response = await self._client.post(
                webhook.reveal(),
                content=body,
                headers={"content-type": "application/json; charset=utf-8"},
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.RequestError as exc:  # connect/read errors, timeouts, protocol errors
            detail = _scrub(_printable(f"{type(exc).__name__}: {exc}").rstrip(": "), webhook)
            return _Attempt("retry_network", 0, detail)
        status = response.status_code
        # Slack answers with a short code such as "ok", "no_service" or "invalid_payload"
        # (api.slack.com/messaging/webhooks#handling_errors).
        detail = _scrub(_printable(response.text[:200]), webhook) or response.reason_phrase
        if 200 <= status < 300:
            return _Attempt("ok", status, detail)
        if status == 429:
            return _Attempt("retry_429", status, f"HTTP 429 {detail}", _retry_after(response))
        if status >= 500:
            return _Attempt("retry_5xx", status, f"HTTP {status} {detail}")
        return _Attempt("permanent", status, detail)


# --- newsmon slack-preview --------------------------------------------------------------------


def _documents(text: str) -> list[tuple[str, str]]:
    """(where, json) pairs: one document, or one per line of JSON lines."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if len(lines) > 1:
        try:
            json.loads(lines[0][1])
        except ValueError:
            pass  # a pretty-printed single document
        else:
            return [(f"line {n}", line) for n, line in lines]
    return [("input", text)]


def preview_command(
    input_path: str, out: TextIO, err: TextIO, *, stdin: TextIO | None = None
) -> int:
    """`newsmon slack-preview [FILE|-]`: print the webhook body for each alert, one per line."""
    name = "stdin" if input_path == "-" else input_path
    try:
        if input_path == "-":
            text = (stdin or sys.stdin).read()
        else:
            with open(input_path, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        err.write(f"slack-preview: cannot read {name}: {exc}\n")
        return 1
    if not text.strip():
        err.write(f"slack-preview: {name}: no alert JSON found\n")
        return 1
    payloads: list[bytes] = []
    for where, document in _documents(text):
        try:
            alert = decode(Alert, document.encode("utf-8"))
        except MessageDecodeError as exc:
            err.write(f"slack-preview: {name}: {where}: not a valid alert: {exc}\n")
            return 1
        payloads.append(payload_json(build_payload(alert)))
    for body in payloads:  # nothing is printed unless every alert was valid
        out.write(body.decode("utf-8") + "\n")
    return 0
