"""Fetcher state that survives restarts, kept in Kafka itself (no database to run).

* Per-feed state (validators, body hash, adaptive interval, next poll time, error streak) is
  a compacted topic `<prefix>.fetcher-state.v1` (cleanup.policy=compact), key = feed name,
  value = FeedState JSON; the latest value per key wins, so the topic stays about one record
  per feed. Read to its end at start, written after every poll (both with the one store on
  compacted topics, shared/statetopic.py).
* Seen article ids are rebuilt from the articles topic itself (keys are article ids, values
  carry the canonical URL), so dedup holds across restarts and across feeds.

Kafka rather than an embedded store (sqlite, lmdb): replicas on other hosts or a container
with no volume see the same state, and the broker is already required.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import deque
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from newsmon.shared import statetopic
from newsmon.shared.messages import Article, encode, stable_id
from newsmon.shared.settings import Settings, Topics
from newsmon.shared.statetopic import StateTopic, read_to_end, write

from .http import Validators

__all__ = [
    "FeedState",
    "KafkaSink",
    "PublishError",
    "SeenIds",
    "ensure_state_topic",
    "fetcher_state_topic",
    "load_seen_ids",
    "load_states",
    "remember_article",
    "state_topic",
    "url_key",
]

log = logging.getLogger("newsmon.fetcher")

STATE_SCHEMA = "newsmon.fetcher-state.v1"


def state_topic(settings: Settings) -> str:
    return settings.topics.fetcher_state


def fetcher_state_topic(topics: Topics) -> StateTopic:
    """Compacted, no time limit (a feed polled rarely keeps its state); plain acks=all
    writes. A few hundred small records: one partition keeps reading it trivial."""
    return StateTopic(topics.fetcher_state)


def url_key(url: str) -> str:
    """The dedup key of a canonical URL (article ids may come from GUIDs instead)."""
    return "url:" + stable_id(url)


def _digest(key: str) -> int:
    """60 bits of BLAKE2b of `key`: an int of 32 bytes where the key string is 73-77. Two of
    the 200,000 keys kept by default collide with odds of about 1 in 10^7 (a false "seen")."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest()) >> 4


class SeenIds:
    """Article ids and canonical-URL keys already published, each with the feed that published
    it; the least recently added are forgotten first once `capacity` is reached (bounded
    retention).

    Compact, as it holds NEWSMON_DEDUPE_CAPACITY · 2 keys for the whole process: a key is kept
    as a 60-bit digest (int) in a plain dict, feed names are shared, and the order of adds is
    a deque of digests (an OrderedDict of the key strings took 230 bytes a key, this about
    100). A key added again moves to the end: its earlier places in the deque are skipped when
    reached (`_stale` counts them).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._feeds: dict[int, str] = {}
        self._order: deque[int] = deque()
        self._stale: dict[int, int] = {}  # digest -> earlier places of it still in _order
        self._names: dict[str, str] = {}  # one string per feed name
        # Offset per partition of the articles topic up to which these ids were read (set by
        # load_seen_ids): where a tail of the topic (fleet.py) goes on from.
        self.offsets: dict[int, int] = {}

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _digest(key) in self._feeds

    def __len__(self) -> int:
        return len(self._feeds)

    def feed_of(self, key: str) -> str | None:
        return self._feeds.get(_digest(key))

    def add(self, key: str, feed: str = "") -> None:
        digest = _digest(key)
        if digest in self._feeds:
            self._stale[digest] = self._stale.get(digest, 0) + 1
        self._feeds[digest] = self._names.setdefault(feed, feed)
        self._order.append(digest)
        while len(self._feeds) > self.capacity:
            oldest = self._order.popleft()
            later = self._stale.pop(oldest, 0)
            if later:  # added again since: this place is stale, the key stays
                if later > 1:
                    self._stale[oldest] = later - 1
            else:
                del self._feeds[oldest]
        if len(self._order) > 2 * max(self.capacity, 1):
            self._compact()

    def _compact(self) -> None:
        """Drop the stale places (keys added again and again while nothing was evicted)."""
        latest: dict[int, None] = {}
        for digest in reversed(self._order):
            latest.setdefault(digest, None)
        self._order = deque(reversed(latest))
        self._stale.clear()

    def add_article(self, article: Article) -> None:
        self.add(article.id, article.feed)
        self.add(url_key(article.url), article.feed)

    def first_seen(self, article: Article) -> str | None:
        """The feed that already published this article (same id or same URL), or None."""
        for key in (article.id, url_key(article.url)):
            feed = self.feed_of(key)
            if feed is not None:
                return feed
        return None


@dataclass
class FeedState:
    """What we know about one feed between polls. Times are Unix seconds."""

    url: str = ""
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    interval_s: float | None = None
    next_poll_at: float | None = None
    error_streak: int = 0
    last_success_at: float | None = None
    last_new_item_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def validators(self) -> Validators:
        return Validators(self.etag, self.last_modified)

    @validators.setter
    def validators(self, value: Validators) -> None:
        self.etag, self.last_modified = value.etag, value.last_modified

    def to_json(self) -> bytes:
        return json.dumps({"schema": STATE_SCHEMA, **asdict(self)}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> FeedState:
        data = json.loads(payload)
        if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
            raise ValueError("not a fetcher state record")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        # A field of the wrong type would fail later, in the feed's task (TypeError on
        # `error_streak += 1`, `next_poll_at > now`): refuse the record here instead.
        for name, kinds in _FIELD_TYPES.items():
            value = known.get(name)
            if value is None and name in ("url", "error_streak", "extra"):
                known.pop(name, None)  # not optional: the default
            elif value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                raise ValueError(f"field {name} is {type(value).__name__}")
        return cls(**known)

    def for_url(self, url: str) -> FeedState:
        """This state if it belongs to `url`; a fresh one (keeping the schedule) when the feed's
        URL was changed in the config, since validators and body hash are the old URL's."""
        if self.url == url:
            return self
        return FeedState(url=url, next_poll_at=self.next_poll_at, error_streak=0)


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "url": str,
    "etag": str,
    "last_modified": str,
    "body_hash": str,
    "interval_s": (int, float),
    "next_poll_at": (int, float),
    "error_streak": int,
    "last_success_at": (int, float),
    "last_new_item_at": (int, float),
    "extra": dict,
}


async def ensure_state_topic(settings: Settings) -> None:
    await statetopic.ensure_state_topic(settings, fetcher_state_topic(settings.topics))


async def load_states(
    settings: Settings, names: Collection[str] | None = None
) -> dict[str, FeedState]:
    """The latest state of every feed, or of `names` only (a tombstone forgets one). Only the
    latest record of each feed is decoded: the topic's uncompacted head holds one per poll."""
    latest: dict[str, bytes] = {}

    def take(key: bytes | None, value: bytes | None) -> None:
        if not key:
            return
        name = key.decode("utf-8", errors="replace")
        if names is not None and name not in names:
            return
        if value is None:
            latest.pop(name, None)
        else:
            latest[name] = value

    await read_to_end(settings, fetcher_state_topic(settings.topics), take)
    states: dict[str, FeedState] = {}
    for name, value in latest.items():
        try:
            states[name] = FeedState.from_json(value)
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable state of feed %s: %s", name, exc)
    log.info("restored state of %d feeds from %s", len(states), state_topic(settings))
    return states


def remember_article(seen: SeenIds, key: bytes | None, value: bytes | None) -> None:
    """Add one record of the articles topic (key = article id, value has url and feed)."""
    if not key:
        return
    article_id = key.decode("utf-8", errors="replace")
    feed, url = "", None
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        data = json.loads(value or b"")
        feed, url = str(data.get("feed") or ""), data.get("url")
    seen.add(article_id, feed)
    if isinstance(url, str) and url:
        seen.add(url_key(url), feed)


async def load_seen_ids(settings: Settings, capacity: int) -> SeenIds:
    """Rebuild the dedup memory from the articles topic (key = id, value has url and feed)."""
    seen = SeenIds(capacity)
    seen.offsets = await read_to_end(
        settings, settings.topics.articles, lambda key, value: remember_article(seen, key, value)
    )
    log.info("rebuilt dedup memory from %s", settings.topics.articles, extra={"seen": len(seen)})
    return seen


class PublishError(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """Publishing a batch failed part-way: `acked` are the articles the broker acknowledged
    (published, to be remembered as such), the others were not published."""

    def __init__(self, acked: list[Article], cause: BaseException) -> None:
        super().__init__(f"{len(acked)} acknowledged before: {type(cause).__name__}: {cause}")
        self.acked = acked
        self.unacked: list[Article] = []  # filled in by the publisher, which knows the batch


class KafkaSink:
    """Where the fetcher's output goes: articles and feed state, acknowledged (acks=all)."""

    def __init__(self, topics: Topics, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.articles_topic = topics.articles
        self.state_topic = fetcher_state_topic(topics)

    async def publish(self, articles: list[Article]) -> None:
        """Send all, wait for every acknowledgement; PublishError names the acknowledged ones
        when any failed (every future is awaited, none is left with an unread exception)."""
        topic = self.articles_topic
        pending: list[tuple[Article, asyncio.Future[Any]]] = []
        failure: BaseException | None = None
        for article in articles:
            try:
                future = await self.producer.send(topic, encode(article), key=article.id.encode())
            except KafkaError as exc:
                failure = exc
                break
            pending.append((article, future))
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        acked = [
            a
            for (a, _), r in zip(pending, results, strict=True)
            if not isinstance(r, BaseException)
        ]
        failure = failure or next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            raise PublishError(acked, failure)

    async def save_state(self, feed: str, state: FeedState) -> None:
        await write(self.producer, self.state_topic, feed, state.to_json())
