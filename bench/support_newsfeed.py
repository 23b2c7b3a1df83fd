"""A news site for the end-to-end benchmark: RSS feeds on 127.0.0.1 whose items appear at a
controlled rate, recording when each item became visible and when a poll first served it.

Runs in a thread of the benchmark process (ThreadingHTTPServer); publishing is a second thread.
Items are (title, summary) pairs given by the caller: real-looking news, some on topic and
some not. Each feed shows its newest WINDOW items, newest first, with an ETag that changes
with its newest item: a poll with nothing new is a 304, as on a real site.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.sax.saxutils import escape

from tests.support.feed_server import serve_handler

WINDOW = 100  # items a feed shows; 10 feeds polled each second carry 1,000 items/s


class NewsSite:
    """`publish()` makes the next item visible on feed seq % feeds."""

    def __init__(self, texts: Sequence[tuple[str, str]], feeds: int, run_id: str) -> None:
        self.texts = texts
        self.feeds = feeds
        self.run_id = run_id
        self._lock = threading.Lock()
        self._items: list[list[int]] = [[] for _ in range(feeds)]
        self.visible: dict[int, float] = {}  # seq -> wall time it appeared
        self.served: dict[int, float] = {}  # seq -> wall time of the first response with it
        self.polls = 0

    def url_of(self, seq: int) -> str:
        return f"http://news.example/{self.run_id}/{seq}"

    def seq_of(self, url: str) -> int | None:
        head, _, tail = url.rpartition("/")
        return int(tail) if head.endswith(self.run_id) and tail.isdigit() else None

    def publish(self) -> int:
        with self._lock:
            seq = len(self.visible)
            self._items[seq % self.feeds].append(seq)
            self.visible[seq] = time.time()
            return seq

    def etag(self, feed: int) -> str:
        with self._lock:
            return f'"{feed}-{len(self._items[feed])}"'

    def body(self, feed: int) -> tuple[str, bytes]:
        with self._lock:
            shown = self._items[feed][-WINDOW:]
            etag = f'"{feed}-{len(self._items[feed])}"'
            now = time.time()
            self.polls += 1
            for seq in shown:
                self.served.setdefault(seq, now)
        return etag, _rss(feed, [(seq, *self.texts[seq % len(self.texts)]) for seq in shown], self)


def _rss(feed: int, items: list[tuple[int, str, str]], site: NewsSite) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
        f"<title>Bench News {feed}</title><link>http://news.example/</link>",
        "<description>newsmon end-to-end benchmark</description>",
    ]
    for seq, title, summary in reversed(items):
        stamp = formatdate(site.visible[seq], usegmt=True)
        parts.append(
            f"<item><title>{escape(title)}</title><link>{site.url_of(seq)}</link>"
            f'<guid isPermaLink="false">{site.run_id}-{seq}</guid><pubDate>{stamp}</pubDate>'
            f"<description>{escape(summary)}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def _handler(site: NewsSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1].removesuffix(".xml")
            if not name.isdigit() or int(name) >= site.feeds:
                self.send_error(404)
                return
            if self.headers.get("If-None-Match") == site.etag(int(name)):
                with site._lock:
                    site.polls += 1
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            etag, body = site.body(int(name))
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(site: NewsSite) -> Iterator[str]:
    """Serve the site; yields the base URL (feeds are <base>/feed/<i>.xml)."""
    with serve_handler(_handler(site)) as base:
        yield base


def publish_at(site: NewsSite, rate: float, seconds: float) -> list[int]:
    """Publish `rate` items a second for `seconds` (paced on a monotonic clock, no drift)."""
    count = max(1, round(rate * seconds))
    start = time.monotonic()
    published = []
    for k in range(count):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        published.append(site.publish())
    return published
