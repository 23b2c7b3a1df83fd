"""Every way a feed poll can fail, sorted into one small declared set of kinds an operator can
act on, by one function.

The model is miniflux's internal/reader/fetcher/response_handler.go: one switch turns every
failure (a socket error, an HTTP status, a body too big, a body that is not a feed, Kafka)
into a few user-meaningful kinds. Here that switch is `failure_of`; the kinds are
`FailureKind`, and they are the only failure values of the `outcome` label of
newsmon_feed_fetches_total / newsmon_feed_fetch_duration_seconds and of the `kind` label of
newsmon_errors_total{service="fetcher"} (listed in the README metrics table; a unit test
checks the list).

A failure is `retriable` when asking again may give another answer (a timeout, a 5xx, a
broker restart); it is not when the same request gets the same answer (a 404 or 410, a body
over the cap, a page that is not a feed). schedule.next_delay backs a feed off exponentially
after retriable failures and to the error back-off cap at once after a permanent one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import httpx
from aiokafka.errors import KafkaError
from newsmon.shared.errors import RetriableError

from .parse import FeedParseError
from .ssrf import BlockedAddressError

__all__ = [
    "POLL_OUTCOMES",
    "SUCCESS_OUTCOMES",
    "Failure",
    "FailureKind",
    "FetchError",
    "failure_of",
    "fetch_error",
    "status_error",
]


class FailureKind(StrEnum):
    """Why a poll (or a full-text page fetch) failed. The values are metric label values."""

    DNS = "dns"  # the host name does not resolve
    CONNECT = "connect"  # refused, reset or unreachable
    BLOCKED = "blocked"  # the SSRF guard refused a non-public address (ssrf.py)
    TIMEOUT = "timeout"  # connect, read or the whole fetch's deadline
    NETWORK = "network"  # another transport error (protocol, TLS, a dropped stream)
    BAD_URL = "bad_url"  # a URL httpx cannot request
    REDIRECTS = "redirects"  # too many, without Location, or to a non-HTTP URL
    HTTP_429 = "http_429"  # Too Many Requests (Retry-After honoured)
    HTTP_503 = "http_503"  # Service Unavailable (Retry-After honoured)
    HTTP_5XX = "http_5xx"  # another server error
    HTTP_4XX = "http_4xx"  # a client error: 404, 410, 401, 403 ... (408 and 425 retriable)
    TOO_LARGE = "too_large"  # the body passes NEWSMON_FETCH_MAX_BYTES (before or after gzip)
    ENCODING = "encoding"  # a Content-Encoding we do not decode, or a corrupt body
    FILE = "file"  # a file:// feed (or a `newsmon fetch` path) that cannot be read
    NOT_HTML = "not_html"  # full text only: the article page is not HTML
    PARSE = "parse"  # the body is not a feed we can read
    KAFKA = "kafka"  # the articles could not be published
    INTERNAL = "internal"  # a bug: logged with its traceback


# What a poll that did not fail reports as its outcome.
SUCCESS_OUTCOMES: Final = ("ok", "not_modified", "unchanged")
# Every value of the `outcome` label of newsmon_feed_fetches_total (NOT_HTML never is one).
POLL_OUTCOMES: Final = (*SUCCESS_OUTCOMES, *(k.value for k in FailureKind if k != "not_html"))


class FetchError(RetriableError):
    """A fetch failed; `kind` names why (metrics and logs), `retriable` whether asking again
    may help (set where the failure is known to be permanent)."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        retriable: bool = True,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retriable = retriable
        self.retry_after_s = retry_after_s
        self.status = status


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed poll, as the fetcher counts, logs and schedules it."""

    kind: FailureKind
    reason: str  # one line for the log and the feed's `last_error`
    retriable: bool = True
    retry_after_s: float | None = None  # the server's Retry-After
    status: int | None = None  # the HTTP status, when the server answered


def failure_of(exc: BaseException) -> Failure:
    """The kind of any exception a poll can raise: the one place that sorts them."""
    match exc:
        case FetchError():
            return Failure(exc.kind, str(exc), exc.retriable, exc.retry_after_s, exc.status)
        case FeedParseError():
            return Failure(FailureKind.PARSE, str(exc), exc.retriable)
        case KafkaError():
            return Failure(FailureKind.KAFKA, f"could not publish to Kafka: {exc}")
        case httpx.ConnectTimeout():
            return Failure(FailureKind.TIMEOUT, "connect timed out")
        case httpx.TimeoutException():
            return Failure(FailureKind.TIMEOUT, "read timed out")
        case httpx.ConnectError():
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, BlockedAddressError) or "refused to connect to" in str(exc):
                return Failure(FailureKind.BLOCKED, str(exc), retriable=False)
            text = str(exc).lower()
            kind = (
                FailureKind.DNS if "name" in text or "resolution" in text else FailureKind.CONNECT
            )
            return Failure(kind, f"cannot connect: {exc}")
        case httpx.UnsupportedProtocol():
            return Failure(FailureKind.BAD_URL, f"unsupported URL: {exc}", retriable=False)
        case httpx.HTTPError():
            return Failure(FailureKind.NETWORK, f"{type(exc).__name__}: {exc}")
        case httpx.InvalidURL():
            return Failure(FailureKind.BAD_URL, f"invalid URL: {exc}", retriable=False)
        case _:
            return Failure(FailureKind.INTERNAL, f"{type(exc).__name__}: {exc}")


def status_error(status: int, retry_after_s: float | None = None) -> FetchError:
    """An HTTP error status (400 and up) as the FetchError `fetch` raises; only 408 Request
    Timeout and 425 Too Early among the 4xx say that the same request may pass later."""
    if status in (429, 503):
        return FetchError(
            FailureKind.HTTP_429 if status == 429 else FailureKind.HTTP_503,
            f"HTTP {status}: server asks us to slow down"
            + (f" (Retry-After {retry_after_s:.0f}s)" if retry_after_s is not None else ""),
            retry_after_s=retry_after_s,
            status=status,
        )
    if 500 <= status < 600:
        return FetchError(FailureKind.HTTP_5XX, f"HTTP {status} from server", status=status)
    return FetchError(
        FailureKind.HTTP_4XX,
        f"HTTP {status} from server",
        retriable=status in (408, 425),
        status=status,
    )


def fetch_error(exc: httpx.HTTPError | httpx.InvalidURL) -> FetchError:
    """An httpx exception as the FetchError `fetch` raises."""
    failure = failure_of(exc)
    return FetchError(failure.kind, failure.reason, retriable=failure.retriable)
