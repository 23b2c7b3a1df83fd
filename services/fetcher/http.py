"""Fetching one URL over HTTP, safely: timeouts and a total deadline, a body cap that holds
after decompression, conditional GET, redirects followed by hand, an SSRF guard on every hop.

Errors come back as FetchError, sorted into the kinds of failures.py (`FailureKind`).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urljoin, urlsplit

import httpcore
import httpx
from newsmon import __version__
from newsmon.shared.http_headers import parse_retry_after

from .failures import FailureKind, FetchError, fetch_error, status_error
from .schedule import parse_max_age
from .ssrf import AllowList, GuardedBackend

__all__ = [
    "MAX_REDIRECTS",
    "FeedClient",
    "FetchResult",
    "HostLimiter",
    "Validators",
    "fetch",
    "make_client",
    "user_agent",
]

# miniflux and browsers stop around 10-20 hops; a feed needs one or two.
MAX_REDIRECTS: Final = 5
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# Only codings we can decode with a bounded output buffer. No "br": the brotli bindings
# decode a whole chunk at once, so a brotli bomb could not be stopped mid-way.
ACCEPT_ENCODING: Final = "gzip, deflate"


@dataclass(frozen=True)
class Validators:
    """What the server told us last time, for a conditional GET (RFC 9110 §13.1)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    status: int
    body: bytes
    content_type: str | None
    final_url: str
    validators: Validators
    max_age_s: float | None = None  # Cache-Control max-age (RFC 9111 §5.2.2.1)
    redirects: int = 0
    permanent_url: str | None = None  # where a 301/308 chain from the start led
    raw_bytes: int = 0  # bytes on the wire (before decompression)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def user_agent(contact: str) -> str:
    """Names the project (and the operator's contact when set) to feed owners."""
    return f"newsmon/{__version__} (+{contact})" if contact else f"newsmon/{__version__}"


class FeedClient(httpx.AsyncClient):
    """httpx's client (for WebSub requests and commands) that keeps its transport at hand:
    `fetch` sends its GETs to the transport directly. The client's layers around a request
    (URL merging, auth and redirect steps, cookie jar, event hooks) are none of a feed poll's
    business and were a quarter of the CPU of a 304 poll (BENCHMARKS.md, fetcher section)."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self.transport = transport


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool built on the SSRF-guarded network backend.
    (httpx does not take a network backend as an argument, so the pool is replaced.)"""

    def __init__(self, *, allow: AllowList, limits: httpx.Limits) -> None:
        super().__init__(http2=True, limits=limits, trust_env=False)
        old = self._pool
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=True,
            network_backend=GuardedBackend(allow),
        )
        del old


def make_client(
    *,
    connect_s: float,
    read_s: float,
    contact: str,
    allow: AllowList | None = None,
    max_connections: int = 64,
) -> FeedClient:
    """The one HTTP client of the fetcher. Redirects are not followed by httpx: `fetch`
    follows them, checking each hop. Proxies from the environment are ignored on purpose:
    the guard must see the real destination."""
    # Every pooled connection may stay alive: httpcore 1.0 closes an idle connection whenever
    # the pool holds more connections than max_keepalive_connections, idle or not
    # (connection_pool.py, `_assign_requests_to_connections` counts them all), so a limit
    # below max_connections closed and reopened connections to hosts polled again at once.
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return FeedClient(
        transport=_GuardedTransport(allow=allow or AllowList(), limits=limits),
        timeout=httpx.Timeout(connect=connect_s, read=read_s, write=read_s, pool=connect_s),
        headers={
            "User-Agent": user_agent(contact),
            "Accept": "application/rss+xml, application/atom+xml, application/rdf+xml, "
            "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
            "Accept-Encoding": ACCEPT_ENCODING,
        },
        follow_redirects=False,
        trust_env=False,
    )


class HostLimiter:
    """At most `per_host` requests in flight to one host (politeness), whatever the feed."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        # host -> its semaphore and how many tasks hold or wait for it. A host nobody uses is
        # forgotten: article pages (full text) name hosts without end.
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._slots)

    @contextlib.asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        entry = self._slots.get(host)
        if entry is None:
            entry = self._slots[host] = (asyncio.Semaphore(self.per_host), [0])
        semaphore, users = entry
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if not users[0] and self._slots.get(host) is entry:
                del self._slots[host]


class _Decoder:
    """Content-Encoding decoding that never produces more than `limit` bytes in all, however
    small the compressed input (zlib's max_length bounds each call's output)."""

    def __init__(self, coding: str, limit: int) -> None:
        if coding == "gzip" or coding == "x-gzip":
            self._wbits = 16 + zlib.MAX_WBITS  # RFC 1952 container
        elif coding == "deflate":
            self._wbits = zlib.MAX_WBITS  # RFC 9110 §8.4.1.2: zlib (RFC 1950) container
        else:
            raise FetchError(FailureKind.ENCODING, f"unsupported Content-Encoding {coding!r}")
        self._coding = coding
        self._zlib = zlib.decompressobj(self._wbits)
        self._first = True
        self.limit = limit
        self.produced = 0

    def _too_large(self) -> FetchError:
        return FetchError(
            FailureKind.TOO_LARGE,
            f"body exceeds the {self.limit}-byte cap after {self._coding} decompression",
            retriable=False,
        )

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            try:
                chunk = self._zlib.decompress(data, self.limit - self.produced + 1)
            except zlib.error:
                if self._first and self._coding == "deflate" and self._wbits > 0:
                    # Servers that send raw deflate (RFC 1951) under "deflate", as httpx allows.
                    self._wbits = -zlib.MAX_WBITS
                    self._zlib = zlib.decompressobj(self._wbits)
                    continue
                raise FetchError(FailureKind.ENCODING, f"corrupt {self._coding} body") from None
            self._first = False
            self.produced += len(chunk)
            if self.produced > self.limit:
                raise self._too_large()
            out.append(chunk)
            data = self._zlib.unconsumed_tail
            if self._zlib.eof:
                rest = self._zlib.unused_data
                if rest and self._wbits == 16 + zlib.MAX_WBITS and rest.lstrip(b"\0"):
                    # Another gzip member (RFC 1952 §2.2) follows.
                    self._zlib = zlib.decompressobj(self._wbits)
                    data = rest
                else:
                    break
        return b"".join(out)


async def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    if response.is_stream_consumed:  # built in memory (httpx.MockTransport): raw content
        yield response.content
        return
    async for chunk in response.aiter_raw():
        yield chunk


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, int]:
    """The decoded body and its size on the wire; too_large as soon as either passes the cap."""
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            FailureKind.TOO_LARGE,
            f"body of {int(declared)} bytes exceeds the {max_bytes}-byte cap",
            retriable=False,
        )
    codings = [
        c.strip().lower()
        for c in response.headers.get("Content-Encoding", "").split(",")
        if c.strip() and c.strip().lower() != "identity"
    ]
    if len(codings) > 1:
        raise FetchError(
            FailureKind.ENCODING, f"stacked Content-Encoding {codings} is not supported"
        )
    decoder = _Decoder(codings[0], max_bytes) if codings else None
    chunks: list[bytes] = []
    raw = size = 0
    async for chunk in _raw_chunks(response):
        raw += len(chunk)
        if raw > max_bytes:
            raise FetchError(
                FailureKind.TOO_LARGE, f"body exceeds the {max_bytes}-byte cap", retriable=False
            )
        decoded = decoder.feed(chunk) if decoder else chunk
        size += len(decoded)
        if size > max_bytes:
            raise FetchError(
                FailureKind.TOO_LARGE, f"body exceeds the {max_bytes}-byte cap", retriable=False
            )
        chunks.append(decoded)
    return b"".join(chunks), raw


async def _fetch_file(url: str, max_bytes: int) -> FetchResult:
    path = Path(unquote(urlsplit(url).path))
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise FetchError(
            FailureKind.FILE, f"cannot read {path}: {exc.strerror}", retriable=True
        ) from None
    if len(body) > max_bytes:
        raise FetchError(
            FailureKind.TOO_LARGE, f"file exceeds the {max_bytes}-byte cap", retriable=False
        )
    return FetchResult(200, body, None, url, Validators(), raw_bytes=len(body))


def _redirect_target(current: str, response: httpx.Response) -> str:
    location = response.headers.get("Location", "").strip()
    if not location:
        raise FetchError(
            FailureKind.REDIRECTS, f"HTTP {response.status_code} without a Location header"
        )
    target: str = urljoin(current, location)
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        raise FetchError(
            FailureKind.REDIRECTS,
            f"refused redirect to a non-HTTP URL: {target[:200]}",
            retriable=False,
        )
    return target


async def _send(client: FeedClient, url: str, headers: list[tuple[bytes, bytes]]) -> httpx.Response:
    """One GET through the client's transport, its body not read yet (the caller closes it)."""
    request = httpx.Request(
        "GET", url, headers=headers, extensions={"timeout": client.timeout.as_dict()}
    )
    response = await client.transport.handle_async_request(request)
    response.request = request
    return response


async def fetch(
    client: FeedClient,
    url: str,
    *,
    validators: Validators = Validators(),
    max_bytes: int,
    deadline_s: float,
    max_redirects: int = MAX_REDIRECTS,
    now: datetime | None = None,
) -> FetchResult:
    """GET `url` (or read a file:// URL) within `deadline_s` seconds in all, following at most
    `max_redirects` redirects. `now` (for Retry-After dates) defaults to the wall clock."""
    if url.startswith("file://"):
        return await _fetch_file(url, max_bytes)
    # As bytes: a validator the server sent in UTF-8 comes back as a non-ASCII str, which
    # httpx would refuse to encode (UnicodeEncodeError) on every later poll of the feed.
    headers = client.headers.raw
    if validators.etag:
        headers.append((b"If-None-Match", validators.etag.encode()))
    if validators.last_modified:
        headers.append((b"If-Modified-Since", validators.last_modified.encode()))
    current, hops, permanent = url, 0, True
    try:
        async with asyncio.timeout(deadline_s):
            while True:
                response = await _send(client, current, headers)
                try:
                    status = response.status_code
                    if status in _REDIRECTS:
                        if hops >= max_redirects:
                            raise FetchError(
                                FailureKind.REDIRECTS,
                                f"more than {max_redirects} redirects",
                                retriable=False,
                            )
                        permanent = permanent and status in (301, 308)
                        current = _redirect_target(current, response)
                        hops += 1
                        continue
                    max_age = parse_max_age(response.headers.get("Cache-Control"))
                    moved = current if permanent and hops else None
                    if status == 304:
                        # Read to the end of the (empty) response: httpcore closes a
                        # connection whose response was not read to its end, and the
                        # host's next poll would open a new one.
                        async for _ in _raw_chunks(response):
                            pass
                        return FetchResult(
                            304, b"", None, current, validators, max_age, hops, moved
                        )
                    if status >= 400:
                        retry_after = parse_retry_after(
                            response.headers.get("Retry-After"), now or datetime.now(UTC)
                        )
                        raise status_error(status, retry_after)
                    body, raw = await _read_capped(response, max_bytes)
                    return FetchResult(
                        status,
                        body,
                        response.headers.get("Content-Type"),
                        current,
                        Validators(
                            response.headers.get("ETag"), response.headers.get("Last-Modified")
                        ),
                        max_age,
                        hops,
                        moved,
                        raw,
                    )
                finally:
                    await response.aclose()
    except TimeoutError:
        raise FetchError(
            FailureKind.TIMEOUT, f"no complete answer within {deadline_s:g}s"
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise fetch_error(exc) from None
