"""A local feed server for bench_fetcher, run in its own process (so it does not share the GIL
with the fetcher being measured): `python -m bench.support_feedserver --hosts 8`.

It listens on 127.0.0.1 … 127.0.0.N (one port, N loopback addresses, so the fetcher sees N
hosts and its per-host limit behaves as with real outlets) and prints `READY <port>` on stdout.
It stops when stdin closes (its parent went away) or on SIGTERM.

Paths (plain HTTP/1.1, keep-alive, identity encoding):

* `/c/<i>.xml` — feed i *changing* on every request: a sliding window of 30 items that moves by
  one item per request (29 already seen, 1 new), with a new ETag, so the answer is always 200.
* `/s/<i>.xml` — feed i *static*: always the same 30 items and ETag `"s<i>"`; 304 Not Modified
  when If-None-Match carries it, else 200 with the body.

Bodies are RSS 2.0 we generate (about 20 KB, 30 items with HTML descriptions, categories,
authors, GUIDs and dates), a little richer than an average news feed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import time
from email.utils import formatdate
from typing import Final

ITEMS_PER_FEED: Final = 30
_WORDS: Final = [
    "troops",
    "deployment",
    "artillery",
    "shells",
    "missiles",
    "envoy",
    "summit",
    "sanctions",
    "drone",
    "port",
    "grain",
    "talks",
    "ceasefire",
    "frontline",
    "parliament",
    "ministry",
    "statement",
    "officials",
    "reported",
    "analysts",
    "satellite",
    "imagery",
    "shipment",
    "rail",
    "border",
    "corridor",
    "negotiations",
    "delegation",
    "treaty",
]


def _words(seed: int, n: int) -> str:
    return " ".join(_WORDS[(seed * 7 + k * 13) % len(_WORDS)] for k in range(n))


class Feeds:
    """Renders feed bodies; remembers each changing feed's version (requests served)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.versions: dict[int, int] = {}

    def item(self, feed: int, j: int) -> str:
        when = formatdate(self.t0 + j * 60, usegmt=True)
        host = f"outlet{feed % 50}.example"
        return (
            f"<item><title>Feed {feed} story {j}: {_words(j, 9)}</title>"
            f"<link>https://{host}/news/{feed}/{j}?utm_source=rss&amp;utm_medium=feed</link>"
            f'<guid isPermaLink="false">urn:bench:{feed}:{j}</guid>'
            f"<pubDate>{when}</pubDate><dc:creator>Reporter {j % 17}</dc:creator>"
            f"<category>World</category><category>{_WORDS[j % len(_WORDS)]}</category>"
            f"<description>&lt;p&gt;{_words(j + 1, 30)} &lt;a href=&quot;https://{host}/x/{j}"
            f"&quot;&gt;more&lt;/a&gt;.&lt;/p&gt;&lt;p&gt;{_words(j + 2, 25)}&lt;/p&gt;"
            "</description></item>"
        )

    def body(self, feed: int, first: int) -> bytes:
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>Bench outlet {feed}</title><link>https://outlet{feed % 50}.example/</link>"
            "<description>Generated for the fetcher benchmark</description><language>en</language>"
        )
        items = "".join(
            self.item(feed, j) for j in range(first + ITEMS_PER_FEED - 1, first - 1, -1)
        )
        return (head + items + "</channel></rss>").encode()


class _Http(asyncio.Protocol):
    def __init__(self, feeds: Feeds) -> None:
        self.feeds = feeds
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        assert self.transport is not None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        etag_sent = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "if-none-match":
                etag_sent = value.strip()
        kind, _, rest = path.lstrip("/").partition("/")
        try:
            feed = int(rest.removesuffix(".xml"))
        except ValueError:
            kind = ""
        if kind == "c":
            version = self.feeds.versions.get(feed, 0) + 1
            self.feeds.versions[feed] = version
            self._send(200, f'"c{feed}-{version}"', self.feeds.body(feed, version))
        elif kind == "s":
            etag = f'"s{feed}"'
            if etag_sent == etag:
                self._send(304, etag, b"")
            else:
                self._send(200, etag, self.feeds.body(feed, 0))
        else:
            self._send(404, None, b"not found\n")

    def _send(self, status: int, etag: str | None, body: bytes) -> None:
        assert self.transport is not None
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
        head = [f"HTTP/1.1 {status} {reason}", "Server: newsmon-bench"]
        if etag:
            head.append(f"ETag: {etag}")
        if status == 200:
            head.append("Content-Type: application/rss+xml; charset=utf-8")
        if status != 304:
            head.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)


async def serve(hosts: int) -> None:
    feeds = Feeds(t0=time.time() - 3 * 86_400)
    loop = asyncio.get_running_loop()
    first = await loop.create_server(lambda: _Http(feeds), "127.0.0.1", 0, backlog=1024)
    port = first.sockets[0].getsockname()[1]
    servers = [first] + [
        await loop.create_server(lambda: _Http(feeds), f"127.0.0.{k}", port, backlog=1024)
        for k in range(2, hosts + 1)
    ]
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    # Parent gone (stdin closed): stop too, never linger.
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not sys.stdin.read(1) else None)
    print(f"READY {port}", flush=True)
    await done.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=8, help="loopback addresses to listen on")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.hosts))


if __name__ == "__main__":
    main()
