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
import re
import signal
import socket
import sys
import time
from email.utils import formatdate
from pathlib import Path
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
        self.templates = real_templates()

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


# Real outlet feeds used as templates for realistic bodies (`/r/` paths), when present.
CORPUS_REAL: Final = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds" / "real"
REAL_MIN_BYTES: Final = 20 * 1024
REAL_MAX_BYTES: Final = 160 * 1024
_ITEM = re.compile(rb"<item[\s>].*?</item>", re.DOTALL)
_LINK = re.compile(rb"<link>[^<]*</link>")
_GUID = re.compile(rb"(<guid[^>]*>)[^<]*(</guid>)")
_TITLE = re.compile(rb"<title>")


class _Template:
    """One real RSS 2.0 feed cut into header, items and footer; an item is split around its
    link and GUID so each rendering is a join of bytes with fresh values."""

    def __init__(self, name: str, body: bytes) -> None:
        items = list(_ITEM.finditer(body))
        self.name = name
        self.head = body[: items[0].start()]
        self.tail = body[items[-1].end() :]
        self.items: list[list[bytes]] = []
        for match in items:
            item = match.group(0)
            link, title = _LINK.search(item), _TITLE.search(item)
            if link is None or title is None:
                continue
            item = item[: link.start()] + b"<link>\x00L</link>" + item[link.end() :]
            item = _GUID.sub(lambda _: b'<guid isPermaLink="false">\x00G</guid>', item, count=1)
            item = _TITLE.sub(lambda _: b"<title>\x00T ", item, count=1)
            self.items.append(re.split(b"(\x00[LGT])", item))

    def item(self, host: str, feed: int, j: int) -> bytes:
        values = {
            b"\x00L": f"https://{host}/news/{feed}/{j}".encode(),
            b"\x00G": f"urn:bench:{feed}:{j}".encode(),
            b"\x00T": f"{j}:".encode(),
        }
        pieces = self.items[j % len(self.items)]
        return b"".join(values.get(piece, piece) for piece in pieces)

    def body(self, host: str, feed: int, first: int) -> bytes:
        items = (self.item(host, feed, j) for j in range(first + ITEMS_PER_FEED - 1, first - 1, -1))
        return self.head + b"".join(items) + self.tail


def real_templates(folder: Path = CORPUS_REAL) -> list[_Template]:
    """The real RSS 2.0 feeds whose 30-item rendering is 20-160 KB (gzip files skipped)."""
    found = []
    for path in sorted(folder.glob("*.xml")) if folder.is_dir() else []:
        body = path.read_bytes()
        if body[:2] == b"\x1f\x8b" or b"<rss" not in body[:2000]:
            continue
        template = _Template(path.stem, body)
        if len(template.items) < 5:
            continue
        size = len(template.body("outlet.example", 0, 0))
        if REAL_MIN_BYTES <= size <= REAL_MAX_BYTES:
            found.append(template)
    return found


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
        if kind == "r" and self.feeds.templates:
            version = self.feeds.versions.get(feed, 0) + 1
            self.feeds.versions[feed] = version
            template = self.feeds.templates[feed % len(self.feeds.templates)]
            body = template.body(f"outlet{feed % 500}.example", feed, version)
            # No charset: the templates' own XML declarations name their encodings.
            self._send(200, f'"r{feed}-{version}"', body, "application/rss+xml")
        elif kind == "c":
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

    def _send(
        self,
        status: int,
        etag: str | None,
        body: bytes,
        content_type: str = "application/rss+xml; charset=utf-8",
    ) -> None:
        assert self.transport is not None
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
        head = [f"HTTP/1.1 {status} {reason}", "Server: newsmon-bench"]
        if etag:
            head.append(f"ETag: {etag}")
        if status == 200:
            head.append(f"Content-Type: {content_type}")
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
