"""fetch() against a real local HTTP server: SSRF guard, redirects, 304, 429, bombs, trickle."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from newsmon.fetcher.failures import FetchError
from newsmon.fetcher.http import FeedClient, Validators, fetch, make_client
from newsmon.fetcher.ssrf import AllowList

from tests.support.http_stub import HttpStub, Reply, http_stub

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stub() -> Iterator[HttpStub]:
    with http_stub() as s:
        yield s


@pytest.fixture
async def client() -> AsyncIterator[FeedClient]:
    async with make_client(
        connect_s=5, read_s=5, contact="ops@example.org", allow=AllowList.parse("127.0.0.1")
    ) as c:
        yield c


async def _fetch(client: FeedClient, url: str, **kw: object) -> object:
    return await fetch(client, url, max_bytes=1 << 20, deadline_s=10, now=NOW, **kw)  # type: ignore[arg-type]


async def test_loopback_is_refused_without_the_allow_list(stub: HttpStub) -> None:
    url = stub.route("/feed", Reply(body=FEED))
    async with make_client(connect_s=5, read_s=5, contact="") as guarded:
        with pytest.raises(FetchError) as info:
            await fetch(guarded, url, max_bytes=1 << 20, deadline_s=10)
    assert info.value.kind == "blocked"
    assert "loopback" in str(info.value)
    assert stub.requests == [], "no byte reached the server"


async def test_redirects_are_followed_by_hand_and_counted(
    stub: HttpStub, client: FeedClient
) -> None:
    final = stub.route("/feed", Reply(body=FEED, headers={"ETag": '"v1"'}))
    stub.route("/b", Reply(308, headers={"Location": "/feed"}))
    start = stub.route("/a", Reply(301, headers={"Location": stub.base_url + "/b"}))
    result = await fetch(client, start, max_bytes=1 << 20, deadline_s=10)
    assert result.body == FEED
    assert result.final_url == final
    assert result.redirects == 2
    assert result.permanent_url == final
    assert result.validators.etag == '"v1"'
    assert stub.requests[0].headers["user-agent"].startswith("newsmon/")
    assert "ops@example.org" in stub.requests[0].headers["user-agent"]


async def test_a_temporary_hop_means_no_permanent_move(stub: HttpStub, client: FeedClient) -> None:
    stub.route("/feed", Reply(body=FEED))
    start = stub.route("/a", Reply(302, headers={"Location": "/feed"}))
    result = await fetch(client, start, max_bytes=1 << 20, deadline_s=10)
    assert result.permanent_url is None


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("http://127.0.0.2:{port}/feed", "blocked"),  # loopback, but not the allowed address
        ("http://169.254.169.254/latest/meta-data/", "blocked"),
        ("http://[::ffff:10.0.0.1]/", "blocked"),
        ("file:///etc/passwd", "redirects"),
    ],
)
async def test_a_redirect_hop_gets_the_same_guard(
    stub: HttpStub, client: FeedClient, location: str, kind: str
) -> None:
    port = stub.base_url.rsplit(":", 1)[1]
    start = stub.route("/a", Reply(302, headers={"Location": location.format(port=port)}))
    with pytest.raises(FetchError) as info:
        await fetch(client, start, max_bytes=1 << 20, deadline_s=10)
    assert info.value.kind == kind


async def test_redirect_loops_stop_at_the_limit(stub: HttpStub, client: FeedClient) -> None:
    start = stub.route("/loop", Reply(302, headers={"Location": "/loop"}))
    with pytest.raises(FetchError) as info:
        await fetch(client, start, max_bytes=1 << 20, deadline_s=10, max_redirects=3)
    assert info.value.kind == "redirects"
    assert stub.hits("/loop") == 4


async def test_conditional_get_and_304(stub: HttpStub, client: FeedClient) -> None:
    def reply(seen: object) -> Reply:
        headers = getattr(seen, "headers", {})
        if headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"Cache-Control": "public, max-age=600"})
        return Reply(
            body=FEED, headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"}
        )

    url = stub.route("/feed", reply)
    first = await fetch(client, url, max_bytes=1 << 20, deadline_s=10)
    second = await fetch(client, url, validators=first.validators, max_bytes=1 << 20, deadline_s=10)
    assert second.not_modified
    assert second.max_age_s == 600
    assert second.validators == Validators('"v1"', "Wed, 01 Jan 2025 00:00:00 GMT")
    assert stub.requests[1].headers["if-modified-since"] == "Wed, 01 Jan 2025 00:00:00 GMT"
    third = await fetch(client, url, validators=first.validators, max_bytes=1 << 20, deadline_s=10)
    assert third.not_modified
    ports = [r.peer_port for r in stub.requests]
    assert ports[2] == ports[1], "a 304 leaves its connection open for the next request"


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "120", 120.0), (503, "Thu, 01 Jan 2026 12:30:00 GMT", 1800.0), (429, "soon", None)],
)
async def test_retry_after_in_seconds_and_as_a_date(
    stub: HttpStub, client: FeedClient, status: int, retry_after: str, expected: float | None
) -> None:
    url = stub.route("/busy", Reply(status, headers={"Retry-After": retry_after}))
    with pytest.raises(FetchError) as info:
        await fetch(client, url, max_bytes=1 << 20, deadline_s=10, now=NOW)
    assert info.value.kind == f"http_{status}"
    assert info.value.retry_after_s == expected


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),
    ],
)
async def test_compressed_bodies_are_decoded(
    stub: HttpStub, client: FeedClient, coding: str, compress: object
) -> None:
    body = compress(FEED * 50)  # type: ignore[operator]
    url = stub.route("/z", Reply(body=body, headers={"Content-Encoding": coding}))
    result = await fetch(client, url, max_bytes=1 << 20, deadline_s=10)
    assert result.body == FEED * 50
    assert result.raw_bytes == len(body)


@pytest.mark.parametrize(
    ("coding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_decompression_bombs_are_refused(
    stub: HttpStub, client: FeedClient, coding: str, compress: object
) -> None:
    bomb = compress(b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < 1 << 20
    url = stub.route("/bomb", Reply(body=bomb, headers={"Content-Encoding": coding}))
    with pytest.raises(FetchError) as info:
        await fetch(client, url, max_bytes=1 << 20, deadline_s=30)
    assert info.value.kind == "too_large"
    assert "decompression" in str(info.value)


async def test_an_unrequested_encoding_is_a_clean_error(stub: HttpStub, client: FeedClient) -> None:
    url = stub.route(
        "/br", Reply(body=b"\x0b\x02\x80hello\x03", headers={"Content-Encoding": "br"})
    )
    with pytest.raises(FetchError) as info:
        await fetch(client, url, max_bytes=1 << 20, deadline_s=10)
    assert info.value.kind == "encoding"


async def test_plain_body_over_the_cap(stub: HttpStub, client: FeedClient) -> None:
    url = stub.route("/big", Reply(body=b"x" * 5000))
    with pytest.raises(FetchError) as info:
        await fetch(client, url, max_bytes=4096, deadline_s=10)
    assert info.value.kind == "too_large"


async def test_a_trickling_server_cannot_hold_a_fetch_past_its_deadline(
    stub: HttpStub, client: FeedClient
) -> None:
    url = stub.route("/slow", Reply(body=FEED * 10, trickle_s=0.05))
    with pytest.raises(FetchError) as info:
        await fetch(client, url, max_bytes=1 << 20, deadline_s=0.5)
    assert info.value.kind == "timeout"


async def test_status_errors_are_sorted(stub: HttpStub, client: FeedClient) -> None:
    for status, kind in ((500, "http_5xx"), (404, "http_4xx")):
        url = stub.route(f"/s{status}", Reply(status))
        with pytest.raises(FetchError) as info:
            await fetch(client, url, max_bytes=1 << 20, deadline_s=10)
        assert (info.value.kind, info.value.status) == (kind, status)
