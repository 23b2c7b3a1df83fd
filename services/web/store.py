"""What the web page shows, held in memory: stories (every revision of an alert) and filters.

Pure: alerts in, views out; no I/O. The app feeds it from the alerts topic (read from the
beginning of its retention, then live) and renders its answers.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from newsmon.shared.messages import Alert, AlertSource, decode, encode

__all__ = [
    "SINCE_CHOICES",
    "AlertFilter",
    "AlertStore",
    "Revision",
    "Story",
    "TimelineEntry",
    "alerts_per_day",
]

# The time filter's choices: query value -> window (None: everything kept).
SINCE_CHOICES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "": None,
}


@dataclass(frozen=True)
class TimelineEntry:
    """One moment of a story: a revision raised by an article, or a source seen with it."""

    when: datetime | None
    revision: int | None
    source: AlertSource
    title: str | None = None
    lang: str | None = None


# Decoding an alert costs about 50 µs of CPU: the newest ones (the first page, the live updates
# every open page receives) are decoded once, not once per page view or per live client.
DECODED_CACHE = 512  # alerts, about 12 KB each


@functools.lru_cache(maxsize=DECODED_CACHE)
def _decoded(raw: bytes) -> Alert:
    return decode(Alert, raw)


@dataclass(frozen=True, slots=True)
class Revision:
    """What the pages use of one revision besides the newest: its timeline row, the search and
    the filters. Small on purpose: a story holds one per revision (see Story)."""

    revision: int
    alerted: datetime
    when: datetime | None  # published, else fetched
    article_id: str
    title: str
    url: str
    source: str
    feed: str
    lang: str | None
    categories: tuple[str, ...]

    @classmethod
    def of(cls, alert: Alert) -> Revision:
        # Outlet, feed, language and category names repeat across thousands of alerts: one
        # copy of each (decoded messages bring fresh strings).
        return cls(
            revision=alert.revision,
            alerted=alert.alerted,
            when=alert.published or alert.fetched,
            article_id=alert.article_id,
            title=alert.title,
            url=alert.url,
            source=sys.intern(alert.source),
            feed=sys.intern(alert.feed),
            lang=sys.intern(alert.lang) if alert.lang else alert.lang,
            categories=tuple(sys.intern(c) for c in alert.categories),
        )

    @property
    def own_source(self) -> AlertSource:
        return AlertSource(
            article_id=self.article_id, source=self.source, url=self.url, feed=self.feed
        )


class Story:
    """Every revision of one alert (same alert_id), oldest first.

    Only the newest revision is kept whole, as its JSON (decoded when a page shows it): a
    decoded Alert with its evidence is about 12 KB and every revision's `sources` repeats the
    ones before it, so keeping each revision whole grew with the square of a story's copies.
    Older revisions keep what the timeline, search and filters read (Revision); sources known
    only from a revision's list are kept once per article.
    """

    __slots__ = ("_joined", "_latest", "revisions")

    def __init__(self) -> None:
        self.revisions: list[Revision] = []
        self._latest = b""
        self._joined: dict[str, tuple[str, str, str]] = {}  # article id -> source, url, feed

    @property
    def latest(self) -> Alert:
        """The newest revision, whole (the page shows its evidence, summary and score)."""
        return _decoded(self._latest)

    @property
    def newest(self) -> Revision:
        return self.revisions[-1]

    @property
    def first_alerted(self) -> datetime:
        return self.revisions[0].alerted

    def add(self, alert: Alert, raw: bytes | None = None) -> bool:
        """Keep `alert` unless this revision is already here (a replayed duplicate). `raw`:
        the alert's JSON as read from the topic, when the caller has it (saves encoding it)."""
        if any(r.revision == alert.revision for r in self.revisions):
            return False
        self.revisions.append(Revision.of(alert))
        self.revisions.sort(key=lambda r: r.revision)
        if self.revisions[-1].revision == alert.revision:
            self._latest = raw if raw is not None else encode(alert)
        raised = {r.article_id for r in self.revisions}
        for s in alert.sources:
            if s.article_id not in raised and s.article_id not in self._joined:
                self._joined[s.article_id] = (sys.intern(s.source), s.url, sys.intern(s.feed))
        return True

    def sources(self) -> list[AlertSource]:
        """Every outlet that carried the story, each once: the articles that raised its
        revisions in revision order, then those only known from a revision's list, in the
        order they were read."""
        seen: dict[str, AlertSource] = {}
        for r in self.revisions:
            if r.article_id not in seen:
                seen[r.article_id] = r.own_source
        for article_id, (source, url, feed) in self._joined.items():
            if article_id not in seen:
                seen[article_id] = AlertSource(
                    article_id=article_id, source=source, url=url, feed=feed
                )
        return list(seen.values())

    def timeline(self) -> list[TimelineEntry]:
        """Each revision at the time its article raised it, then sources only known from a
        later revision's list (they joined without raising a revision of their own)."""
        entries = [
            TimelineEntry(
                when=r.when, revision=r.revision, source=r.own_source, title=r.title, lang=r.lang
            )
            for r in self.revisions
        ]
        raised = {r.article_id for r in self.revisions}
        entries += [
            TimelineEntry(when=None, revision=None, source=s)
            for s in self.sources()
            if s.article_id not in raised
        ]
        return entries


@dataclass(frozen=True)
class AlertFilter:
    """The page's filters; empty strings mean "any"."""

    category: str = ""
    lang: str = ""
    feed: str = ""
    since: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> AlertFilter:
        since = params.get("since", "")
        return cls(
            category=params.get("category", "").strip(),
            lang=params.get("lang", "").strip(),
            feed=params.get("feed", "").strip(),
            since=since if since in SINCE_CHOICES else "",
            q=params.get("q", "").strip()[:200],
        )

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    def matches(self, story: Story, now: datetime) -> bool:
        alert = story.newest
        if self.category and self.category not in alert.categories:
            return False
        if self.lang and alert.lang != self.lang:
            return False
        if self.feed and self.feed not in {s.feed for s in story.sources()}:
            return False
        window = SINCE_CHOICES.get(self.since)
        if window is not None and alert.alerted < now - window:
            return False
        if self.q:
            needle = self.q.casefold()
            return any(needle in r.title.casefold() for r in story.revisions)
        return True


class AlertStore:
    """Stories by alert id, bounded to `max_stories` (the stories changed
    least recently are forgotten). Every change gets a sequence number so a live page can ask
    for what changed since the number it was rendered with."""

    def __init__(self, max_stories: int = 20_000, max_changes: int = 10_000) -> None:
        self.max_stories = max_stories
        self._stories: dict[str, Story] = {}  # insertion order = order of last change
        self._changes: deque[tuple[int, str]] = deque(maxlen=max_changes)
        self._seq = itertools.count(1)
        self.seq = 0

    def __len__(self) -> int:
        return len(self._stories)

    def add(self, alert: Alert, raw: bytes | None = None) -> bool:
        """Take one alert (`raw`: its JSON from the topic, if at hand); True when it changed
        what the page shows."""
        story = self._stories.pop(alert.alert_id, None) or Story()
        changed = story.add(alert, raw)
        self._stories[alert.alert_id] = story  # moved to the end: the newest change
        if changed:
            self.seq = next(self._seq)
            self._changes.append((self.seq, alert.alert_id))
        while len(self._stories) > self.max_stories:
            del self._stories[next(iter(self._stories))]
        return changed

    def story(self, alert_id: str) -> Story | None:
        return self._stories.get(alert_id)

    def stories(self) -> list[Story]:
        """Newest first, by the time of each story's latest revision (the topic's partitions
        are read in no particular order between them)."""
        return sorted(self._stories.values(), key=lambda s: s.newest.alerted, reverse=True)

    def query(self, flt: AlertFilter, now: datetime, limit: int = 200) -> list[Story]:
        matching = (s for s in self.stories() if flt.matches(s, now))
        return list(itertools.islice(matching, limit))

    def changed_since(self, seq: int) -> tuple[int, list[Story]] | None:
        """(latest seq, stories changed after `seq`, newest last), or None when `seq` is older
        than the changes still remembered (the caller should reload)."""
        if seq >= self.seq:
            return self.seq, []
        if not self._changes or self._changes[0][0] > seq + 1:
            return None
        ids = dict.fromkeys(aid for n, aid in self._changes if n > seq)
        stories = [s for aid in ids if (s := self._stories.get(aid)) is not None]
        return self.seq, stories

    def facets(self) -> dict[str, list[str]]:
        """The values the filters offer: categories, languages and feeds seen."""
        categories: set[str] = set()
        langs: set[str] = set()
        feeds: set[str] = set()
        for story in self._stories.values():
            categories.update(story.newest.categories)
            if story.newest.lang:
                langs.add(story.newest.lang)
            feeds.update(s.feed for s in story.sources())
        return {
            "category": sorted(categories),
            "lang": sorted(langs),
            "feed": sorted(feeds),
        }


def alerts_per_day(
    stories: Iterable[Story], today: date, days: int = 14
) -> list[tuple[date, Counter[str]]]:
    """Stories first alerted on each of the last `days` days, counted per category (a story of
    two categories counts in both), oldest day first."""
    first_day = today - timedelta(days=days - 1)
    counts: dict[date, Counter[str]] = {first_day + timedelta(d): Counter() for d in range(days)}
    for story in stories:
        day = story.first_alerted.date()
        if day in counts:
            counts[day].update(story.newest.categories or ("uncategorised",))
    return sorted(counts.items())
