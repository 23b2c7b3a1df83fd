"""Fetching one feed over HTTP: timeouts, a total deadline, a body cap, conditional GET.

Errors come back sorted into kinds an operator can act on (dns, connect, timeout, http_4xx,
http_5xx, too_large, ...), in the manner of miniflux's fetcher response handler.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
from newsmon import __version__
from newsmon.shared.errors import RetriableError

__all__ = ["FetchError", "FetchResult", "Validators", "fetch", "make_client", "user_agent"]


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

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class FetchError(RetriableError):
    """A fetch failed; `kind` is a short label for metrics and logs."""

    def __init__(
        self, kind: str, message: str, *, retriable: bool = True, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retriable = retriable
        self.retry_after_s = retry_after_s


def user_agent(contact: str) -> str:
    """Names the project (and the operator's contact when set) to feed owners."""
    return f"newsmon/{__version__} (+{contact})" if contact else f"newsmon/{__version__}"


def make_client(*, connect_s: float, read_s: float, contact: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=connect_s, read=read_s, write=read_s, pool=connect_s),
        headers={
            "User-Agent": user_agent(contact),
            "Accept": "application/rss+xml, application/atom+xml, application/rdf+xml, "
            "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
        },
        follow_redirects=True,
        max_redirects=5,
        http2=True,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _status_error(response: httpx.Response) -> FetchError:
    status = response.status_code
    if status in (429, 503):
        return FetchError(
            f"http_{status}",
            f"HTTP {status}: server asks us to slow down",
            retry_after_s=_retry_after(response),
        )
    if 500 <= status < 600:
        return FetchError("http_5xx", f"HTTP {status} from server")
    return FetchError("http_4xx", f"HTTP {status} from server", retriable=status in (408, 425))


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            "too_large",
            f"body of {int(declared)} bytes exceeds the {max_bytes}-byte cap",
            retriable=False,
        )
    chunks, size = [], 0
    # aiter_bytes decodes Content-Encoding, so the cap also holds after decompression.
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"body exceeds the {max_bytes}-byte cap", retriable=False)
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch_file(url: str, max_bytes: int) -> FetchResult:
    path = Path(unquote(urlsplit(url).path))
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise FetchError("file", f"cannot read {path}: {exc.strerror}", retriable=True) from None
    if len(body) > max_bytes:
        raise FetchError("too_large", f"file exceeds the {max_bytes}-byte cap", retriable=False)
    return FetchResult(200, body, None, url, Validators())


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    validators: Validators = Validators(),
    max_bytes: int,
    deadline_s: float,
) -> FetchResult:
    """GET `url` (or read a file:// URL) within `deadline_s` seconds in all."""
    if url.startswith("file://"):
        return await _fetch_file(url, max_bytes)
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        async with asyncio.timeout(deadline_s):
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304:
                    return FetchResult(304, b"", None, str(response.url), validators)
                if response.status_code >= 400:
                    raise _status_error(response)
                body = await _read_capped(response, max_bytes)
                return FetchResult(
                    response.status_code,
                    body,
                    response.headers.get("Content-Type"),
                    str(response.url),
                    Validators(response.headers.get("ETag"), response.headers.get("Last-Modified")),
                )
    except TimeoutError:
        raise FetchError("timeout", f"no complete answer within {deadline_s:.0f}s") from None
    except httpx.TooManyRedirects:
        raise FetchError("redirects", "too many redirects", retriable=False) from None
    except httpx.ConnectTimeout:
        raise FetchError("timeout", "connect timed out") from None
    except httpx.TimeoutException:
        raise FetchError("timeout", "read timed out") from None
    except httpx.ConnectError as exc:
        kind = (
            "dns" if "name" in str(exc).lower() or "resolution" in str(exc).lower() else "connect"
        )
        raise FetchError(kind, f"cannot connect: {exc}") from None
    except httpx.HTTPError as exc:
        raise FetchError("network", f"{type(exc).__name__}: {exc}") from None
    except httpx.InvalidURL as exc:
        raise FetchError("bad_url", f"invalid URL: {exc}", retriable=False) from None
