"""Feed configuration: the TOML feeds file (deploy/feeds.toml) and OPML import/export.

Pure functions over text and bytes, except `load_feeds`, which reads one file. The format:

    [[feed]]
    url = "https://www.newindianexpress.com/stories.rss"   # required, http or https
    name = "newindianexpress"     # optional feed id; default: a slug of the host
    interval = 300                # optional seconds: the shortest poll interval
    interval_min = 300            # optional, instead of `interval`
    interval_max = 3600           # optional, the longest poll interval
    full_text = true              # optional; absent = decide from summary length
    lang = "en"                   # optional language hint (ISO 639-1 or a BCP 47 tag)
    enabled = true                # optional, default true

The name is the feed's id: a metric label, a state key and the `feeds remove` argument, so it
is a short lower-case slug and must be unique in the file.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from newsmon.fetcher.normalize import normalize_lang, xml_head_text
from newsmon.shared.errors import ConfigError

__all__ = [
    "FeedConfig",
    "FeedRecord",
    "FeedsFileError",
    "derive_name",
    "dump_feeds",
    "feeds_from_opml",
    "feeds_to_opml",
    "load_feeds",
    "parse_feeds",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ALLOWED_SCHEMES: Final = ("http", "https")
_KEYS: Final = frozenset(
    {"url", "name", "interval", "interval_min", "interval_max", "full_text", "lang", "enabled"}
)


class FeedsFileError(ConfigError, ValueError):
    """The feeds file (TOML or OPML) is unreadable or an entry in it is invalid."""


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """One configured feed. Validated on construction (raises ValueError)."""

    name: str
    url: str
    interval_min_s: float | None = None
    interval_max_s: float | None = None
    full_text: bool | None = None
    lang: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"name {self.name!r} is not a feed id: use 1-64 of a-z 0-9 . _ - "
                "starting with a letter or digit"
            )
        _check_url(self.url)
        for label, value in (
            ("interval_min", self.interval_min_s),
            ("interval_max", self.interval_max_s),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
        if (
            self.interval_min_s is not None
            and self.interval_max_s is not None
            and self.interval_min_s > self.interval_max_s
        ):
            raise ValueError(
                f"interval_min ({self.interval_min_s:g} s) is above interval_max "
                f"({self.interval_max_s:g} s)"
            )
        if self.lang is not None and normalize_lang(self.lang) != self.lang:
            raise ValueError(f"lang {self.lang!r} is not a lower-case ISO 639-1 code")


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"url {url!r} is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        # Local files are for operators testing a feed (the feeds file is theirs to write).
        if not parts.path or parts.path == "/":
            raise ValueError(f"url {url!r} names no file")
        return
    if scheme not in _ALLOWED_SCHEMES:
        raise ValueError(f"url {url!r} must start with http://, https:// or file://")
    if not parts.hostname:
        raise ValueError(f"url {url!r} has no host")


# Second-level labels under a country TLD that are not the outlet's name ("co.kr", "co.uk").
_GENERIC_SLD: Final = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or", "go"})


def derive_name(url: str) -> str:
    """A short feed id from the URL's host: "https://en.yna.co.kr/RSS/news.xml" → "yna"."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        return _slug(PurePosixPath(parts.path).stem.lower()) or "feed"
    host = (parts.hostname or "").lower().rstrip(".")
    labels = host.split(".")
    if all(label.isdigit() for label in labels) or ":" in host:  # an IP address
        return _slug(host) or "feed"
    if len(labels) > 1:
        labels = labels[:-1]  # the TLD
    if len(labels) > 1 and labels[-1] in _GENERIC_SLD and len(host.rsplit(".", 1)[-1]) == 2:
        labels = labels[:-1]
    return _slug(labels[-1]) or "feed"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64]


# --------------------------------------------------------------------------------------------
# TOML
# --------------------------------------------------------------------------------------------


def _seconds(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    # bool is an int subclass: `interval = true` is a typo, not one second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number of seconds, got {value!r}")
    return float(value)


def _optional(entry: Mapping[str, Any], key: str, kind: type) -> Any:
    value = entry.get(key)
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def _feed_from_table(entry: Mapping[str, Any]) -> FeedConfig:
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    url = entry.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValueError("missing url")
    url = url.strip()
    if "interval" in entry and "interval_min" in entry:
        raise ValueError("give either interval or interval_min, not both")
    name = _optional(entry, "name", str)
    lang = _optional(entry, "lang", str)
    enabled = _optional(entry, "enabled", bool)
    interval_min = _seconds(entry, "interval") if "interval" in entry else None
    if "interval_min" in entry:
        interval_min = _seconds(entry, "interval_min")
    if lang is not None and normalize_lang(lang) is None:
        raise ValueError(f"lang {lang!r} is not a language code such as 'en' or 'ko'")
    _check_url(url)
    return FeedConfig(
        name=name if name is not None else derive_name(url),
        url=url,
        interval_min_s=interval_min,
        interval_max_s=_seconds(entry, "interval_max"),
        full_text=_optional(entry, "full_text", bool),
        lang=normalize_lang(lang),
        enabled=True if enabled is None else enabled,
    )


def _describe(index: int, entry: Any) -> str:
    url = entry.get("url") if isinstance(entry, Mapping) else None
    return f"feed #{index}" + (f" ({url})" if isinstance(url, str) else "")


def parse_feeds(text: str, *, source: str = "<feeds>") -> list[FeedConfig]:
    """Feeds from TOML text; `source` names the file in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FeedsFileError(f"{source}: not valid TOML: {exc}") from None
    extra = sorted(set(document) - {"feed"})
    if extra:
        raise FeedsFileError(
            f"{source}: unknown top-level key(s) {', '.join(extra)}; feeds are [[feed]] tables"
        )
    tables = document.get("feed", [])
    if not isinstance(tables, list):
        raise FeedsFileError(f"{source}: 'feed' must be an array of tables: write [[feed]]")
    feeds: list[FeedConfig] = []
    by_name: dict[str, int] = {}
    by_url: dict[str, int] = {}
    for index, entry in enumerate(tables, start=1):
        where = f"{source}: {_describe(index, entry)}"
        if not isinstance(entry, dict):
            raise FeedsFileError(f"{where}: must be a table")
        try:
            feed = _feed_from_table(entry)
        except ValueError as exc:
            raise FeedsFileError(f"{where}: {exc}") from None
        if feed.name in by_name:
            how = "given" if "name" in entry else "derived from the host"
            raise FeedsFileError(
                f"{where}: duplicate name {feed.name!r} ({how}; also feed #{by_name[feed.name]}); "
                "give each feed a unique name"
            )
        if feed.url in by_url:
            raise FeedsFileError(f"{where}: duplicate url (also feed #{by_url[feed.url]})")
        by_name[feed.name] = by_url[feed.url] = index
        feeds.append(feed)
    return feeds


def load_feeds(path: Path) -> list[FeedConfig]:
    """Feeds from a TOML feeds file; FeedsFileError names the file and the bad entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedsFileError(f"{path}: cannot read feeds file: {exc}") from None
    return parse_feeds(text, source=str(path))


def _toml_str(value: str) -> str:
    # TOML basic strings (toml.io/en/v1.0.0#string): escape \ and ", and control characters.
    out = []
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_number(value: float) -> str:
    number = float(value)  # an int is a valid float annotation value
    return str(int(number)) if number.is_integer() else repr(number)


def dump_feeds(feeds: Iterable[FeedConfig]) -> str:
    """TOML text for `feeds` that `parse_feeds` reads back to the same list."""
    blocks = []
    for feed in feeds:
        lines = ["[[feed]]", f"name = {_toml_str(feed.name)}", f"url = {_toml_str(feed.url)}"]
        if feed.interval_min_s is not None:
            lines.append(f"interval_min = {_toml_number(feed.interval_min_s)}")
        if feed.interval_max_s is not None:
            lines.append(f"interval_max = {_toml_number(feed.interval_max_s)}")
        if feed.full_text is not None:
            lines.append(f"full_text = {str(feed.full_text).lower()}")
        if feed.lang is not None:
            lines.append(f"lang = {_toml_str(feed.lang)}")
        if not feed.enabled:
            lines.append("enabled = false")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


# --------------------------------------------------------------------------------------------
# OPML (opml.org/spec2.opml: <outline type="rss" xmlUrl=... text=... language=...>)
# --------------------------------------------------------------------------------------------

_MAX_OPML_BYTES: Final = 5 * 1024 * 1024  # thousands of feeds fit in well under 1 MB


def feeds_from_opml(data: bytes) -> list[FeedConfig]:
    """Feeds from an OPML subscription list (any outline with an xmlUrl, at any depth).

    Like defusedxml, documents with a DOCTYPE are refused outright: OPML never needs one, and
    it is where entity-expansion and external-entity attacks live. Outlines whose xmlUrl
    repeats an earlier one are skipped (the same feed in two folders); names derived from
    the outline text are made unique with -2, -3 ...
    """
    if len(data) > _MAX_OPML_BYTES:
        raise FeedsFileError(f"OPML: document is larger than {_MAX_OPML_BYTES} bytes")
    if re.search(r"<!(?:DOCTYPE|ENTITY)", xml_head_text(data), re.IGNORECASE):
        raise FeedsFileError("OPML: refused a document with a DOCTYPE or ENTITY declaration")
    try:
        root = ET.fromstring(data)  # noqa: S314 - DOCTYPE refused above, so no entities
    except ET.ParseError as exc:
        raise FeedsFileError(f"OPML: not well-formed XML: {exc}") from None
    if root.tag != "opml":
        raise FeedsFileError(f"OPML: root element is <{root.tag}>, expected <opml>")
    feeds: list[FeedConfig] = []
    names: set[str] = set()
    urls: set[str] = set()
    for index, outline in enumerate(root.iter("outline"), start=1):
        url = (outline.get("xmlUrl") or "").strip()
        if not url:
            continue  # a folder
        if url in urls:
            continue
        label = outline.get("text") or outline.get("title") or ""
        base = _slug(label)[:60] or derive_name(url)
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        try:
            feed = FeedConfig(name=name, url=url, lang=normalize_lang(outline.get("language")))
        except ValueError as exc:
            raise FeedsFileError(f"OPML: outline #{index} ({label or url}): {exc}") from None
        names.add(name)
        urls.add(url)
        feeds.append(feed)
    return feeds


def feeds_to_opml(feeds: Sequence[FeedConfig], *, title: str = "newsmon feeds") -> str:
    """An OPML 2.0 document listing `feeds` (name, url, language; intervals are not kept)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if feed.lang:
            attrs["language"] = feed.lang
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------------------------
# Records of the feeds topic (<prefix>.feeds.v1, key = feed name, a tombstone removes it)
# --------------------------------------------------------------------------------------------

FEED_SCHEMA: Final = "newsmon.feed.v1"

Origin = Literal["file", "cli"]


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """One feed as kept in the feeds topic: its config, and where it came from. `origin` is
    "file" for feeds imported from the feeds file at start-up (a later import that no longer
    finds them removes them) and "cli" for feeds written by `newsmon feeds` (left alone by
    imports)."""

    feed: FeedConfig
    origin: Origin = "cli"

    def to_json(self) -> bytes:
        f = self.feed
        return json.dumps(
            {
                "schema": FEED_SCHEMA,
                "name": f.name,
                "url": f.url,
                "interval_min": f.interval_min_s,
                "interval_max": f.interval_max_s,
                "full_text": f.full_text,
                "lang": f.lang,
                "enabled": f.enabled,
                "origin": self.origin,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> FeedRecord:
        """The record of a feeds-topic value; ValueError names what is wrong with it."""
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != FEED_SCHEMA:
            raise ValueError(f"not a {FEED_SCHEMA} record")
        origin = data.get("origin", "cli")
        if origin not in ("file", "cli"):
            raise ValueError(f"origin {origin!r} is neither file nor cli")
        table = {k: data[k] for k in _KEYS if data.get(k) is not None}
        return cls(_feed_from_table(table), origin)
