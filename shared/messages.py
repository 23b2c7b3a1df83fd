"""Message schemas of every topic, one versioned model per topic.

Messages are JSON (UTF-8). Decoding is strict about types and required fields, lenient about
unknown fields (a newer producer may add some), so a consumer never crashes on a message from a
newer version, and a message that does not fit goes to the DLQ with the validation error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "MATCH_HEADER",
    "Alert",
    "AlertSource",
    "Article",
    "Classified",
    "Evidence",
    "MessageDecodeError",
    "Term",
    "classified_headers",
    "decode",
    "encode",
    "fit_alert",
    "fit_classified",
    "known_non_match",
    "stable_id",
    "utc_now",
]


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]


def utc_now() -> datetime:
    return datetime.now(UTC)


def stable_id(*parts: str, length: int = 24) -> str:
    """A short hex id that is the same for the same parts on every machine and run."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)


class Article(_Message):
    """A news item as fetched and normalized (topic newsmon.articles.v1, key = id)."""

    schema_: Literal["newsmon.article.v1"] = Field("newsmon.article.v1", alias="schema")
    id: str = Field(
        min_length=1, description="Stable article id: hash of the feed GUID or canonical URL"
    )
    feed: str = Field(description="Name of the configured feed the item came from")
    source: str = Field(description="Outlet name (feed title or configured name)")
    url: str = Field(description="Canonical article URL")
    title: str
    summary: str = Field("", description="Plain-text summary / lede (HTML removed)")
    text: str = Field("", description="Full article text when fetched, else empty")
    published: UtcDatetime | None = Field(
        None, description="Publication time (UTC) if the feed gave one"
    )
    fetched: UtcDatetime = Field(description="When newsmon fetched the item (UTC)")
    lang: str | None = Field(None, description="ISO 639-1 language code if known")
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Term(_Message):
    """One lexicon term found in an evidence sentence."""

    term: str = Field(description="The text as it stands in the sentence")
    category: str = Field(description="Lexicon category, e.g. dprk_actor, troops, weapons")
    start: int = Field(ge=0, description="Offset of the term within the sentence (characters)")
    end: int = Field(ge=0, description="Offset just past the term within the sentence")


class Evidence(_Message):
    """A sentence that made the classifier fire, with the terms it matched."""

    field: Literal["title", "summary", "text"]
    sentence: str
    start: int = Field(ge=0, description="Offset of the sentence within the field (characters)")
    terms: tuple[Term, ...] = ()


class Classified(_Message):
    """An article with the classifier's verdict (topic newsmon.classified.v1, key = article id)."""

    schema_: Literal["newsmon.classified.v1"] = Field("newsmon.classified.v1", alias="schema")
    article: Article
    match: bool
    score: float = Field(ge=0.0, le=1.0)
    categories: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    classifier_version: str
    classified: UtcDatetime
    trimmed: bool = Field(
        False, description="True when text was shortened to fit the topic (see fit_classified)"
    )

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


# The verdict beside the Classified value, as a record header (`true` / `false`): a reader that
# wants only matches (the alerter) skips the rest without decoding them; three verdicts in four
# are not matches. The value stays the record of the verdict; records written before the header
# existed have none and are read whole.
MATCH_HEADER = "newsmon_match"
_MATCH_VALUES = {True: b"true", False: b"false"}


def classified_headers(classified: Classified) -> list[tuple[str, bytes]]:
    """The record headers of a Classified message."""
    return [(MATCH_HEADER, _MATCH_VALUES[classified.match])]


def known_non_match(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """True when the record's headers say its verdict is not a match (without its value)."""
    return any(key == MATCH_HEADER and value == b"false" for key, value in headers or ())


class AlertSource(_Message):
    """One outlet that carried the alerted story."""

    article_id: str
    source: str
    url: str
    feed: str


class Alert(_Message):
    """An alert about a matching story (topic newsmon.alerts.v1, key = story id)."""

    schema_: Literal["newsmon.alert.v1"] = Field("newsmon.alert.v1", alias="schema")
    alert_id: str = Field(description="Stable id: the same story always has the same alert id")
    revision: int = Field(1, ge=1, description="1 for the first alert; grows when copies join")
    story_id: str
    article_id: str
    title: str
    url: str
    source: str
    feed: str
    lang: str | None = None
    summary: str = ""
    categories: tuple[str, ...] = ()
    score: float = Field(ge=0.0, le=1.0)
    evidence: tuple[Evidence, ...] = ()
    classifier_version: str
    published: UtcDatetime | None = None
    fetched: UtcDatetime
    classified: UtcDatetime
    alerted: UtcDatetime
    sources: tuple[AlertSource, ...] = ()
    trimmed: bool = Field(
        False, description="True when text was shortened to fit the topic (see fit_alert)"
    )

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class MessageDecodeError(ValueError):
    """The bytes are not a valid message of the expected schema (a poison message)."""


M = TypeVar("M", bound=_Message)


def encode(message: _Message) -> bytes:
    return message.model_dump_json(by_alias=True).encode("utf-8")


def decode(model: type[M], payload: bytes | None) -> M:
    if payload is None:
        raise MessageDecodeError(f"{model.__name__}: empty message (tombstone)")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "message"
        problem = first.get("msg", "invalid")
        raise MessageDecodeError(
            f"{model.__name__}: {where}: {problem} ({exc.error_count()} error(s))"
        ) from None


# --- Fitting a message into a topic's size limit --------------------------------------------
# A valid match must still be alerted when its text is longer than the topic takes
# (max.message.bytes): long text is cut, in the order of what an analyst needs least, and the
# message says so (`trimmed`). Removing n UTF-8 bytes from a string shortens its JSON by at least
# n bytes (escaping only ever adds), so one cut per field is enough.


def _cut(text: str, excess: int) -> str:
    """`text` at least `excess` bytes (UTF-8) shorter, cut at a character boundary."""
    raw = text.encode("utf-8")
    keep = max(len(raw) - excess, 0)
    return raw[:keep].decode("utf-8", errors="ignore")


def _shrink(message: M, max_bytes: int, steps: list[Callable[[M, int], M]]) -> bytes | None:
    """The message encoded in at most `max_bytes`, applying `steps` in order until it fits
    (each step gets the bytes still over); None when even all of them are not enough."""
    value = encode(message)
    for step in steps:
        if len(value) <= max_bytes:
            break
        message = step(message, len(value) - max_bytes)
        value = encode(message)
    return value if len(value) <= max_bytes else None


def _classified_steps() -> list[Callable[[Classified, int], Classified]]:
    def text(c: Classified, excess: int) -> Classified:
        article = c.article.model_copy(update={"text": _cut(c.article.text, excess)})
        return c.model_copy(update={"article": article, "trimmed": True})

    def summary(c: Classified, excess: int) -> Classified:
        article = c.article.model_copy(update={"summary": _cut(c.article.summary, excess)})
        return c.model_copy(update={"article": article, "trimmed": True})

    def evidence(c: Classified, _excess: int) -> Classified:
        return c.model_copy(update={"evidence": c.evidence[:1], "trimmed": True})

    return [text, summary, evidence]


def _alert_steps() -> list[Callable[[Alert, int], Alert]]:
    def summary(a: Alert, excess: int) -> Alert:
        return a.model_copy(update={"summary": _cut(a.summary, excess), "trimmed": True})

    def evidence(a: Alert, _excess: int) -> Alert:
        return a.model_copy(update={"evidence": a.evidence[:1], "trimmed": True})

    return [summary, evidence]


def fit_classified(message: Classified, max_bytes: int) -> bytes | None:
    """`message` encoded in at most `max_bytes`: the article's full text is cut first, then
    its summary, then the evidence beyond the first sentence; None if that is not enough."""
    return _shrink(message, max_bytes, _classified_steps())


def fit_alert(message: Alert, max_bytes: int) -> bytes | None:
    """`message` encoded in at most `max_bytes`: the summary is cut first, then the evidence
    beyond the first sentence; None if that is not enough."""
    return _shrink(message, max_bytes, _alert_steps())
