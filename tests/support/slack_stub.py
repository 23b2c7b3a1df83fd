"""A stand-in Slack incoming-webhook server for tests: real HTTP on 127.0.0.1, scriptable.

In a test (same event loop):

    async with SlackStub() as stub:
        stub.script(["500", StubReply.rate_limited(2), "ok"])
        ... post to stub.webhook_url() ...
        assert stub.requests[0].json == payload

From another process, run `python -m tests.support.slack_stub [--port N]` (from the repo root):
it prints its base URL on the first line of stdout and serves until SIGINT/SIGTERM. The same
control API is available over HTTP for a test in another process:

    POST /_stub/script    body: JSON list of replies ("ok", "429", "500", "404", "hang", or
                          {"status": 429, "body": "rate_limited", "headers": {...}, "hang": false})
    GET  /_stub/requests  JSON list of recorded webhook requests: {"path", "json", "body"}
    POST /_stub/reset     forget recorded requests and scripted replies

Replies are used in order, one per webhook POST; once the script is used up every POST gets
`default` (200 "ok"). Every POST outside /_stub/ is recorded, including ones that hang.

The HTTP/1.1 support is deliberately small: request line, headers, Content-Length or chunked
bodies, keep-alive. It serves httpx and curl, which is all the tests need.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from newsmon.shared.messages import Alert, AlertSource, Evidence, Term

__all__ = ["Answered", "ReplySpec", "SlackStub", "StubReply", "StubRequest", "sample_alert"]

_CONTROL_PREFIX = "/_stub/"
_MAX_HEADER_LINES = 100


@dataclass(frozen=True, slots=True)
class StubReply:
    """One scripted answer. Bodies follow Slack's webhook answers ("ok", "no_service", ...)."""

    status: int = 200
    body: str = "ok"
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False  # never answer; the connection stays open until the stub closes

    @classmethod
    def ok(cls) -> StubReply:
        return cls()

    @classmethod
    def rate_limited(cls, retry_after: float | str = 1) -> StubReply:
        return cls(429, "rate_limited", (("Retry-After", str(retry_after)),))

    @classmethod
    def server_error(cls, status: int = 500, body: str = "rollup_error") -> StubReply:
        return cls(status, body)

    @classmethod
    def no_service(cls) -> StubReply:
        return cls(404, "no_service")

    @classmethod
    def invalid_payload(cls) -> StubReply:
        return cls(400, "invalid_payload")

    @classmethod
    def hang_up(cls) -> StubReply:
        return cls(hang=True)

    @classmethod
    def parse(cls, spec: ReplySpec) -> StubReply:
        """A reply from a short name ("ok", "429", "500", "404", "400", "hang") or a JSON object."""
        if isinstance(spec, StubReply):
            return spec
        if isinstance(spec, Mapping):
            headers = tuple((str(k), str(v)) for k, v in dict(spec.get("headers", {})).items())
            return cls(
                int(spec.get("status", 200)),
                str(spec.get("body", "ok")),
                headers,
                bool(spec.get("hang", False)),
            )
        named = {
            "ok": cls.ok,
            "200": cls.ok,
            "429": cls.rate_limited,
            "500": cls.server_error,
            "404": cls.no_service,
            "400": cls.invalid_payload,
            "hang": cls.hang_up,
        }
        if spec not in named:
            raise ValueError(f"unknown stub reply {spec!r}; use one of {sorted(named)}")
        return named[spec]()


ReplySpec = StubReply | str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StubRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any = field(default=None)  # the parsed body, or None when it is not JSON

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "json": self.json, "body": self.text}

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Answered:
    """A webhook POST with the status it got and when it arrived (time.monotonic())."""

    at: float
    request: StubRequest
    status: int


class _BadRequestError(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> StubRequest | None:
    """The next request on the connection, or None when the client closed it."""
    line = await reader.readline()
    if not line.strip():
        return None
    try:
        method, target, _version = line.decode("latin-1").split()
    except ValueError:
        raise _BadRequestError("bad request line") from None
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise _BadRequestError("too many headers")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return StubRequest(method.upper(), target, headers, body, parsed)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # CRLF after each chunk


def _response(status: int, body: bytes, headers: Iterable[tuple[str, str]], close: bool) -> bytes:
    if status in (204, 304) or status < 200:
        body = b""  # these statuses never carry a body (RFC 9110 sections 15.3.5, 15.4.5)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    headers = list(headers)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class SlackStub:
    """A local Slack webhook stand-in. Use `async with`; see the module docstring."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, default: StubReply | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._default = default or StubReply.ok()
        self._script: list[StubReply] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = asyncio.Event()
        self._arrived = asyncio.Condition()
        self.requests: list[StubRequest] = []
        self.answered: list[Answered] = []  # every webhook POST with its status (not hangs)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._closing.set()  # wakes handlers that hang
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for writer in list(self._writers):
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- test API ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        return f"http://{self._host}:{self._port}"

    def webhook_url(self, path: str = "/services/T000TEST/B000TEST/secretsecretsecret") -> str:
        """A Slack-shaped webhook URL on this stub (the path is recorded with each request)."""
        return self.url + path

    def script(self, replies: Iterable[ReplySpec]) -> None:
        """Append replies, used one per webhook POST in order; then `default` answers."""
        self._script.extend(StubReply.parse(r) for r in replies)

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()
        self.answered.clear()

    def set_default(self, reply: ReplySpec) -> None:
        """Change the answer given once the script is used up (an outage that lasts until
        the test ends it, rather than a counted number of failures)."""
        self._default = StubReply.parse(reply)

    @property
    def bodies(self) -> list[Any]:
        """The parsed JSON body of every recorded webhook POST."""
        return [r.json for r in self.requests]

    async def wait_for_requests(self, count: int) -> list[StubRequest]:
        """Wait until at least `count` webhook POSTs arrived (wrap in `asyncio.timeout`)."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    # --- serving -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while not self._closing.is_set():
                request = await _read_request(reader)
                if request is None:
                    break
                keep_open = await self._answer(request, reader, writer)
                if not keep_open:
                    break
        except (_BadRequestError, ValueError):
            with contextlib.suppress(ConnectionError):
                writer.write(_response(400, b"bad request", (), close=True))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away mid-request
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, request: StubRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must end."""
        if request.path.startswith(_CONTROL_PREFIX):
            status, body = self._control(request)
            reply = StubReply(status, body, (("Content-Type", "application/json"),))
        else:
            reply = self._script.pop(0) if self._script else self._default
            async with self._arrived:
                self.requests.append(request)
                self._arrived.notify_all()
            if reply.hang:
                await self._hang(reader)
                return False
            self.answered.append(Answered(time.monotonic(), request, reply.status))
        close = request.headers.get("connection", "").lower() == "close"
        writer.write(_response(reply.status, reply.body.encode("utf-8"), reply.headers, close))
        await writer.drain()
        return not close

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Say nothing until the stub closes or the client gives up and disconnects."""
        closing = asyncio.ensure_future(self._closing.wait())
        gone = asyncio.ensure_future(reader.read())  # returns at EOF
        try:
            await asyncio.wait({closing, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (closing, gone):
                task.cancel()
            await asyncio.gather(closing, gone, return_exceptions=True)

    def _control(self, request: StubRequest) -> tuple[int, str]:
        action = request.path.removeprefix(_CONTROL_PREFIX)
        if request.method == "GET" and action == "requests":
            return 200, json.dumps([r.as_dict() for r in self.requests])
        if request.method == "POST" and action == "reset":
            self.reset()
            return 200, json.dumps({"ok": True})
        if request.method == "POST" and action == "script":
            if not isinstance(request.json, list):
                return 400, json.dumps({"error": "body must be a JSON list of replies"})
            try:
                self.script(request.json)
            except (ValueError, TypeError) as exc:
                return 400, json.dumps({"error": str(exc)})
            return 200, json.dumps({"ok": True, "queued": len(self._script)})
        return 404, json.dumps({"error": f"no control action {request.method} {action}"})


def sample_alert(**overrides: Any) -> Alert:
    """A complete, valid alert for Slack tests; keyword arguments replace fields."""
    when = datetime(2024, 11, 25, 6, 44, tzinfo=UTC)
    sentence = "North Korean troops were deployed to Kursk, officials said."
    fields: dict[str, Any] = {
        "alert_id": "a" * 24,
        "revision": 1,
        "story_id": "s" * 24,
        "article_id": "r" * 24,
        "title": "North Korean troops deployed to Russia's Kursk region",
        "url": "https://news.example.com/world/2024/11/25/dprk-troops?ref=rss&lang=en",
        "source": "Example News",
        "feed": "example-world",
        "lang": "en",
        "summary": "Officials said thousands of soldiers arrived.",
        "categories": ("troops", "dprk_actor"),
        "score": 0.87,
        "evidence": (
            Evidence(
                field="summary",
                sentence=sentence,
                start=0,
                terms=(Term(term="North Korean troops", category="troops", start=0, end=19),),
            ),
        ),
        "classifier_version": "lexicon-1",
        "published": when,
        "fetched": when,
        "classified": when,
        "alerted": when,
        "sources": (
            AlertSource(
                article_id="r" * 24,
                source="Example News",
                url="https://news.example.com/world/2024/11/25/dprk-troops",
                feed="example-world",
            ),
            AlertSource(
                article_id="q" * 24,
                source="Wire Service",
                url="https://wire.example.org/a/123",
                feed="wire",
            ),
        ),
    }
    fields.update(overrides)
    return Alert(**fields)


async def _main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SlackStub(host, port) as stub:
        print(stub.url, flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Stand-in Slack webhook server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    arguments = parser.parse_args()
    asyncio.run(_main(arguments.host, arguments.port))
