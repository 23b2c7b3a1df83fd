"""Pure normalization of feed items: URLs, ids, plain text, dates and language.

Every function here takes values and returns values: no I/O, no clock (the fetch time is
passed in), no global state, so each is tested on its own and is safe to run in worker threads.
"""

from __future__ import annotations

import calendar
import email.utils
import re
import time
from collections.abc import Iterable, Mapping
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
    "detect_language",
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


_UKRAINIAN_ONLY: Final = frozenset("іїєґІЇЄҐ")
_RUSSIAN_ONLY: Final = frozenset("ыэъёЫЭЪЁ")
# Languages written in each script, to decide whether a hint fits the text.
_SCRIPT_LANGS: Final[Mapping[str, frozenset[str]]] = {
    "hangul": frozenset({"ko"}),
    "kana": frozenset({"ja"}),
    "han": frozenset({"zh", "ja"}),
    "cyrillic": frozenset({"ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "mn", "tg"}),
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Short function-word lists: frequent words of each language. A word two languages share
# ("que", "para") scores for both; detection needs a clear margin, so shared words only
# ever make the verdict more cautious. "a", "de" and "la", common to most of them, are left out.

_STOPWORDS: Final[Mapping[str, frozenset[str]]] = {
    "en": _words(
        "the and of to in is that for on with was as by at from are have has it this be "
        "said will were their not after but an which who its"
    ),
    "de": _words(
        "der die und das ist nicht mit sich den von auf ein eine dem des auch für im sind "
        "wird nach bei wie aus oder über zum zur in kann sein wenn man dass werden noch nur hat"
    ),
    "fr": _words(
        "le les et des du une est pour dans que qui sur pas au aux avec ce cette sont "
        "mais ont été leur par"
    ),
    "es": _words(
        "el los las y del que en por con una para es su al lo como más pero sus fue "
        "han este esta según"
    ),
    "it": _words(
        "il di che è della per una sono gli del nel alla dei con anche le come più "
        "questo stato ha nella"
    ),
    "pt": _words(
        "o os as e do da dos das que em um uma para com não no na é foi pelo pela ao mais seu sua"
    ),
    "pl": _words(
        "i w na z się nie że do jest to jak po przez od za ale dla czy są być jego który oraz"
    ),
    "vi": _words(
        "và của là có trong được cho không các những một với người này đã từ khi đến về như"
    ),
}
_WORD = re.compile(r"[^\W\d_]+")
_SAMPLE_CHARS: Final = 4000  # enough text for a verdict; keeps detection O(1) per article
_MIN_HITS: Final = 3


def _script_counts(sample: str) -> dict[str, int]:
    counts = {"hangul": 0, "kana": 0, "han": 0, "cyrillic": 0, "latin": 0}
    for ch in sample:
        code = ord(ch)
        if code < 0x80:
            if ch.isalpha():
                counts["latin"] += 1
        elif 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            counts["hangul"] += 1
        elif 0x3040 <= code <= 0x30FF:
            counts["kana"] += 1
        elif 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
            counts["han"] += 1
        elif 0x0400 <= code <= 0x04FF:
            counts["cyrillic"] += 1
        elif ch.isalpha():
            counts["latin"] += 1  # accented Latin letters (é, ł, ơ ...)
    return counts


def _cyrillic_language(sample: str, hint: str | None) -> str:
    if hint in _SCRIPT_LANGS["cyrillic"]:
        return hint
    ukrainian = sum(ch in _UKRAINIAN_ONLY for ch in sample)
    russian = sum(ch in _RUSSIAN_ONLY for ch in sample)
    return "uk" if ukrainian > russian else "ru"


def _stopword_scores(words: Iterable[str]) -> dict[str, int]:
    scores = dict.fromkeys(_STOPWORDS, 0)
    for word in words:
        for lang, stops in _STOPWORDS.items():
            if word in stops:
                scores[lang] += 1
    return scores


def _latin_language(sample: str, hint: str | None) -> str | None:
    scores = _stopword_scores(w.lower() for w in _WORD.findall(sample))
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= _MIN_HITS and top >= 2 * second:  # clear evidence beats a (often stale) hint
        return best
    if hint:
        return hint
    return best if top >= 2 and top > second else None


def detect_language(text: str, hint: str | None = None) -> str | None:
    """ISO 639-1 language of `text`, from its script, then from function words.

    Hangul → ko, kana → ja, Han only → zh, Cyrillic → uk when Ukrainian-only letters
    (і ї є ґ) outnumber Russian-only ones, else ru (a Cyrillic hint such as "bg" wins).
    Latin text is scored against small stopword lists (en de fr es it pt pl vi); with weak
    evidence the hint is returned. None when nothing is known.
    """
    hint = normalize_lang(hint)
    sample = text[:_SAMPLE_CHARS]
    counts = _script_counts(sample)
    letters = sum(counts.values())
    if not letters:
        return hint
    # A script counts when it is at least a fifth of the letters: a Latin brand name in a
    # Korean headline, or one Cyrillic word quoted in English, does not flip the verdict.
    share = {script: n / letters for script, n in counts.items()}
    if share["hangul"] >= 0.2:
        return "ko"
    if share["kana"] >= 0.05 and share["kana"] + share["han"] >= 0.2:
        return "ja"
    if share["han"] >= 0.2:
        return hint if hint in _SCRIPT_LANGS["han"] else "zh"
    if share["cyrillic"] >= 0.2:
        return _cyrillic_language(sample, hint)
    return _latin_language(sample, hint)


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
