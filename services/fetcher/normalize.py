"""Pure normalization of feed items: URLs, ids, plain text, dates and language tags.

Every function here takes values and returns values: no I/O, no clock (the fetch time is
passed in), no global state, so each is tested on its own and is safe to run in worker threads.
"""

from __future__ import annotations

import calendar
import email.utils
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

from newsmon.shared.messages import stable_id

__all__ = [
    "DEFAULT_MAX_SKEW",
    "TRACKING_PARAMS",
    "article_id",
    "canonical_url",
    "html_to_text",
    "normalize_lang",
    "parse_published",
    "raw_get",
    "truncate",
    "xml_head_text",
]

# --------------------------------------------------------------------------------------------
# canonical URLs
# --------------------------------------------------------------------------------------------

# Query keys that identify a campaign or a click, never the article. The first group is the
# brief's list; the second are the other click ids the big ad networks append (Microsoft
# msclkid, Yandex yclid, Google dclid/gbraid/wbraid, HubSpot _hsenc/_hsmi, Marketo mkt_tok).
TRACKING_PARAMS: Final[frozenset[str]] = frozenset(
    {"fbclid", "gclid", "mc_cid", "mc_eid", "ref", "ref_src", "igshid"}
    | {"msclkid", "yclid", "dclid", "gbraid", "wbraid", "_hsenc", "_hsmi", "mkt_tok"}
)
_TRACKING_PREFIXES: Final[tuple[str, ...]] = ("utm_",)

# RFC 9110 §4.2.1/§4.2.2: the default ports of http and https.
_DEFAULT_PORTS: Final[Mapping[str, int]] = {"http": 80, "https": 443}


def _is_tracking_key(raw_key: str) -> bool:
    key = unquote(raw_key).strip().lower()
    return key in TRACKING_PARAMS or key.startswith(_TRACKING_PREFIXES)


def _clean_query(query: str) -> str:
    # Filter the raw `k=v` pieces instead of parse_qsl/urlencode: re-encoding would change
    # `+` vs `%20`, drop `=`-less flags and reorder nothing useful, so two copies of the same
    # URL could come out different. Order of the kept parameters is preserved.
    kept = [part for part in query.split("&") if part and not _is_tracking_key(part.split("=")[0])]
    return "&".join(kept)


def _clean_netloc(parts: SplitResult) -> str:
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    try:
        port = parts.port
    except ValueError:  # a non-numeric or out-of-range port: keep the netloc as written
        return netloc.lower() if not at else f"{userinfo}@{hostport.lower()}"
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal loses its brackets in .hostname
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return f"{userinfo}@{host}" if at else host


def canonical_url(url: str, base: str | None = None) -> str:
    """The canonical form of an article URL, used for ids and cross-feed dedup.

    Resolves `url` against `base`, lower-cases scheme and host, drops the default port, the
    fragment and tracking parameters (utm_*, fbclid, gclid, ...), and keeps every other query
    parameter in its original order. Non-http(s) URLs (tag:, urn:, mailto:) are returned
    stripped but otherwise unchanged. Never raises: an unparseable URL comes back stripped.
    """
    text = url.strip()
    if base:
        try:
            text = urljoin(base.strip(), text)
        except ValueError:
            return text
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return text
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        return text
    path = parts.path or "/"
    return urlunsplit((scheme, _clean_netloc(parts), path, _clean_query(parts.query), ""))


# --------------------------------------------------------------------------------------------
# article ids
# --------------------------------------------------------------------------------------------

_HTTP_URL = re.compile(r"^https?://", re.IGNORECASE)
# A GUID that is only digits ("12345") is a CMS row id: unique inside one site, colliding
# across outlets, so it is too weak to be an id on a shared topic. Short strings likewise.
_MIN_GUID_LEN: Final = 8


def _is_distinctive_guid(guid: str) -> bool:
    return len(guid) >= _MIN_GUID_LEN and not guid.isdigit() and not any(c.isspace() for c in guid)


def article_id(guid: str | None, canonical_url_: str) -> str:
    """Stable article id (ARCHITECTURE.md: "article id = hash of canonical URL / GUID").

    A GUID that is itself an http(s) URL is canonicalised and hashed exactly like a link, so
    a feed whose GUID is its permalink and a feed without GUIDs give the same id for the same
    story (cross-feed dedup). Another distinctive GUID (tag:, urn:, a long opaque string) is
    hashed in its own namespace; weak GUIDs (short, all digits) fall back to the URL.
    """
    candidate = (guid or "").strip()
    if candidate and _HTTP_URL.match(candidate):
        return stable_id("url", canonical_url(candidate))
    if _is_distinctive_guid(candidate):
        return stable_id("guid", candidate)
    return stable_id("url", canonical_url(canonical_url_))


# --------------------------------------------------------------------------------------------
# HTML to plain text
# --------------------------------------------------------------------------------------------

# Elements whose content is never text a reader sees.
_SKIP_CONTENT: Final[frozenset[str]] = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "svg", "math"}
)
# Elements that end a line in a browser: a space keeps "a<br>b" from becoming "ab".
_BREAKING: Final[frozenset[str]] = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "img", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td",
        "th", "tr", "ul",
    }
)  # fmt: skip
_VOID: Final[frozenset[str]] = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_CONTENT and tag not in _VOID:
            self._skip_depth += 1
        elif tag in _BREAKING:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKING:  # <br/>, <p/>: never opens a skipped region
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_CONTENT:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BREAKING:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def _collapse(text: str) -> str:
    # str.split() with no argument splits on every Unicode space (NBSP, U+3000 ...).
    return " ".join(text.split())


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment: tags, scripts and styles removed, entities decoded,
    whitespace collapsed to single spaces. Never raises."""
    if "<" not in html and "&" not in html:  # most titles: no parser needed
        return _collapse(html)
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except (AssertionError, ValueError):  # html.parser's last-resort errors on odd markup
        pass
    return _collapse("".join(extractor.parts))


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.8:  # do not throw away more than a fifth to find a boundary
        cut = cut[:space]
    return cut.rstrip() + "…"


# --------------------------------------------------------------------------------------------
# publication time
# --------------------------------------------------------------------------------------------

# A publisher's clock, or a feed that writes local time with a "GMT" label, is often a little
# ahead; beyond this the date is wrong and we use the fetch time instead (issue 4 §5).
DEFAULT_MAX_SKEW: Final = timedelta(minutes=15)
# RSS 0.90 appeared in 1999; a date before 1990 is a placeholder ("0001-01-01", epoch 0).
_EARLIEST: Final = datetime(1990, 1, 1, tzinfo=UTC)
_DATE_KEYS: Final = ("published", "updated", "created")
# Weekday names in languages feedparser's RFC 822 parser does not know (e.g. UOL's "Sáb,").
_LEADING_WEEKDAY = re.compile(r"^\s*[^\W\d_]{2,12}\.?,\s*")


def raw_get(entry: Mapping[str, Any], key: str) -> Any:
    # feedparser's FeedParserDict maps a missing "updated" to "published" with a
    # DeprecationWarning (feedparser/util.py, issue 310); dict.get reads only what is there.
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def _from_struct(value: Any) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:  # feedparser normalizes *_parsed to UTC
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


# Month abbreviations of pt/es/it/fr/de feeds that write RFC 822 dates in their own language
# (UOL: "Seg, 24 Set 2018 19:42:40 -0300"), mapped to the English ones RFC 822 requires.
_MONTHS: Final[Mapping[str, str]] = {
    "fev": "Feb", "abr": "Apr", "mai": "May", "ago": "Aug", "set": "Sep", "out": "Oct",
    "dez": "Dec", "ene": "Jan", "dic": "Dec", "gen": "Jan", "mag": "May", "giu": "Jun",
    "lug": "Jul", "ott": "Oct", "janv": "Jan", "févr": "Feb", "fevr": "Feb", "mars": "Mar",
    "avr": "Apr", "juin": "Jun", "juil": "Jul", "août": "Aug", "aout": "Aug", "sept": "Sep",
    "déc": "Dec", "mär": "Mar", "mrz": "Mar", "okt": "Oct",
}  # fmt: skip
_DAY_MONTH = re.compile(r"^(\d{1,2})\s+([^\W\d_]+)\.?(?=\s)")


def _english_month(match: re.Match[str]) -> str:
    month = match.group(2)
    return f"{match.group(1)} {_MONTHS.get(month.lower(), month)}"


def _from_text(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = _DAY_MONTH.sub(_english_month, _LEADING_WEEKDAY.sub("", value.strip()), count=1)
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # RFC 5322 "-0000": time is UTC, zone unknown
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # "31 Dec 9999 23:59 -1200" is past datetime.max in UTC
        return None


def parse_published(
    entry: Mapping[str, Any], fetched_at: datetime, *, max_skew: timedelta = DEFAULT_MAX_SKEW
) -> datetime | None:
    """Publication time of a feedparser entry in UTC, or None when the feed gives none.

    Tries published, updated, created (feedparser's parsed forms, then an RFC 822 re-parse
    of the raw string without a weekday name). A date more than `max_skew` after `fetched_at`
    is clamped to `fetched_at`; a date before 1990 is treated as missing.
    """
    for key in _DATE_KEYS:
        found = _from_struct(raw_get(entry, f"{key}_parsed")) or _from_text(raw_get(entry, key))
        if found is None or found < _EARLIEST:
            continue
        if found > fetched_at + max_skew:
            return fetched_at.astimezone(UTC)
        return found
    return None


# --------------------------------------------------------------------------------------------
# language
# --------------------------------------------------------------------------------------------

_LANG_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*$")
# ISO 639-2 codes feeds use where a 639-1 code exists (Article.lang is ISO 639-1).
_THREE_TO_TWO: Final[Mapping[str, str]] = {
    "eng": "en", "kor": "ko", "rus": "ru", "ukr": "uk", "jpn": "ja", "zho": "zh", "chi": "zh",
    "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es", "ita": "it", "por": "pt",
    "pol": "pl", "vie": "vi", "hin": "hi",
}  # fmt: skip


def normalize_lang(tag: str | None) -> str | None:
    """ISO 639-1 code from a language tag ("en-US", "IT-it", "en_US", "eng"), else None."""
    if not tag:
        return None
    match = _LANG_TAG.match(tag.strip())
    if not match:
        return None
    primary = match.group(1).lower()
    if len(primary) == 3:
        return _THREE_TO_TWO.get(primary)
    return primary


def xml_head_text(body: bytes, limit: int = 1 << 20) -> str:
    """The start of the body as text, enough to find markup declarations and root tags.

    XML 1.0 Appendix F: a document without a BOM starts with "<?xml" in its own encoding, so
    the first bytes tell UTF-16/32 from ASCII-compatible encodings.
    """
    head = body[:limit]
    for prefix, codec in (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
        (b"<\x00\x00\x00", "utf-32-le"),
        (b"\x00\x00\x00<", "utf-32-be"),
        (b"<\x00", "utf-16-le"),
        (b"\x00<", "utf-16-be"),
    ):
        if head.startswith(prefix):
            return head.decode(codec, errors="replace")
    return head.decode("latin-1")  # ASCII-compatible encodings all spell "<!ENTITY" alike
