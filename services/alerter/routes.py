"""Alert routing: which topics an alert goes to. Pure: rules and an alert in, topic names out.

Every alert always goes to the main alerts topic (`<prefix>.alerts.v1`, which the notifier
reads); rules add topics. A rule matches when every condition it states holds; a condition that
lists several values holds when any of them does. Rules come from a TOML file named by
`NEWSMON_ALERT_ROUTES_FILE`; without one the built-in table below applies:

    [[route]]
    topic = "{prefix}.alerts.troops.v1"   # {prefix} is NEWSMON_TOPIC_PREFIX
    categories = ["troops"]               # any of these categories
    min_score = 0.0                       # score at least this
    languages = ["en", "ko"]              # ISO 639-1 (alert without a language: "und")
    sources = ["Yonhap"]                  # outlet names, any copy of the story (case-insensitive)
    feeds = ["yonhap-en"]                 # configured feed names, any copy of the story
"""

from __future__ import annotations

import functools
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from newsmon.shared.messages import Alert
from newsmon.shared.settings import Topics

__all__ = [
    "DEFAULT_ROUTES",
    "Route",
    "RouteInput",
    "RoutesError",
    "check_command",
    "load_routes",
    "parse_routes",
    "route",
    "routed_topics",
]

# Kafka topic names: at most 249 characters of ASCII letters, digits, '.', '_' and '-'
# (kafka.common.internals.Topic.validate in the Apache Kafka sources).
_TOPIC_NAME: Final = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_KEYS: Final = frozenset(
    {"name", "topic", "categories", "min_score", "languages", "sources", "feeds"}
)
MAIN_ROUTE: Final = "all alerts"


class RoutesError(ValueError):
    """The routes file is not usable; the message names the rule and the problem."""


@dataclass(frozen=True, slots=True)
class Route:
    topic: str  # may contain {prefix}
    name: str = ""
    categories: frozenset[str] = frozenset()
    min_score: float = 0.0
    languages: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()  # case-folded
    feeds: frozenset[str] = frozenset()

    def matches(self, item: RouteInput) -> bool:
        # isdisjoint takes the item's tuples as they are (no set built per rule and alert).
        if self.categories and self.categories.isdisjoint(item.categories):
            return False
        if item.score < self.min_score:
            return False
        if self.languages and (item.lang or "und") not in self.languages:
            return False
        if self.sources and self.sources.isdisjoint(s.casefold() for s in item.sources):
            return False
        return not (self.feeds and self.feeds.isdisjoint(item.feeds))

    def topic_for(self, prefix: str) -> str:
        return _topic_name(self.topic, prefix)

    def label(self) -> str:
        return self.name or self.topic


@dataclass(frozen=True, slots=True)
class RouteInput:
    """What routing looks at; `from_alert` for real alerts, or partial JSON for `routes check`."""

    categories: tuple[str, ...] = ()
    score: float = 0.0
    lang: str | None = None
    sources: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()

    @classmethod
    def from_alert(cls, alert: Alert) -> RouteInput:
        return cls(
            categories=alert.categories,
            score=alert.score,
            lang=alert.lang,
            sources=tuple(dict.fromkeys([alert.source, *(s.source for s in alert.sources)])),
            feeds=tuple(dict.fromkeys([alert.feed, *(s.feed for s in alert.sources)])),
        )


# The classifier's topical categories (newsmon.classifier.lexicon.TOPICAL_CATEGORIES) and the
# short topic names users subscribe to.
DEFAULT_ROUTES: Final[tuple[Route, ...]] = (
    Route("{prefix}.alerts.troops.v1", "troops", frozenset({"troops"})),
    Route("{prefix}.alerts.weapons.v1", "weapons", frozenset({"weapons"})),
    Route("{prefix}.alerts.tech-transfer.v1", "tech-transfer", frozenset({"tech_transfer"})),
    Route("{prefix}.alerts.treaty.v1", "treaty", frozenset({"treaty_diplomacy"})),
    Route("{prefix}.alerts.casualties.v1", "casualties", frozenset({"casualties"})),
)


@functools.lru_cache(maxsize=256)
def _topic_name(topic: str, prefix: str) -> str:
    """A rule's topic with the prefix filled in (asked for every alert: built once)."""
    return topic.replace("{prefix}", prefix)


@functools.lru_cache(maxsize=16)
def _main_topic(prefix: str) -> str:
    return Topics(prefix).alerts


def route(item: RouteInput, routes: Sequence[Route], *, prefix: str) -> list[tuple[str, str]]:
    """(topic, why) for every topic the alert goes to: the main topic first, no topic twice."""
    chosen: dict[str, str] = {_main_topic(prefix): MAIN_ROUTE}
    for rule in routes:
        if rule.matches(item):
            chosen.setdefault(rule.topic_for(prefix), rule.label())
    return list(chosen.items())


def routed_topics(routes: Iterable[Route], *, prefix: str) -> list[str]:
    """Every topic the rules can send to (created at start-up), main topic first."""
    topics = dict.fromkeys([Topics(prefix).alerts, *(r.topic_for(prefix) for r in routes)])
    return list(topics)


def _strings(value: Any, where: str, key: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RoutesError(f"{where}: {key} must be a list of non-empty strings")
    return frozenset(value)


def parse_routes(document: dict[str, Any], *, prefix: str = "newsmon") -> tuple[Route, ...]:
    """Rules from a parsed TOML document (`[[route]]` tables)."""
    unknown_top = set(document) - {"route"}
    if unknown_top:
        raise RoutesError(f"unknown key(s) {', '.join(sorted(unknown_top))}; expected [[route]]")
    tables = document.get("route", [])
    if not isinstance(tables, list):
        raise RoutesError("route must be an array of tables ([[route]])")
    routes: list[Route] = []
    for number, table in enumerate(tables, start=1):
        where = f"route {number}"
        if not isinstance(table, dict):
            raise RoutesError(f"{where}: must be a table")
        unknown = set(table) - _KEYS
        if unknown:
            raise RoutesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        topic = table.get("topic")
        if not isinstance(topic, str):
            raise RoutesError(f"{where}: topic is required (a string)")
        if not _TOPIC_NAME.match(topic.replace("{prefix}", prefix)):
            raise RoutesError(f"{where}: {topic!r} is not a valid Kafka topic name")
        name = table.get("name", "")
        if not isinstance(name, str):
            raise RoutesError(f"{where}: name must be a string")
        min_score = table.get("min_score", 0.0)
        if isinstance(min_score, bool) or not isinstance(min_score, int | float):
            raise RoutesError(f"{where}: min_score must be a number")
        if not 0.0 <= float(min_score) <= 1.0:
            raise RoutesError(f"{where}: min_score must be within [0, 1]")
        routes.append(
            Route(
                topic=topic,
                name=name,
                categories=_strings(table.get("categories", []), where, "categories"),
                min_score=float(min_score),
                languages=_strings(table.get("languages", []), where, "languages"),
                sources=frozenset(
                    s.casefold() for s in _strings(table.get("sources", []), where, "sources")
                ),
                feeds=_strings(table.get("feeds", []), where, "feeds"),
            )
        )
    return tuple(routes)


def load_routes(path: Path | None, *, prefix: str = "newsmon") -> tuple[Route, ...]:
    """The rules of `path`, or the built-in table when `path` is None."""
    if path is None:
        return DEFAULT_ROUTES
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise RoutesError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RoutesError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_routes(document, prefix=prefix)
    except RoutesError as exc:
        raise RoutesError(f"{path}: {exc}") from None


# --- newsmon routes check ----------------------------------------------------------------------


def _route_input(text: str) -> RouteInput:
    """A full alert JSON, or just the fields routing reads (categories, score, lang, source(s),
    feed(s))."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RoutesError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RoutesError("expected a JSON object (an alert)")
    try:
        sources = [doc["source"]] if isinstance(doc.get("source"), str) else []
        feeds = [doc["feed"]] if isinstance(doc.get("feed"), str) else []
        for entry in doc.get("sources", []):
            if isinstance(entry, dict):
                sources.append(str(entry.get("source", "")))
                feeds.append(str(entry.get("feed", "")))
            else:
                sources.append(str(entry))
        score = doc.get("score", 0.0)
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise RoutesError("score must be a number")
        categories = doc.get("categories", [])
        if not isinstance(categories, list):
            raise RoutesError("categories must be a list")
        lang = doc.get("lang")
        return RouteInput(
            categories=tuple(str(c) for c in categories),
            score=float(score),
            lang=str(lang) if lang else None,
            sources=tuple(s for s in dict.fromkeys(sources) if s),
            feeds=tuple(f for f in dict.fromkeys(feeds) if f),
        )
    except (TypeError, AttributeError) as exc:
        raise RoutesError(f"not an alert: {exc}") from None


def check_command(
    alert_json: str | None,
    routes_file: Path | None,
    prefix: str,
    out: TextIO,
    err: TextIO,
    *,
    stdin: TextIO | None = None,
) -> int:
    """`newsmon routes check [ALERT_JSON]`: print the topics a sample alert would go to.

    ALERT_JSON is the JSON itself, a file name, or - / nothing for stdin."""
    try:
        routes = load_routes(routes_file, prefix=prefix)
        if alert_json is None or alert_json == "-":
            text = (stdin or sys.stdin).read()
        elif alert_json.lstrip().startswith("{"):
            text = alert_json
        else:
            text = Path(alert_json).read_text(encoding="utf-8")
        item = _route_input(text)
    except RoutesError as exc:
        err.write(f"routes check: {exc}\n")
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        err.write(f"routes check: cannot read {alert_json}: {exc}\n")
        return 1
    origin = str(routes_file) if routes_file is not None else "built-in routes"
    out.write(f"# {origin}; categories={list(item.categories)} score={item.score:g} ")
    out.write(f"lang={item.lang or 'und'} sources={list(item.sources)}\n")
    for topic, why in route(item, routes, prefix=prefix):
        out.write(f"{topic}\t{why}\n")
    return 0
