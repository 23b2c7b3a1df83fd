"""Small RSS 2.0 documents built in tests (our own fixtures, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Item:
    url: str
    title: str
    published: datetime | None = None
    guid: str | None = None
    summary: str = "A short summary."


def rss(items: Sequence[Item], *, title: str = "Test feed", hub: str | None = None) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>',
        f"<title>{escape(title)}</title><link>https://news.example.org/</link>",
        "<description>d</description>",
    ]
    if hub:
        parts.append(f'<atom:link rel="hub" href="{escape(hub)}"/>')
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title><link>{escape(item.url)}</link>")
        parts.append(f"<description>{escape(item.summary)}</description>")
        if item.guid:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.published:
            parts.append(f"<pubDate>{format_datetime(item.published, usegmt=True)}</pubDate>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")
